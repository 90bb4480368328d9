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
