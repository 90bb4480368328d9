"""A results table opened as a worklist (Qt-free: no display needed)."""

import numpy as np
import pytest

from tests.core.results_fixtures import write_results
from vol3d_gui.core.results_study import open_results, order_items
from vol3d_gui.core.study import open_study


@pytest.fixture(params=[".csv", ".parquet"])
def results(request, tmp_path):
    if request.param == ".parquet":
        pytest.importorskip("pyarrow")
    return write_results(tmp_path / "run", request.param)


def test_results_open_as_a_study_with_the_stored_predictions(results):
    out, arrays = results
    study = open_results(out)
    assert [it.id for it in study] == ["a", "b", "c", "d"]
    assert study.class_names == ["no lesion", "lesion"]
    a = study.by_id("a").extras["score"]
    assert a["probabilities"] == {"no lesion": 0.1, "lesion": 0.9}
    assert a["predicted_class"] == "lesion" and a["model"] == "m v2" and a["in_domain"] is True
    assert study.by_id("c").extras["score"]["domain_reasons"].startswith("spacing")
    assert study.by_id("d").extras["score"]["error_type"] == "VolumeReadError"
    assert study.by_id("d").name == "d (VolumeReadError)"
    np.testing.assert_array_equal(study.by_id("b").load().data, arrays["b"])


def test_open_study_recognises_a_results_table_and_not_a_labels_file(results, tmp_path):
    out, _ = results
    study = open_study(out)
    assert [it.id for it in study] == ["a", "b", "c", "d"] and study.source == str(out)
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\na,1\n")
    with pytest.raises(Exception, match="not a study"):
        open_study(labels)


def test_review_orders(results):
    study = open_results(results[0])
    assert [it.id for it in order_items(study, "uncertainty")] == ["b", "c", "a", "d"]
    assert [it.id for it in order_items(study, "domain")] == ["d", "c", "b", "a"]
    assert [it.id for it in order_items(study, "probability")] == ["a", "b", "c", "d"]
    with pytest.raises(ValueError):
        order_items(study, "size")
