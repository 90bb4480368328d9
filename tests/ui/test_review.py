"""Review mode in the real window: keys label the case on screen, labels reach the store, the
worklist filters and sorts, a failed open changes nothing, two windows see each other's labels."""

import os

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from tests.ui.conftest import grab
from vol3d_gui.core.phantom import phantom_study
from vol3d_gui.store.labels import LabelStore

SMALL = (48, 48, 36)


def _press(qtbot, window, key):
    qtbot.keyClick(window.slice_views["axial"], key)
    window.io.wait()


def test_number_keys_label_items_and_the_store_keeps_them(qtbot, window):
    study = phantom_study(n=6, seed=5, shape=SMALL)
    window.open_study(study)
    window.review.reviewer.setText("dr-test")
    window.review.reviewer.editingFinished.emit()
    first = window.current_item
    assert [b.text() for b in window.review.class_buttons] == ["1   no lesion", "2   lesion"]
    window.activateWindow()
    qtbot.waitActive(window, timeout=3000)
    window.slice_views["axial"].setFocus()
    _press(qtbot, window, QtCore.Qt.Key.Key_2)
    assert window.worklist_state.labels[first.id] == 1
    assert window.current_item is not first  # moved on to the next item
    _press(qtbot, window, QtCore.Qt.Key.Key_1)
    with LabelStore(os.environ["VOL3D_LABELS_DB"]) as store:
        cur = store.current_labels()
        key = window.review_controller.session.item_key(first)
        assert cur[key].label == 1 and cur[key].reviewer == "dr-test" and cur[key].content_hash
    table = window.worklist.table_model
    assert table.data(table.index(0, 2)) == "lesion"


@pytest.mark.parametrize("filter_mode", ["all", "unlabelled", "disagreements"])
def test_a_reading_pass_over_12_cases_labels_each_once_in_order(qtbot, window, filter_mode):
    study = phantom_study(n=12, seed=11, shape=(32, 32, 24))
    window.open_study(study)
    for item in study:  # the model disagrees with the truth everywhere: every case is a disagreement
        window.worklist_state.set_prediction(item.id, 1 - item.label, [0.4, 0.6] if item.label == 0 else [0.6, 0.4])
    window.worklist.set_filter(filter_mode)
    window.review_controller.step(-1)  # to the first case shown
    window.io.open_item(window.worklist_state.shown_ids()[0])
    window.io.wait()
    expected = [it.id for it in study]
    seen = []
    window.slice_views["axial"].setFocus()
    for _ in range(12):
        item = window.current_item
        seen.append(item.id)
        # the selection shows the case on screen
        assert window.worklist.current_id() in (item.id, None)
        _press(qtbot, window, getattr(QtCore.Qt.Key, f"Key_{item.label + 1}"))
    assert seen == expected
    with LabelStore(os.environ["VOL3D_LABELS_DB"]) as store:
        for it in study:
            hist = store.history(window.review_controller.session.item_key(it))
            assert [ev.label for ev in hist] == [it.label], it.id


def test_a_case_that_fails_to_open_leaves_the_case_on_screen_and_the_selection(qtbot, window, monkeypatch):
    study = phantom_study(n=4, seed=2, shape=SMALL)
    first, broken = study[0], study[1]
    from vol3d_gui.core.errors import VolumeReadError

    def fail():
        raise VolumeReadError("case-2.nii.gz", "the file was removed")

    monkeypatch.setattr(broken, "loader", fail)  # its prefetch fails too: the click reads it again
    window.open_study(study)
    errors = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "critical", lambda *a: errors.append(a[2]))
    pixels = grab(window.slice_views["axial"])
    window.worklist.table.setCurrentIndex(window.worklist.table_model.index(1, 0))  # the reader clicks case 2
    window.io.wait()
    assert errors and "removed" in errors[0]
    assert window.current_item is first and window.worklist.current_id() == first.id
    np.testing.assert_array_equal(grab(window.slice_views["axial"]), pixels)
    window.review_controller.assign(1)
    window.io.wait()
    assert window.worklist_state.labels == {first.id: 1}  # the label went to the case on screen


def test_labels_come_back_in_a_new_window_and_reach_an_open_one(qtbot, window):
    from vol3d_gui.ui.main_window import MainWindow

    study = phantom_study(n=4, seed=6, shape=SMALL)
    window.open_study(study)
    w2 = MainWindow()
    qtbot.addWidget(w2)
    w2.open_study(phantom_study(n=4, seed=6, shape=SMALL))
    window.review_controller.assign(1)
    window.io.wait()
    assert window.worklist_state.labels == {study[0].id: 1}
    qtbot.waitUntil(lambda: w2.worklist_state.labels == {study[0].id: 1}, timeout=10000)
    w3 = MainWindow()
    qtbot.addWidget(w3)
    w3.open_study(phantom_study(n=4, seed=6, shape=SMALL))
    assert w3.worklist_state.labels == {study[0].id: 1}
    w2.close()
    w3.close()


def test_filters_and_uncertainty_order(window):
    study = phantom_study(n=6, seed=7, shape=SMALL)
    window.open_study(study)
    wl = window.worklist_state
    probs = [0.9, 0.55, 0.2, 0.51, 0.99, 0.7]
    for it, p in zip(study, probs):
        wl.set_prediction(it.id, int(p > 0.5), [1 - p, p])
    window.review_controller.assign(0)  # item 0 labelled "no lesion", model says lesion: a disagreement
    window.io.wait()
    window.worklist.set_filter("unlabelled")
    assert study[0].id not in wl.shown_ids()
    window.worklist.set_filter("disagreements")
    assert study[0].id in wl.shown_ids()
    assert all(wl.agreement(i) is False for i in wl.shown_ids())
    window.worklist.set_filter("all")
    window.worklist.sort_by_uncertainty()
    order = [study.items.index(study.by_id(i)) for i in wl.shown_ids()]
    margins = [abs(2 * probs[r] - 1) for r in order]
    assert margins == sorted(margins)  # most uncertain first
    table = window.worklist.table_model
    assert [table.item_at(r).id for r in range(table.rowCount())] == wl.shown_ids()  # the table shows that order
