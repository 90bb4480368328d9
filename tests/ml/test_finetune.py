"""Fine-tuning writes a new version, never touches the base, and a stop writes nothing."""

import hashlib
import json

import numpy as np
import pytest

from vol3d_gui.core.errors import Vol3dError
from vol3d_gui.core.phantom import lesion_phantom, phantom_study
from vol3d_gui.ml.bundle import list_bundles, load_bundle
from vol3d_gui.ml.finetune import finetune_bundle, stratified_split
from vol3d_gui.ml.training import TrainingStopped

SMALL = (32, 32, 24)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _data(n=12):
    labels = [i % 2 for i in range(n)]
    vols = [lambda i=i, lab=lab: lesion_phantom(100 + i, bool(lab), SMALL, spacing=(4.0, 4.0, 6.0))[0]
            for i, lab in enumerate(labels)]
    return vols, labels


def test_new_version_with_parent_and_before_after(tiny_bundle_path, tmp_path):
    base = load_bundle(tiny_bundle_path)
    before = (_digest(tiny_bundle_path), _digest(tiny_bundle_path.with_suffix(".json")))
    vols, labels = _data()
    batches = []
    report = finetune_bundle(base, vols, labels, out_dir=tmp_path, epochs=1, learning_rate=1e-3,
                             labelset_hash="abc", on_batch=lambda *a: batches.append(a))
    new = load_bundle(report["path"])
    assert new.name == "tiny-ft-1" and new.card["parent"] == base.label
    assert new.card["training_data"]["labelset_sha256"] == "abc"
    assert new.card["training_data"]["n_labelled"] == 12
    assert {"accuracy", "auc"} <= set(new.card["metrics_before"]) and new.card["metrics"]["split"] == "held-out"
    # a few held-out cases: every figure carries its interval, and the change is tested paired
    for m in (new.card["metrics_before"], new.card["metrics"]):
        lo, hi = m["intervals"]["accuracy"]
        assert lo <= m["accuracy"] <= hi and hi - lo > 0.2
    change = new.card["metrics_change"]
    assert change == report["change"]
    if np.isfinite(change["auc"]["difference"]):
        assert change["auc"]["difference"] == pytest.approx(report["after"]["auc"] - report["before"]["auc"])
    assert change["decisions"]["method"] == "McNemar, exact"
    assert batches
    assert (_digest(tiny_bundle_path), _digest(tiny_bundle_path.with_suffix(".json"))) == before
    # a second fine-tune gets the next number; both stay selectable
    finetune_bundle(base, vols, labels, out_dir=tmp_path, epochs=1)
    assert [p.stem for p in list_bundles(tmp_path)] == ["tiny-ft-1", "tiny-ft-2"]


def test_stop_writes_nothing(tiny_bundle_path, tmp_path):
    base = load_bundle(tiny_bundle_path)
    vols, labels = _data()
    seen = []
    with pytest.raises(TrainingStopped):
        finetune_bundle(base, vols, labels, out_dir=tmp_path, epochs=5,
                        on_batch=lambda *a: seen.append(1), should_stop=lambda: len(seen) >= 1)
    assert list(tmp_path.iterdir()) == []


def test_too_few_labels_is_a_clear_error(tiny_bundle_path, tmp_path):
    base = load_bundle(tiny_bundle_path)
    vols, _ = _data(4)
    with pytest.raises(Vol3dError, match="two classes"):
        finetune_bundle(base, vols, [1, 1, 1, 1], out_dir=tmp_path)


def test_stratified_split_keeps_both_classes():
    tr, te = stratified_split([0] * 10 + [1] * 4, 0.3)
    y = np.array([0] * 10 + [1] * 4)
    assert set(y[te]) == {0, 1} and set(y[tr]) == {0, 1} and len(tr) + len(te) == 14


def test_cli_with_a_csv_of_labels(tiny_bundle_path, tmp_path, monkeypatch):
    from vol3d_gui.cli import main

    study = phantom_study(n=10, seed=3, shape=SMALL, spacing=(4.0, 4.0, 6.0))
    csv = tmp_path / "labels.csv"
    csv.write_text("item_id,label\n" + "".join(f"{it.id},{'lesion' if it.label else 'no lesion'}\n" for it in study))
    monkeypatch.setattr("vol3d_gui.core.study.open_study", lambda p: study)
    out = tmp_path / "models"
    rc = main(["finetune", "--model", str(tiny_bundle_path), "--study", "demo", "--labels", str(csv),
               "--out", str(out), "--epochs", "1"])
    assert rc == 0 and (out / "tiny-ft-1.keras").exists()
    card = json.loads((out / "tiny-ft-1.json").read_text())
    assert card["parent"] == "tiny v1"


@pytest.mark.slow
def test_finetuning_recovers_accuracy_on_a_shifted_scanner(phantom_bundle, tmp_path):
    # the bundled phantom model on low-dose phantoms (40 HU noise instead of 12): it calls
    # nearly everything one class; 40 labelled cases must lift accuracy on 60 new ones by
    # 15 points or more (bench finetune measures this on 200, and the lower-contrast case)
    from vol3d_gui.ml.evaluation import evaluate_probs
    from vol3d_gui.ml.training import predict_arrays

    base = phantom_bundle
    seeds = np.random.default_rng(42).integers(0, 2**31 - 1, 100)
    labels = np.arange(100) % 2
    vols = [lesion_phantom(int(s), bool(lab), noise_hu=40.0)[0] for s, lab in zip(seeds, labels)]
    test_x = np.stack([base.preprocess(v) for v in vols[40:]])
    before = evaluate_probs(labels[40:], predict_arrays(base.model, test_x))["accuracy"]
    report = finetune_bundle(base, vols[:40], labels[:40], out_dir=tmp_path, epochs=30, held_out=0.25,
                             augment=False)
    assert report["card"]["finetune"]["best_epoch"] > 0
    after = evaluate_probs(labels[40:], predict_arrays(load_bundle(report["path"]).model, test_x))["accuracy"]
    assert after - before >= 0.15, f"accuracy {before:.2f} -> {after:.2f}"


def test_a_run_that_beats_nothing_keeps_the_base_weights(tiny_bundle_path, tmp_path):
    # epoch 0 (the base) competes: with a learning rate of zero no epoch can beat it
    base = load_bundle(tiny_bundle_path)
    vols, labels = _data()
    report = finetune_bundle(base, vols, labels, out_dir=tmp_path, epochs=2, learning_rate=0.0, augment=False)
    assert report["card"]["finetune"]["best_epoch"] == 0
    new = load_bundle(report["path"])
    for a, b in zip(new.model.get_weights(), base.model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # the same weights: no change, exactly, and the paired test says so
    assert report["change"]["decisions"]["only_a_right"] == report["change"]["decisions"]["only_b_right"] == 0
    if np.isfinite(report["change"]["auc"]["difference"]):
        assert report["change"]["auc"]["difference"] == 0 and report["change"]["auc"]["p_value"] == 1.0
