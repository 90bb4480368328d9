"""Review mode: keys assign classes, labels reach the store, the worklist filters and sorts."""

import os

import numpy as np
from PySide6 import QtCore

from vol3d_gui.core.phantom import phantom_study
from vol3d_gui.store.labels import LabelStore

SMALL = (48, 48, 36)


def test_number_keys_label_items_and_the_store_keeps_them(qtbot, window):
    study = phantom_study(n=6, seed=5, shape=SMALL)
    window.open_study(study)
    window.review.reviewer.setText("dr-test")
    first = window.current_item
    assert [b.text() for b in window.review.class_buttons] == ["1   no lesion", "2   lesion"]
    window.activateWindow()
    qtbot.waitActive(window, timeout=3000)
    target = window.slice_views["axial"]
    target.setFocus()
    qtbot.keyClick(target, QtCore.Qt.Key.Key_2)
    assert window.worklist.model.labels[first.id] == 1
    assert window.current_item is not first  # moved on to the next item
    qtbot.keyClick(target, QtCore.Qt.Key.Key_1)
    with LabelStore(os.environ["VOL3D_LABELS_DB"]) as store:
        cur = store.current_labels()
        key = window.review.item_key(first)
        assert cur[key].label == 1 and cur[key].reviewer == "dr-test" and cur[key].content_hash
    assert window.worklist.model.data(window.worklist.model.index(0, 2)) == "lesion"


def test_labels_come_back_in_a_new_window(qtbot, window):
    from vol3d_gui.ui.main_window import MainWindow

    study = phantom_study(n=4, seed=6, shape=SMALL)
    window.open_study(study)
    window.review.assign(1)
    w2 = MainWindow()
    qtbot.addWidget(w2)
    w2.open_study(phantom_study(n=4, seed=6, shape=SMALL))
    assert w2.worklist.model.labels == {study[0].id: 1}
    w2.close()


def test_filters_and_uncertainty_order(window):
    study = phantom_study(n=6, seed=7, shape=SMALL)
    window.open_study(study)
    wl = window.worklist
    probs = [0.9, 0.55, 0.2, 0.51, 0.99, 0.7]
    for it, p in zip(study, probs):
        wl.set_prediction(it.id, int(p > 0.5), [1 - p, p])
    window.review.assign(0)  # item 0 labelled "no lesion", model says lesion: a disagreement
    wl.set_filter("unlabelled")
    assert study[0].id not in [study[r].id for r in wl.visible_rows()]
    wl.set_filter("disagreements")
    rows = wl.visible_rows()
    assert 0 in rows
    assert all(wl.model.agreement(study[r].id) is False for r in rows)
    wl.set_filter("all")
    wl.sort_by_uncertainty()
    order = wl.visible_rows()
    margins = [abs(2 * probs[r] - 1) for r in order]
    assert margins == sorted(margins)  # most uncertain first
    assert np.argmin([abs(2 * p - 1) for p in probs]) == order[0]
