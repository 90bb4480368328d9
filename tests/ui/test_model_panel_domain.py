"""The model panel with a card that records a domain, an operating point and a reliability
table: an out-of-domain case is said to be one, its probabilities greyed and no jump to the
saliency peak offered; the displayed class follows the operating point."""

import shutil

import numpy as np

from tests.ui.conftest import grab
from vol3d_gui.core.phantom import lesion_phantom
from vol3d_gui.ml.bundle import update_card

SMALL = (48, 48, 36)  # at 1 x 1 x 1.5 mm: a 48 x 48 x 54 mm field of view
TABLE = {"kind": "positive class", "split": "test", "n": 20, "ece": 0.123,
         "bins": [{"lo": i / 10, "hi": (i + 1) / 10, "n": 2, "mean_predicted": (i + 0.5) / 10,
                   "observed": (i + 0.5) / 10} for i in range(10)]}


def _bundle_with(tmp_path, tiny_bundle_path, fov):
    path = tmp_path / "tiny-domain.keras"
    shutil.copy(tiny_bundle_path, path)
    shutil.copy(tiny_bundle_path.with_suffix(".json"), path.with_suffix(".json"))
    update_card(path, {"domain": {"fov_mm": {"min": fov, "max": fov}}, "reliability": TABLE,
                       "operating_point": {"positive_class": 1, "threshold": 0.0}})
    return path


def _open(qtbot, window, path):
    panel = window.attach_model(str(path))
    qtbot.waitUntil(lambda: panel.bundle is not None, timeout=60000)
    window.open_volume(lesion_phantom(3, True, SMALL)[0])
    qtbot.waitUntil(lambda: panel.probs is not None, timeout=30000)
    return panel


def test_an_out_of_domain_case_is_named_greyed_and_not_jumped_to(qtbot, window, tiny_bundle_path, tmp_path):
    panel = _open(qtbot, window, _bundle_with(tmp_path, tiny_bundle_path, [200.0, 200.0, 200.0]))
    text = panel.result_label.text()
    assert "outside this model's training data:" in text and "field of view 48 x 48 x 54 mm" in text
    px = grab(panel.chart)
    grey = np.all(np.abs(px.astype(int) - 185) < 6, axis=-1)
    red = np.all(np.abs(px.astype(int) - np.array([220, 80, 60])) < 30, axis=-1)
    assert grey.sum() > 50 and red.sum() == 0
    qtbot.waitUntil(lambda: "saliency" in window.overlays, timeout=30000)
    assert window.current_saliency.meta.get("masked_to") == "foreground"
    assert not panel.peak_button.isEnabled() and "outside" in panel.peak_button.toolTip()
    assert "ECE 0.123" in panel.reliability.getPlotItem().titleLabel.text


def test_an_in_domain_case_shows_the_operating_points_class(qtbot, window, tiny_bundle_path, tmp_path):
    panel = _open(qtbot, window, _bundle_with(tmp_path, tiny_bundle_path, [48.0, 48.0, 54.0]))
    assert panel.in_domain() is True
    # threshold 0: every case is called positive, whatever the argmax says
    assert panel.displayed_class() == 1 and panel.result_label.text().startswith("<b>lesion</b>")
    assert "uncertainty" in panel.result_label.text()
    # an error bar beside each probability: its spread over the MC-dropout samples
    assert panel.chart.error_bars is not None and len(panel.answer["spread"]) == 2
    qtbot.waitUntil(lambda: "saliency" in window.overlays, timeout=30000)
    if panel.peak_button.isEnabled():  # the untrained tiny model's map may be empty in the body
        panel.peak_button.click()
        assert np.allclose(window.viewer.cursor, panel.peak_button.target)


def test_worklist_marks_out_of_domain_predictions_and_filters_them(qtbot, window):
    from PySide6 import QtCore

    from vol3d_gui.core.phantom import phantom_study

    study = phantom_study(n=4, seed=2, shape=SMALL)
    window.open_study(study)
    wl, table = window.worklist_state, window.worklist.table_model
    ids = [it.id for it in study]
    wl.set_prediction(ids[0], 1, [0.1, 0.9], uncertainty_value=0.3, in_domain=False)
    wl.set_prediction(ids[1], 0, [0.8, 0.2], uncertainty_value=0.6, in_domain=True)
    row = table.row_of(ids[0])
    tip = table.data(table.index(row, 3), QtCore.Qt.ItemDataRole.ToolTipRole)
    assert tip.startswith("outside the model's training data")
    assert table.data(table.index(row, 3), QtCore.Qt.ItemDataRole.FontRole).italic()
    assert table.data(table.index(table.row_of(ids[1]), 3), QtCore.Qt.ItemDataRole.FontRole) is None
    window.worklist.filter_combo.setCurrentIndex(3)  # "Outside the model's domain"
    assert window.worklist.shown_ids() == [ids[0]]
