"""Label integrity against odd input: keys that cannot collide, any file name, numbers and
times SQLite cannot hold, and CSV cells a spreadsheet would run."""

from __future__ import annotations

import csv
import os
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vol3d_gui.store.labels import (
    LabelEvent,
    LabelStore,
    LabelStoreError,
    csv_cell,
    from_csv_cell,
    make_item_key,
    split_item_key,
)

# text with lone surrogates, as os.fsdecode gives for a file name that is not UTF-8
_names = st.text(st.characters(codec=None, exclude_categories=("Cn",)), max_size=20)


@given(study=_names, item=_names)
def test_item_keys_round_trip_and_are_storable(study, item):
    key = make_item_key(study, item)
    assert split_item_key(key) == (study, item)
    key.encode("utf-8")  # never a UnicodeEncodeError in SQLite


@given(a=st.tuples(_names, _names), b=st.tuples(_names, _names))
def test_item_keys_cannot_collide(a, b):
    if a != b:
        assert make_item_key(*a) != make_item_key(*b)


def test_an_item_id_with_the_separator_keeps_its_own_label(tmp_path):
    with LabelStore(tmp_path / "l.db") as s:
        s.add_label(make_item_key("/s::a", "b"), 0, reviewer="r")
        s.add_label(make_item_key("/s", "a::b"), 1, reviewer="r")
        assert {k: ev.label for k, ev in s.study_labels("/s").items()} == {"a::b": 1}
        assert {k: ev.label for k, ev in s.study_labels("/s::a").items()} == {"b": 0}


def test_a_file_name_that_is_not_utf8_can_be_labelled_and_exported(tmp_path):
    item = os.fsdecode(b"caf\xe9/scan\xff.nii")
    study = os.fsdecode(b"/data/\xe9tude")
    csv_path = tmp_path / "out.csv"
    with LabelStore(tmp_path / "l.db") as s:
        s.add_label(make_item_key(study, item), 1, reviewer=os.fsdecode(b"r\xe9"), note=item)
        assert list(s.study_labels(study)) == [item]
        s.export_csv(csv_path)
    with LabelStore(tmp_path / "other.db") as t:
        assert t.import_csv(csv_path) == 1
        assert list(t.study_labels(study)) == [item]
    with LabelStore(tmp_path / "l.db") as s, pytest.raises(LabelStoreError, match="make_item_key"):
        s.add_label(item, 0, reviewer="r")  # a raw, unescaped key


@pytest.mark.parametrize("label", [2**63, 2**64 + 3, 10**30])
def test_labels_beyond_64_bits_are_a_label_store_error(tmp_path, label):
    with LabelStore(tmp_path / "l.db") as s:
        with pytest.raises(LabelStoreError, match="64 bits"):
            s.add_label("s::a", label, reviewer="r")
        with pytest.raises(LabelStoreError, match="64 bits"):
            s.add_label("s::a", 0, reviewer="r", model_prediction=(label, [0.5, 0.5]))
        bad = tmp_path / "big.csv"
        bad.write_text(f"item_key,label\ns::a,{label}\n")
        with pytest.raises(LabelStoreError, match="line 2"):
            s.import_csv(bad)
        assert s.labelled_count() == 0


@pytest.mark.parametrize("created", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+01:00",
                                     "99999-01-01T00:00:00+00:00"])
def test_times_out_of_range_are_a_label_store_error(tmp_path, created):
    bad = tmp_path / "t.csv"
    bad.write_text(f"item_key,label,created\ns::a,1,{created}\n")
    with LabelStore(tmp_path / "l.db") as s, pytest.raises(LabelStoreError, match="line 2"):
        s.import_csv(bad)


def _events(store):
    return sorted((e.item_key, e.label, e.reviewer, e.note, e.class_name, e.model_version, e.content_hash,
                   e.created, e.cleared)
                  for e in map(LabelEvent.from_row, store._query("SELECT * FROM label_events")))


