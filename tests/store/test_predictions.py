"""Classify-all results kept beside the labels: survive a reopen, newest wins, export joins labels."""

import csv

from vol3d_gui.store.labels import LabelStore, make_item_key
from vol3d_gui.store.predictions import PredictionStore


def test_predictions_survive_a_reopen_and_the_newest_model_wins(tmp_path):
    db = tmp_path / "predictions.db"
    with PredictionStore(db) as store:
        store.record("s1", "a", "m-v1", 1, [0.2, 0.8], uncertainty=0.1, in_domain=True)
        store.record("s1", "b", "m-v1", 0, [0.9, 0.1])
        store.record("s2", "a", "m-v1", 0, [0.6, 0.4])
        store.record("s1", "a", "m-v2", 0, [0.7, 0.3])
    with PredictionStore(db) as store:
        got = store.latest("s1")
    assert set(got) == {"a", "b"}
    assert got["a"].model == "m-v2" and got["a"].probabilities == [0.7, 0.3]
    assert got["b"].uncertainty is None and got["b"].in_domain is None


def test_export_joins_labels_and_predictions_and_neutralises_formulas(tmp_path):
    labels = LabelStore(tmp_path / "labels.db")
    labels.add_label(make_item_key("s1", "=cmd|x"), 1, class_name="lesion", reviewer="dr")
    current = labels.study_labels("s1")
    labels.close()
    with PredictionStore(tmp_path / "predictions.db") as store:
        store.record("s1", "=cmd|x", "m-v1", 0, [0.6, 0.4])
        store.record("s1", "other", "m-v1", 1, [0.1, 0.9])
        out = store.export_with_labels(tmp_path / "out.csv", current, "s1")
    rows = list(csv.DictReader(out.open()))
    assert [r["item_id"] for r in rows] == ["'=cmd|x", "other"]
    assert rows[0]["label"] == "1" and rows[0]["predicted_class"] == "0" and rows[0]["model"] == "m-v1"
    assert rows[1]["label"] == "" and rows[1]["predicted_class"] == "1"


def test_predictions_of_oddly_named_files_are_kept_and_exported_for_finetune(tmp_path):
    import os
    from types import SimpleNamespace

    from vol3d_gui.commands.finetune import read_labels

    odd = os.fsdecode(b"caf\xe9 100%.nii")
    study = os.fsdecode(b"/data/\xe9tude")
    with LabelStore(tmp_path / "labels.db") as labels:
        for item, label in ((odd, 1), ("'quoted", 0), ("-2", 1)):
            labels.add_label(make_item_key(study, item), label, class_name="c", reviewer="dr")
        current = labels.study_labels(study)
    with PredictionStore(tmp_path / "predictions.db") as store:
        store.record(study, odd, "m-v1", 0, [0.6, 0.4])
        assert list(store.latest(study)) == [odd]
        out = store.export_with_labels(tmp_path / "out.csv", current, study)
    # the export, given to `vol3d finetune`, names the same items with the same labels
    assert read_labels(out, ["no", "yes"], SimpleNamespace(source=study, name="s")) == {
        odd: 1, "'quoted": 0, "-2": 1}
