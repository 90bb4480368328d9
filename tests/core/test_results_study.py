"""A results table opened as a worklist (Qt-free: no display needed)."""

import numpy as np
import pytest

from vol3d_gui.core.io import save_nifti
from vol3d_gui.core.results_study import open_results, order_items
from vol3d_gui.core.results_table import ResultsTable, csv_kind
from vol3d_gui.core.volume import Volume, centered_affine

COLS = ["item_id", "path", "series", "status", "predicted_class", "predicted_index", "prob_no lesion",
        "prob_lesion", "uncertainty", "in_domain", "domain_score", "domain_reasons", "model_name",
        "model_version", "content_hash", "error_type", "error_message"]


@pytest.fixture(params=[".csv", ".parquet"])
def results(request, tmp_path):
    if request.param == ".parquet":
        pytest.importorskip("pyarrow")
    data = np.arange(6 * 5 * 4, dtype=np.int16).reshape(6, 5, 4)
    vol_path = save_nifti(Volume(data, centered_affine(data.shape)), tmp_path / "a.nii.gz")
    base = {"path": str(vol_path), "model_name": "m", "model_version": "2", "status": "ok"}
    rows = [
        {**base, "item_id": "a", "predicted_class": "lesion", "predicted_index": 1, "prob_no lesion": 0.1,
         "prob_lesion": 0.9, "uncertainty": 0.05, "in_domain": True, "domain_score": 0.2},
        {**base, "item_id": "b", "predicted_class": "no lesion", "predicted_index": 0, "prob_no lesion": 0.6,
         "prob_lesion": 0.4, "uncertainty": 0.4, "in_domain": True, "domain_score": 0.3},
        {**base, "item_id": "c", "predicted_class": "no lesion", "predicted_index": 0, "prob_no lesion": 0.8,
         "prob_lesion": 0.2, "uncertainty": 0.1, "in_domain": False, "domain_score": 3.0,
         "domain_reasons": "spacing 5 mm outside 1-2 mm"},
        {**base, "item_id": "d", "status": "error", "error_type": "VolumeReadError", "error_message": "x: bad"},
    ]
    out = tmp_path / f"r{request.param}"
    table = ResultsTable(out, {c: csv_kind(c) for c in COLS})
    table.write(rows)
    table.close()
    return out, data


def test_results_open_as_a_study_with_the_stored_predictions(results):
    out, data = results
    study = open_results(out)
    assert [it.id for it in study] == ["a", "b", "c", "d"]
    assert study.class_names == ["no lesion", "lesion"]
    a = study.by_id("a").extras["score"]
    assert a["probabilities"] == {"no lesion": 0.1, "lesion": 0.9}
    assert a["predicted_class"] == "lesion" and a["model"] == "m v2" and a["in_domain"] is True
    assert study.by_id("c").extras["score"]["domain_reasons"].startswith("spacing")
    assert study.by_id("d").extras["score"]["error_type"] == "VolumeReadError"
    np.testing.assert_array_equal(study.by_id("a").load().data, data)


def test_review_orders(results):
    study = open_results(results[0])
    assert [it.id for it in order_items(study, "uncertainty")] == ["b", "c", "a", "d"]
    assert [it.id for it in order_items(study, "domain")] == ["d", "c", "b", "a"]
    assert [it.id for it in order_items(study, "probability")] == ["a", "b", "c", "d"]
    with pytest.raises(ValueError):
        order_items(study, "size")
