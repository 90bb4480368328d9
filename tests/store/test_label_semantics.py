"""Label store semantics: migrations, foreign files, CSV merging, study keys, content hashes."""

import math
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from vol3d_gui.store import label_schema
from vol3d_gui.store import labels as L
from vol3d_gui.store.labels import (
    LabelStore,
    LabelStoreError,
    labelset_hash,
    make_item_key,
    split_item_key,
)

REPO = Path(__file__).resolve().parents[2]


def _v1_database(path):
    """A database as schema version 1 wrote it (millisecond times, no fingerprints)."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    label_schema._v0_to_v1(con)
    con.execute("PRAGMA user_version = 1")
    for key, label, t in ([("s::a", 0, "2026-01-01T10:00:00.000+00:00"),
                                         ("s::a", 1, "2026-01-01T10:00:01.500+00:00"),
                                         ("s::b", 0, "2026-01-01T10:00:02.000+00:00")]):
        con.execute("INSERT INTO label_events (item_key, label, reviewer, created) VALUES (?, ?, ?, ?)",
                    (key, label, "old", t))
    con.close()


def test_version_1_database_is_migrated_and_keeps_its_labels(tmp_path):
    db = tmp_path / "v1.db"
    _v1_database(db)
    with LabelStore(db) as s:
        assert {k: e.label for k, e in s.current_labels().items()} == {"s::a": 1, "s::b": 0}
        assert [e.label for e in s.history("s::a")] == [0, 1]
        csv_path = s.export_csv(tmp_path / "all.csv")
        assert s.import_csv(csv_path) == 0  # version 1 would have doubled every event here
        assert len(s.history("s::a")) == 2
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == L.SCHEMA_VERSION
    assert con.execute("SELECT COUNT(*) FROM label_events WHERE fingerprint IS NULL").fetchone()[0] == 0
    con.close()


def test_newer_schema_is_refused(tmp_path):
    db = tmp_path / "new.db"
    LabelStore(db).close()
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version = {L.SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    with pytest.raises(LabelStoreError, match=r"new\.db.*newer vol3d"):
        LabelStore(db)


def test_another_programs_sqlite_file_is_refused_and_left_alone(tmp_path):
    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE patients (id INTEGER)")
    con.commit()
    con.close()
    before = db.read_bytes()
    with pytest.raises(LabelStoreError, match=r"other\.db.*not a vol3d label database"):
        LabelStore(db)
    assert db.read_bytes() == before


def test_non_sqlite_and_truncated_files(tmp_path):
    good = tmp_path / "good.db"
    with LabelStore(good) as s:
        for i in range(300):
            s.add_label(f"s::{i}", i % 2, reviewer="r", note="x" * 200)
    data = good.read_bytes()
    bad = tmp_path / "truncated.db"
    bad.write_bytes(data[:len(data) // 3] + b"\xff" * 5000)
    with pytest.raises(LabelStoreError, match="truncated.db"), LabelStore(bad) as s:
        s.current_labels()
    text = tmp_path / "notes.db"
    text.write_text("hello, I am a text file\n" * 50)
    with pytest.raises(LabelStoreError, match="notes.db"):
        LabelStore(text)


def test_imported_events_take_their_place_in_time(tmp_path):
    with LabelStore(tmp_path / "a.db") as a:
        a.add_label("s::x", 0, reviewer="ann")
        a.add_label("s::y", 0, reviewer="ann")
        old_csv = a.export_csv(tmp_path / "a.csv")
    with LabelStore(tmp_path / "b.db") as b:
        b.add_label("s::x", 1, reviewer="bob")  # later than ann's label of x
        assert b.import_csv(old_csv) == 2
        cur = b.current_labels()
        assert cur["s::x"].label == 1 and cur["s::x"].reviewer == "bob"
        assert cur["s::y"].reviewer == "ann"
        assert [e.reviewer for e in b.history("s::x")] == ["ann", "bob"]
        assert b.current_label("s::x") == cur["s::x"]


def test_bad_csv_adds_nothing(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("item_key,label,created\ns::a,1,2026-01-01T00:00:00Z\ns::b,1,yesterday\n")
    with LabelStore(tmp_path / "l.db") as s:
        with pytest.raises(LabelStoreError, match=r"bad\.csv: line 3"):
            s.import_csv(bad)
        assert s.labelled_count() == 0
        bad.write_text("name,class\nx,1\n")
        with pytest.raises(LabelStoreError, match=r"bad\.csv: line 1.*item_key and label"):
            s.import_csv(bad)
        bad.write_text("item_key,label\ns::a,-1\n")
        with pytest.raises(LabelStoreError, match=r"line 2.*>= 0"):
            s.import_csv(bad)
        bad.write_text("item_key,label\ns::a,1,extra\n")
        with pytest.raises(LabelStoreError, match=r"line 2.*more fields"):
            s.import_csv(bad)
        with pytest.raises(LabelStoreError, match=r"missing\.csv"):
            s.import_csv(tmp_path / "missing.csv")


def test_hand_written_csv_imports_once(tmp_path):
    hand = tmp_path / "hand.csv"
    hand.write_bytes("\ufeffitem_key,label,reviewer\ns::a,1,dr x\ns::b,0,dr x\ns::a,1,dr x\n".encode())
    with LabelStore(tmp_path / "l.db") as s:
        assert s.import_csv(hand) == 2
        assert s.import_csv(hand) == 0
        assert {k: e.label for k, e in s.current_labels().items()} == {"s::a": 1, "s::b": 0}
        # a relabel in between is not undone by importing the old file again
        s.add_label("s::a", 0, reviewer="dr y")
        assert s.import_csv(hand) == 0 and s.current_labels()["s::a"].label == 0


def test_current_only_export_has_item_ids(tmp_path):
    with LabelStore(tmp_path / "l.db") as s:
        s.add_label("study::a", 0, reviewer="r")
        s.add_label("study::a", 1, reviewer="r")
        s.add_label("study::b", 1, reviewer="r")
        s.clear_label("study::b", reviewer="r")
        out = s.export_csv(tmp_path / "cur.csv", current_only=True)
    lines = out.read_text().splitlines()
    assert len(lines) == 2
    import csv
    row = next(csv.DictReader(lines))
    assert (row["item_id"], row["label"]) == ("a", "1")
    assert not list(tmp_path.glob(".cur.csv.*"))  # no temporary file left behind


def test_export_to_a_missing_folder_is_a_clear_error(tmp_path):
    with LabelStore(tmp_path / "l.db") as s, pytest.raises(LabelStoreError, match="nowhere"):
        s.export_csv(tmp_path / "nowhere" / "x.csv")


def test_study_filter_and_item_keys(tmp_path):
    odd = "/data/100%_study"  # LIKE would treat % and _ as wildcards
    with LabelStore(tmp_path / "l.db") as s:
        s.add_label(make_item_key(odd, "i1"), 1, reviewer="r")
        s.add_label(make_item_key("/data/100x-study", "i2"), 0, reviewer="r")
        s.add_label(make_item_key("/DATA/100%_STUDY", "i3"), 0, reviewer="r")
        # keys escape '%' (and ':'): compare with make_item_key, not a hand-joined string
        assert list(s.current_labels(odd)) == [make_item_key(odd, "i1")]
        assert list(s.current_labels(odd + "::")) == [make_item_key(odd, "i1")]
        assert list(s.study_labels(odd)) == ["i1"]
        assert s.labelled_count() == 3 and s.labelled_count(odd) == 1
    assert split_item_key("/a/b::c/d.nii") == ("/a/b", "c/d.nii")
    assert split_item_key("/loose/file.nii.gz") == (None, "/loose/file.nii.gz")


def test_content_hash_mismatch_is_flagged(tmp_path):
    with LabelStore(tmp_path / "l.db") as s:
        s.add_label("s::same", 0, reviewer="r", content_hash="h1")
        s.add_label("s::changed", 1, reviewer="r", content_hash="old")
        s.add_label("s::nohash", 1, reviewer="r")
        check = s.check_content({"s::same": "h1", "s::changed": "new", "s::nohash": "h3"})
        assert list(check.matching) == ["s::same"]
        assert list(check.stale) == ["s::changed"]
        assert list(check.unverified) == ["s::nohash"]
        assert s.stale_labels({"s::changed": "new"}) == ["s::changed"]


def test_labelset_hash_is_stable_and_sees_changes(tmp_path):
    with LabelStore(tmp_path / "l.db") as s:
        s.add_label("s::a", 0, reviewer="r")
        s.add_label("s::b", 1, reviewer="r")
        cur = s.current_labels()
        h = labelset_hash(cur)
        assert h == labelset_hash(list(reversed(list(cur.values())))) == labelset_hash({"s::b": 1, "s::a": 0})
        s.add_label("s::b", 0, reviewer="r")
        assert labelset_hash(s.current_labels()) != h
        with pytest.raises(ValueError, match="twice"):
            labelset_hash(s.history("s::b"))


def test_what_is_written_is_checked(tmp_path):
    with LabelStore(tmp_path / "l.db") as s:
        for bad in (dict(label=-1), dict(label=1.5), dict(label=1, model_prediction=(1, [math.nan, 0.5])),
                    dict(label=1, model_prediction=[])):
            with pytest.raises(LabelStoreError, match=r"l\.db"):
                s.add_label("s::a", reviewer="r", **bad)
        with pytest.raises(LabelStoreError, match="non-empty"):
            s.add_label("", 0, reviewer="r")
        i = s.add_label("s::a", 1, reviewer="  ", model_prediction=[0.1, 0.7, 0.2], model_version="m v3")
        ev = s.history("s::a")[0]
        assert ev.event_id == i and ev.model_class == 1 and ev.model_probabilities == [0.1, 0.7, 0.2]
        assert ev.reviewer.strip()  # an empty name records who was logged in, never refuses the label
        assert ev.created.endswith("+00:00")
    with pytest.raises(LabelStoreError, match="closed"):
        s.current_labels()
    s.close()  # closing twice is harmless


def test_store_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert L.default_store_path() == tmp_path / "xdg" / "vol3d" / "labels.db"
    assert L.study_store_path(tmp_path) == tmp_path / "vol3d-labels.db"
    npz = tmp_path / "organmnist3d.npz"
    npz.write_bytes(b"")
    assert L.study_store_path(npz) == tmp_path / "organmnist3d.npz.vol3d-labels.db"


HOLD = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN IMMEDIATE")
con.execute("INSERT INTO label_events (item_key, label, reviewer, created) VALUES ('held::x', 1, 'h', '2026')")
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("COMMIT")
"""


def test_a_writer_waits_for_another_processes_transaction(tmp_path):
    db = tmp_path / "l.db"
    LabelStore(db).close()
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(db), "1.0"], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "holding"
        with LabelStore(db) as s:
            s.add_label("s::mine", 0, reviewer="r")  # blocks in the busy handler, then commits
            assert set(s.current_labels()) == {"s::mine", "held::x"}
    finally:
        p.wait(timeout=30)
    assert p.returncode == 0
