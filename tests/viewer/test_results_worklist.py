"""An archive run's results in the worklist, without a display: its predictions, the model's
uncertainty and the domain flag, and the order that puts flagged cases first."""

import pytest

from tests.core.results_fixtures import write_results
from vol3d_gui.core.results_study import open_results
from vol3d_gui.viewer.worklist import Worklist, predictions_from_results


@pytest.fixture
def worklist(tmp_path):
    study = open_results(write_results(tmp_path / "run")[0])
    wl = Worklist()
    wl.set_study(study)
    wl.set_predictions(predictions_from_results(study))
    return wl


def test_the_stored_predictions_fill_the_worklist(worklist):
    preds = worklist.predictions
    assert set(preds) == {"a", "b", "c"}  # d failed: no prediction
    assert preds["a"].class_name == "lesion" and preds["a"].confidence == pytest.approx(0.9)
    assert preds["b"].uncertainty == pytest.approx(0.4)  # the model's own, not the margin (0.8)
    assert preds["c"].in_domain is False and preds["a"].model == "m v2"


def test_sorted_by_uncertainty_or_by_the_domain_flag(worklist):
    worklist.set_sort("uncertainty")
    assert worklist.shown_ids() == ["b", "c", "a", "d"]
    worklist.set_sort("domain")
    assert worklist.shown_ids() == ["c", "b", "a", "d"]
    worklist.set_sort("study")
    assert worklist.shown_ids() == ["a", "b", "c", "d"]
