"""The next case at once: read, classified and explained while the reader looks at this one;
predictions kept beside the labels and shown again in a new window."""

import numpy as np

from tests.ui.conftest import grab
from vol3d_gui.core.phantom import phantom_study

SMALL = (32, 32, 24)


def test_stepping_shows_the_next_case_with_its_prediction_and_saliency_at_once(qtbot, window, tiny_bundle_path):
    panel = window.attach_model(str(tiny_bundle_path))
    qtbot.waitUntil(lambda: panel.bundle is not None, timeout=60000)
    study = phantom_study(n=4, seed=31, shape=SMALL)
    window.open_study(study)
    qtbot.waitUntil(lambda: panel.answer is not None, timeout=60000)
    # the next case: read ahead, then classified and explained behind the one on screen
    qtbot.waitUntil(lambda: panel._ahead is not None and panel._ahead[1] is not None, timeout=60000)
    nxt = panel._ahead[0]
    qtbot.waitUntil(lambda: any(k[0] == id(nxt) for k in panel._saliency_cache), timeout=60000)
    window.review_controller.step(1)  # no event loop in between: everything must be there already
    assert window.current_item.id == study[1].id and window.current_volume is nxt
    assert panel.answer is not None and panel.answer["volume"] is nxt
    assert "saliency" in window.overlays
    assert window.worklist_state.predictions[study[1].id].model == panel.bundle.label
    bars = grab(panel.chart)
    assert (np.abs(bars[..., 0].astype(int) - bars[..., 2]) > 60).any()  # coloured bars drawn


def test_predictions_are_kept_beside_the_labels_for_the_next_session(qtbot, window, tiny_bundle_path):
    from vol3d_gui.ui.main_window import MainWindow

    panel = window.attach_model(str(tiny_bundle_path))
    qtbot.waitUntil(lambda: panel.bundle is not None, timeout=60000)
    study = phantom_study(n=3, seed=32, shape=SMALL)
    window.open_study(study)
    panel.classify_all()
    qtbot.waitUntil(lambda: panel._all_job is None and len(window.worklist_state.predictions) == 3,
                    timeout=60000)
    kept = {k: p.probabilities for k, p in window.worklist_state.predictions.items()}
    window.close()
    again = MainWindow()
    qtbot.addWidget(again)
    again.open_study(phantom_study(n=3, seed=32, shape=SMALL))
    got = again.worklist_state.predictions
    assert set(got) == set(kept)
    for item_id, probs in kept.items():
        np.testing.assert_allclose(got[item_id].probabilities, probs, atol=1e-6)
        assert got[item_id].model == panel.bundle.label
    again.close()