_FORMULAS = ["=HYPERLINK(\"http://x\")", "+1+1", "-2", "@SUM(A1)", "\tTAB", "\rCR", "'quoted", "plain"]


def test_export_neutralises_formula_cells_and_imports_back_unchanged(tmp_path):
    out = tmp_path / "x.csv"
    with LabelStore(tmp_path / "a.db") as s:
        for i, text in enumerate(_FORMULAS):
            s.add_label(make_item_key(text, text), 1, reviewer=text, note=text, class_name=text,
                        model_version=text, content_hash=text)
            s.clear_label(make_item_key("=s", f"-{i}"), reviewer=text)
        before = _events(s)
        s.export_csv(out)
    with open(out, newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            for cell in row:
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    with LabelStore(tmp_path / "b.db") as t:
        assert t.import_csv(out) == 2 * len(_FORMULAS)
        after = _events(t)
    assert after == before


@given(st.text())
def test_csv_cell_round_trips(text):
    assert from_csv_cell(csv_cell(text)) == text


def test_version_2_keys_are_migrated_to_the_escaped_form(tmp_path):
    db = tmp_path / "old.db"
    with LabelStore(db) as s:
        pass
    con = sqlite3.connect(db)
    # what version 2 wrote: bare '::' joins, split at the last one
    con.execute("INSERT INTO label_events (item_key, label, reviewer, created, cleared) VALUES "
                "('C:\\data\\a.npz::test/3', 1, 'r', '2024-01-01T00:00:00.000000+00:00', 0), "
                "('/loose.nii', 0, 'r', '2024-01-01T00:00:00.000000+00:00', 0)")
    con.execute("PRAGMA user_version = 2")
    con.commit()
    con.close()
    with LabelStore(db) as s:
        assert {k: ev.label for k, ev in s.study_labels("C:\\data\\a.npz").items()} == {"test/3": 1}
        assert "/loose.nii" in s.current_labels()


def test_a_csv_exported_before_keys_were_escaped_imports_to_todays_keys(tmp_path):
    old = tmp_path / "old.csv"
    old.write_text("item_key,label,created\n"
                   "C:\\data\\a.npz::test/3,1,2024-01-01T00:00:00+00:00\n"
                   "/data/x::y.nii::case::1,0,2024-01-01T00:00:00+00:00\n")  # split at the last '::' then
    with LabelStore(tmp_path / "l.db") as s:
        assert s.import_csv(old) == 2
        assert {k: ev.label for k, ev in s.study_labels("C:\\data\\a.npz").items()} == {"test/3": 1}
        assert {k: ev.label for k, ev in s.study_labels("/data/x::y.nii::case").items()} == {"1": 0}
        out = s.export_csv(tmp_path / "new.csv")
    with LabelStore(tmp_path / "m.db") as t:  # today's export imports to the same keys
        assert t.import_csv(out) == 2
        assert {k: ev.label for k, ev in t.study_labels("C:\\data\\a.npz").items()} == {"test/3": 1}


_free_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\0"), max_size=12)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(study=_names.filter(lambda t: "\0" not in t), item=_names.filter(lambda t: "\0" not in t),
       reviewer=_free_text.filter(lambda t: t.strip()), note=_free_text, class_name=_free_text)
def test_any_event_survives_export_and_import(tmp_path_factory, study, item, reviewer, note, class_name):
    d = tmp_path_factory.mktemp("rt")
    with LabelStore(d / "a.db") as s:
        s.add_label(make_item_key(study, item), 1, reviewer=reviewer, note=note or None,
                    class_name=class_name or None, model_version=note or None)
        before = _events(s)
        out = s.export_csv(d / "x.csv")
    with LabelStore(d / "b.db") as t:
        assert t.import_csv(out) == 1
        assert _events(t) == before
        assert list(t.study_labels(study)) == [item]
