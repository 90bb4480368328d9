"""The results of `vol3d score` as a worklist widget: sortable, review orders, activation."""

import pytest
from PySide6 import QtCore

from vol3d_gui.core.results_study import open_results
from vol3d_gui.core.results_table import ResultsTable, csv_kind
from vol3d_gui.ui.results_worklist import ResultsWorklist

COLS = ["item_id", "path", "series", "status", "predicted_class", "predicted_index", "prob_no lesion",
        "prob_lesion", "uncertainty", "in_domain", "domain_score", "domain_reasons", "model_name",
        "model_version", "content_hash", "error_type", "error_message"]


@pytest.fixture
def worklist(qtbot, tmp_path):
    base = {"path": "/nowhere.nii", "model_name": "m", "model_version": "1", "status": "ok"}
    rows = [
        {**base, "item_id": "a", "predicted_class": "lesion", "prob_no lesion": 0.1, "prob_lesion": 0.9,
         "uncertainty": 0.05, "in_domain": True},
        {**base, "item_id": "b", "predicted_class": "no lesion", "prob_no lesion": 0.6, "prob_lesion": 0.4,
         "uncertainty": 0.4, "in_domain": True},
        {**base, "item_id": "c", "predicted_class": "no lesion", "prob_no lesion": 0.8, "prob_lesion": 0.2,
         "uncertainty": 0.1, "in_domain": False, "domain_reasons": "slice spacing 6 mm"},
        {**base, "item_id": "d", "status": "error", "error_type": "VolumeReadError", "error_message": "bad"},
    ]
    out = tmp_path / "r.csv"
    table = ResultsTable(out, {c: csv_kind(c) for c in COLS})
    table.write(rows)
    table.close()
    w = ResultsWorklist(open_results(out))
    qtbot.addWidget(w)
    return w


def test_rows_show_the_stored_scores(worklist):
    m = worklist.proxy
    assert worklist.shown_ids() == ["a", "b", "c", "d"]
    assert m.headerData(2, QtCore.Qt.Orientation.Horizontal) == "P(lesion)"
    assert [m.index(0, c).data() for c in range(6)] == ["a", "lesion", "0.900", "0.050", "in", ""]
    assert m.index(2, 4).data() == "OUT" and m.index(2, 4).data(QtCore.Qt.ItemDataRole.ToolTipRole) == \
        "slice spacing 6 mm"
    assert m.index(3, 4).data() == "error" and m.index(3, 5).data() == "VolumeReadError"


def test_columns_sort_by_value_and_review_orders_apply(worklist):
    worklist.view.sortByColumn(3, QtCore.Qt.SortOrder.DescendingOrder)
    assert worklist.shown_ids() == ["b", "c", "a", "d"]  # most uncertain first, the failed item last
    worklist.view.sortByColumn(2, QtCore.Qt.SortOrder.AscendingOrder)
    assert worklist.shown_ids() == ["c", "b", "a", "d"]
    worklist.order.setCurrentIndex(worklist.order.findData("domain"))
    assert worklist.shown_ids() == ["d", "c", "b", "a"]
    worklist.order.setCurrentIndex(worklist.order.findData("uncertainty"))
    assert worklist.shown_ids() == ["b", "c", "a", "d"]
    worklist.order.setCurrentIndex(0)
    assert worklist.shown_ids() == ["a", "b", "c", "d"]


def test_activating_a_row_names_its_item(worklist, qtbot):
    worklist.view.sortByColumn(3, QtCore.Qt.SortOrder.DescendingOrder)
    with qtbot.waitSignal(worklist.item_chosen) as sig:
        worklist.view.activated.emit(worklist.proxy.index(0, 1))
    assert sig.args == ["b"]
