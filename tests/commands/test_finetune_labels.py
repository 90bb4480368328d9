"""vol3d finetune reads the labels the GUI wrote: keys study::item in the label database."""

from types import SimpleNamespace

import pytest

from vol3d_gui.commands.finetune import read_labels
from vol3d_gui.core.errors import Vol3dError
from vol3d_gui.store.labels import LabelStore, make_item_key


def test_database_labels_are_taken_for_the_given_study_only(tmp_path):
    db = tmp_path / "labels.db"
    with LabelStore(db) as store:
        store.add_label(make_item_key("/data/a.npz", "test/3"), 1, reviewer="r")
        store.add_label(make_item_key("/data/a.npz", "test/4"), 0, reviewer="r")
        store.add_label(make_item_key("/data/b.npz", "test/3"), 0, reviewer="r")
    study = SimpleNamespace(source="/data/a.npz", name="a.npz")
    assert read_labels(db, ["no", "yes"], study) == {"test/3": 1, "test/4": 0}
    with pytest.raises(Vol3dError, match="/data/a.npz, /data/b.npz"):
        read_labels(db, ["no", "yes"], SimpleNamespace(source="/data/c.npz", name="c.npz"))


def test_csv_labels_name_items_directly(tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("item_id,label\ntest/3,yes\ntest/4,0\n")
    assert read_labels(csv, ["no", "yes"]) == {"test/3": 1, "test/4": 0}


def test_a_gui_export_is_scoped_to_its_study_and_tolerates_cleared_labels(tmp_path):
    db, out = tmp_path / "labels.db", tmp_path / "export.csv"
    a, b = "/data/a.npz", "/data/b.npz"
    with LabelStore(db) as store:
        store.add_label(make_item_key(a, "test/3"), 1, reviewer="r")
        store.add_label(make_item_key(b, "test/3"), 0, reviewer="r")  # same id, another study
        store.add_label(make_item_key(a, "test/4"), 1, reviewer="r")
        store.clear_label(make_item_key(a, "test/4"), reviewer="r")  # cleared: no label now
        store.add_label(make_item_key(a, "=cmd"), 0, reviewer="r")  # a cell the export neutralises
        store.add_label(make_item_key(a, "test/5"), 0, reviewer="r")
        store.add_label(make_item_key(a, "test/5"), 1, reviewer="r")  # relabelled: the latest counts
        store.export_csv(out)  # the whole history, as the GUI's export button writes it
    study_a = SimpleNamespace(source=a, name="a.npz")
    assert read_labels(out, ["no", "yes"], study_a) == {"test/3": 1, "=cmd": 0, "test/5": 1}
    assert read_labels(out, ["no", "yes"], SimpleNamespace(source=b, name="b.npz")) == {"test/3": 0}
    with pytest.raises(Vol3dError, match="no labels for the study"):
        read_labels(out, ["no", "yes"], SimpleNamespace(source="/data/c.npz", name="c.npz"))
    with pytest.raises(Vol3dError, match="more than one study"):
        read_labels(out, ["no", "yes"])


def test_a_hand_written_csv_skips_cleared_rows(tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("item_id,label,cleared\ntest/3,yes,0\ntest/4,,1\ntest/5,,\ntest/6,no,\n")
    assert read_labels(csv, ["no", "yes"]) == {"test/3": 1, "test/6": 0}
    csv.write_text("item_id,label\ntest/3,²\n")
    with pytest.raises(Vol3dError, match="unknown class"):
        read_labels(csv, ["no", "yes"])


def test_a_missing_database_is_an_error_not_a_new_file(tmp_path):
    with pytest.raises(Vol3dError, match="no such"):
        read_labels(tmp_path / "typo.db", ["no", "yes"], SimpleNamespace(source="/x", name="x"))
    assert not (tmp_path / "typo.db").exists()
