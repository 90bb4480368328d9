"""The worklist with the model's trust fields: an "outside domain" filter and the model's own
uncertainty in the "most uncertain first" order."""

from vol3d_gui.core.phantom import phantom_study
from vol3d_gui.viewer.worklist import FILTERS, Worklist


def _worklist():
    study = phantom_study(n=6, seed=3, shape=(24, 24, 16))
    wl = Worklist()
    wl.set_study(study)
    return wl, [it.id for it in study]


def test_outside_domain_filter_shows_only_flagged_predictions():
    wl, ids = _worklist()
    assert "outside domain" in FILTERS
    wl.set_prediction(ids[0], 1, [0.1, 0.9], in_domain=False)
    wl.set_prediction(ids[1], 0, [0.9, 0.1], in_domain=True)
    wl.set_prediction(ids[2], 0, [0.6, 0.4])  # a model without a domain check
    wl.set_filter("outside domain")
    assert wl.shown_ids() == [ids[0]]
    wl.set_prediction(ids[3], 1, [0.2, 0.8], in_domain=False)  # classify-all goes on
    assert wl.shown_ids() == [ids[0], ids[3]]


def test_most_uncertain_first_uses_the_models_uncertainty():
    wl, ids = _worklist()
    # the softmax margin would put ids[1] (0.55) first; the model's own uncertainty says ids[0]
    wl.set_prediction(ids[0], 1, [0.05, 0.95], uncertainty_value=0.9)
    wl.set_prediction(ids[1], 1, [0.45, 0.55], uncertainty_value=0.2)
    wl.set_prediction(ids[2], 0, [0.99, 0.01], uncertainty_value=0.01)
    wl.set_sort("uncertainty")
    assert wl.shown_ids()[:3] == [ids[0], ids[1], ids[2]]
