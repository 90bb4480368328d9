"""The bundled models in models/: they load, their cards carry the contract and measured
held-out metrics, and (where the data is here) the card's numbers are reproduced."""

import json
from pathlib import Path

import numpy as np
import pytest

from vol3d_gui.ml.bundle import list_bundles, load_bundle

MODELS = Path(__file__).resolve().parents[2] / "models"
BUNDLED = sorted(p for p in list_bundles(MODELS) if "-ft-" not in p.stem)


def _bundle(stem):
    path = MODELS / f"{stem}.keras"
    if not path.is_file():
        pytest.skip(f"{path} is not in this checkout")
    return load_bundle(path)


@pytest.mark.parametrize("path", BUNDLED, ids=[p.stem for p in BUNDLED])
def test_bundled_model_loads_with_a_complete_card(path):
    bundle = load_bundle(path)
    card = bundle.card
    for key in ("name", "version", "created", "class_names", "input_shape", "preprocessing",
                "gradcam_layer", "training_data", "training", "metrics", "framework"):
        assert key in card, key
    assert len(card["training_data"]["sha256"]) == 64
    assert card["metrics"]["split"] == "test" and card["metrics"]["n"] > 0
    assert 0.0 <= card["metrics"]["auc"] <= 1.0
    assert path.stat().st_size < 8 * 2**20  # a few MB at most
    assert len(bundle.model.get_layer(bundle.gradcam_layer).output.shape) == 5  # (N, d, h, w, C)


def test_bundles_exist():
    names = {p.stem for p in BUNDLED}
    if not names:
        pytest.skip("no bundled models in this checkout")
    assert {"adrenal3d", "phantom-lesion"} <= names


@pytest.mark.slow
def test_adrenal3d_card_metrics_are_reproduced_on_the_test_split(adrenal64):
    from vol3d_gui.ml.datasets import load_npz_dataset
    from vol3d_gui.ml.evaluation import evaluate_probs

    bundle = _bundle("adrenal3d")
    ds = load_npz_dataset(adrenal64, bundle.input_shape, splits=("test",), preprocessing=bundle.preprocessing)
    test = ds.splits["test"]
    probs = np.concatenate([bundle.forward(test.x[i : i + 32]) for i in range(0, len(test.y), 32)])
    m = evaluate_probs(test.y, probs, bundle.class_names, intervals=True)
    assert ds.content_hash == bundle.card["training_data"]["sha256"]
    assert m["auc"] == pytest.approx(bundle.card["metrics"]["auc"], abs=1e-4)
    assert m["confusion"] == bundle.card["metrics"]["confusion"]
    # the card's intervals are this split's (vol3d evaluate --record), not typed in
    assert m["intervals"]["auc"] == pytest.approx(bundle.card["metrics"]["intervals"]["auc"], abs=1e-4)


def test_phantom_model_separates_fresh_phantoms():
    # phantoms from seeds the training study never drew: lesion cases must score higher
    # on average than their lesion-free twins (same anatomy and noise, only the lesion differs)
    from vol3d_gui.core.phantom import lesion_phantom

    bundle = _bundle("phantom-lesion")
    k = bundle.class_names.index("lesion")
    seeds = range(900001, 900007)
    with_lesion = bundle.predict_batch([lesion_phantom(s, True)[0] for s in seeds])[:, k]
    without = bundle.predict_batch([lesion_phantom(s, False)[0] for s in seeds])[:, k]
    assert with_lesion.mean() > without.mean()
    summary = json.dumps(bundle.card["metrics"])
    assert "auc" in summary
    assert "95% CI" in bundle.summary()  # what the model panel shows: the test AUC with its interval


@pytest.mark.parametrize("path", BUNDLED, ids=[p.stem for p in BUNDLED])
def test_card_holds_recall_balanced_accuracy_calibration_and_its_command(path):
    card = json.loads(path.with_suffix(".json").read_text())
    m = card["metrics"]
    assert set(m["per_class_recall"]) == set(card["class_names"])
    assert m["balanced_accuracy"] == pytest.approx(np.mean(list(m["per_class_recall"].values())))
    assert card["calibration"]["method"] == "platt" and 0.0 <= card["reliability"]["ece"] <= 1.0
    op = card["operating_point"]  # what the reader is shown, measured on test
    assert {"threshold", "rule", "test_sensitivity", "test_specificity", "test_balanced_accuracy"} <= set(op)
    assert card["training"]["command"].startswith("vol3d train ")


def test_phantom_model_explains_on_a_12_cube_grid_or_finer():
    bundle = _bundle("phantom-lesion")
    grid = bundle.model.get_layer(bundle.gradcam_layer).output.shape[1:4]
    assert min(grid) >= 12, grid
