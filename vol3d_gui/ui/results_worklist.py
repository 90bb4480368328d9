"""The results of an archive run (`vol3d score`) as a worklist a reader goes through.

A self-contained widget over a Study from ``core.results_study.open_results``: one row per
scored item with its predicted class, the probability of the last class (e.g. "lesion"), the
uncertainty, the domain flag and any error. Every column sorts by its value (numbers as
numbers; a missing value sorts last); "Review order" applies ``order_items``: the most
uncertain first, or failed and out-of-domain items first. Activating a row emits
``item_chosen(item_id)``; the window opens that item.
"""

from __future__ import annotations

import math

from PySide6 import QtCore, QtWidgets

from vol3d_gui.core.results_study import REVIEW_ORDERS, order_items
from vol3d_gui.core.study import Study

SORT_ROLE = QtCore.Qt.ItemDataRole.UserRole + 1
ITEM_ID_ROLE = QtCore.Qt.ItemDataRole.UserRole + 2


def _number(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


class ResultsModel(QtCore.QAbstractTableModel):
    COLUMNS = ("Item", "Prediction", "P", "Uncertainty", "Domain", "Error")

    def __init__(self, study: Study, parent=None):
        super().__init__(parent)
        self.study = study
        self.items = list(study)
        self.last_class = (study.class_names or [""])[-1]

    def set_order(self, items) -> None:
        self.beginResetModel()
        self.items = list(items)
        self.endResetModel()

    def rowCount(self, parent=None):
        return 0 if parent is not None and parent.isValid() else len(self.items)

    def columnCount(self, parent=None):
        return len(self.COLUMNS)

    def headerData(self, section, orientation, role=QtCore.Qt.ItemDataRole.DisplayRole):
        if role == QtCore.Qt.ItemDataRole.DisplayRole and orientation == QtCore.Qt.Orientation.Horizontal:
            name = self.COLUMNS[section]
            return f"P({self.last_class})" if name == "P" and self.last_class else name
        return None

    def _values(self, item) -> tuple:
        """(display text, sort key) of each column for an item."""
        s = item.extras["score"]
        p = _number(s["probabilities"].get(self.last_class))
        u = _number(s["uncertainty"])
        if s["status"] != "ok":
            domain = ("error", 0)
        elif s["in_domain"] is None:
            domain = ("", 3)
        else:
            domain = ("in" if s["in_domain"] else "OUT", 2 if s["in_domain"] else 1)
        return (
            (item.name, item.name),
            (s["predicted_class"] or "", s["predicted_class"] or "\uffff"),
            ("" if p is None else f"{p:.3f}", math.inf if p is None else p),
            ("" if u is None else f"{u:.3f}", -math.inf if u is None else u),
            domain,
            (s["error_type"] or "", s["error_type"] or "\uffff"),
        )

    def data(self, index, role=QtCore.Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        item = self.items[index.row()]
        if role == ITEM_ID_ROLE:
            return item.id
        if role == QtCore.Qt.ItemDataRole.ToolTipRole:
            s = item.extras["score"]
            return s["error_message"] or s["domain_reasons"] or None
        text, key = self._values(item)[index.column()]
        if role == QtCore.Qt.ItemDataRole.DisplayRole:
            return text
        if role == SORT_ROLE:
            return key
        return None


class ResultsWorklist(QtWidgets.QWidget):
    item_chosen = QtCore.Signal(str)

    def __init__(self, study: Study, parent=None):
        super().__init__(parent)
        self.model = ResultsModel(study, self)
        self.proxy = QtCore.QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.view = QtWidgets.QTableView()
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(-1, QtCore.Qt.SortOrder.AscendingOrder)  # file order until asked
        self.view.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.view.activated.connect(self._activated)
        self.order = QtWidgets.QComboBox()
        self.order.addItem("file order", None)
        for name in REVIEW_ORDERS:
            self.order.addItem(f"by {name}", name)
        self.order.currentIndexChanged.connect(self._reorder)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel(f"{study.name}: {len(study)} items   Review order"))
        top.addWidget(self.order, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.view)

    def shown_ids(self) -> list[str]:
        return [self.proxy.index(r, 0).data(ITEM_ID_ROLE) for r in range(self.proxy.rowCount())]

    def _reorder(self, _index: int) -> None:
        by = self.order.currentData()
        self.proxy.sort(-1)  # the review order replaces a column sort
        self.view.horizontalHeader().setSortIndicator(-1, QtCore.Qt.SortOrder.AscendingOrder)
        self.model.set_order(order_items(self.model.study, by) if by else self.model.study)

    def _activated(self, index) -> None:
        self.item_chosen.emit(index.data(ITEM_ID_ROLE))
