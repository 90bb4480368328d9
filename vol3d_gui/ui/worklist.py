"""The worklist table: the rows of viewer.worklist.Worklist in the order it computes.

The table shows exactly the order the review steps through (there is no proxy model with a
sort of its own), and its selection follows the viewer model's current item: a row becomes
current because a case opened, never the other way round. A click asks for a case
(``itemRequested``); whether it opens is the I/O controller's business.
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from vol3d_gui.viewer.model import ViewerModel
from vol3d_gui.viewer.worklist import FILTERS, Worklist


class WorklistTableModel(QtCore.QAbstractTableModel):
    COLUMNS = ("Item", "Truth", "Label", "Prediction", "Agree")

    def __init__(self, worklist: Worklist, parent=None):
        super().__init__(parent)
        self.worklist = worklist
        worklist.reordered.connect(self._on_reordered)
        worklist.changed.connect(self._on_changed)

    def rowCount(self, parent=None):
        return 0 if (parent is not None and parent.isValid()) else len(self.worklist.order())

    def columnCount(self, parent=None):
        return len(self.COLUMNS)

    def headerData(self, section, orientation, role=QtCore.Qt.ItemDataRole.DisplayRole):
        if role == QtCore.Qt.ItemDataRole.DisplayRole and orientation == QtCore.Qt.Orientation.Horizontal:
            return self.COLUMNS[section]
        return None

    def item_at(self, row: int):
        order = self.worklist.order()
        return self.worklist.study[order[row]] if 0 <= row < len(order) else None

    def row_of(self, item_id: str) -> int:
        for i, row in enumerate(self.worklist.order()):
            if self.worklist.study[row].id == item_id:
                return i
        return -1

    def data(self, index, role=QtCore.Qt.ItemDataRole.DisplayRole):
        item = self.item_at(index.row()) if index.isValid() else None
        if item is None:
            return None
        wl, col = self.worklist, index.column()
        pred = wl.predictions.get(item.id)
        if not wl.answer_visible(item.id):  # blind reading: only the name until it is labelled
            if role == QtCore.Qt.ItemDataRole.DisplayRole:
                return item.name if col == 0 else ("hidden" if col in (1, 3) else "")
            return None
        if role == QtCore.Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return item.name
            if col == 1:
                return wl.class_name(item.label)
            if col == 2:
                return wl.class_name(wl.labels.get(item.id))
            if col == 3 and pred is not None:
                return f"{pred.class_name} ({pred.confidence:.0%})"
            if col == 4:
                agree = wl.agreement(item.id)
                return "" if agree is None else ("yes" if agree else "NO")
        # a prediction for a case outside the model's training data is marked (grey italics, and
        # said in the tooltip): its answer is not evidence, whatever its percentage
        outside = pred is not None and pred.in_domain is False
        if role == QtCore.Qt.ItemDataRole.FontRole and col == 3 and outside:
            font = QtGui.QFont()
            font.setItalic(True)
            return font
        if role == QtCore.Qt.ItemDataRole.ForegroundRole and col == 3 and outside:
            return QtGui.QBrush(QtGui.QColor(140, 140, 140))
        if role == QtCore.Qt.ItemDataRole.ForegroundRole and col == 3 and pred is not None:
            ref = wl.labels.get(item.id, item.label)
            if ref is not None and ref != pred.class_index:
                return QtGui.QBrush(QtGui.QColor(220, 60, 60))
        if role == QtCore.Qt.ItemDataRole.ToolTipRole and pred is not None:
            probs = ", ".join(f"{wl.class_name(i)}: {p:.3f}" for i, p in enumerate(pred.probabilities))
            return f"outside the model's training data; {probs}" if outside else probs
        return None

    def _on_reordered(self) -> None:
        self.beginResetModel()
        self.endResetModel()

    def _on_changed(self, item_id) -> None:
        row = self.row_of(item_id)
        if row >= 0:
            self.dataChanged.emit(self.index(row, 0), self.index(row, self.columnCount() - 1))


class WorklistPanel(QtWidgets.QWidget):
    itemRequested = QtCore.Signal(str)  # item id the reader clicked or stepped to

    def __init__(self, worklist: Worklist, model: ViewerModel, parent=None):
        super().__init__(parent)
        self.worklist = worklist
        self.viewer = model
        self.table_model = WorklistTableModel(worklist, self)
        self.table = QtWidgets.QTableView()
        self.table.setModel(self.table_model)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        # columns follow their contents as labels and predictions arrive ("lesi..." otherwise);
        # measured on the first rows only, so a study of thousands stays cheap to update
        header.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setResizeContentsPrecision(200)
        self.table.setWordWrap(False)
        self.table.setAlternatingRowColors(True)
        self._syncing = False
        self.table.selectionModel().currentRowChanged.connect(self._on_current)
        self.header = QtWidgets.QLabel("No study open")
        self.filter_combo = QtWidgets.QComboBox()
        self.filter_combo.addItems(["All items", "Unlabelled", "Disagreements", "Outside the model's domain"])
        self.filter_combo.currentIndexChanged.connect(lambda i: self.set_filter(FILTERS[i]))
        self.sort_button = QtWidgets.QPushButton("Most uncertain first")
        self.sort_button.setCheckable(True)
        self.sort_button.setToolTip("Active-learning order: the model's least certain predictions first")
        self.sort_button.toggled.connect(lambda on: self._sort_toggled("uncertainty", on))
        self.domain_button = QtWidgets.QPushButton("Out of domain first")
        self.domain_button.setCheckable(True)
        self.domain_button.setToolTip("Cases the model's domain check flagged first (e.g. from an archive "
                                      "run's results), each group most uncertain first")
        self.domain_button.toggled.connect(lambda on: self._sort_toggled("domain", on))
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(self.filter_combo, 1)
        bar.addWidget(self.sort_button)
        bar.addWidget(self.domain_button)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.header)
        lay.addLayout(bar)
        lay.addWidget(self.table)
        self.table_model.modelReset.connect(self.follow_current)
        model.events.item.connect(lambda _item: self.follow_current())
        model.events.study.connect(self._on_study)

    @property
    def study(self):
        return self.worklist.study

    def _on_study(self, study) -> None:
        self.header.setText(f"{study.name}: {len(study)} items" if study else "No study open")

    def set_filter(self, mode: str) -> None:
        self.worklist.set_filter(mode)
        self.filter_combo.blockSignals(True)
        self.filter_combo.setCurrentIndex(FILTERS.index(mode))
        self.filter_combo.blockSignals(False)

    def sort_by_uncertainty(self, on: bool = True) -> None:
        self.sort_button.setChecked(on)

    def sort_by_domain(self, on: bool = True) -> None:
        self.domain_button.setChecked(on)

    def _sort_toggled(self, mode: str, on: bool) -> None:
        other = self.domain_button if mode == "uncertainty" else self.sort_button
        if on and other.isChecked():  # one order at a time
            other.blockSignals(True)
            other.setChecked(False)
            other.blockSignals(False)
        if on:
            self.worklist.set_sort(mode)
        elif not other.isChecked():
            self.worklist.set_sort("study")

    def shown_ids(self) -> list[str]:
        return self.worklist.shown_ids()

    def follow_current(self) -> None:
        """Select the viewer model's current item (or nothing when it is not shown)."""
        item = self.viewer.item
        row = self.table_model.row_of(item.id) if item is not None and self.study is not None else -1
        self._syncing = True
        try:
            sel = self.table.selectionModel()
            if row < 0:
                sel.clearCurrentIndex()
                sel.clearSelection()
            elif self.table.currentIndex().row() != row:
                self.table.setCurrentIndex(self.table_model.index(row, 0))
            self.table.scrollTo(self.table_model.index(max(row, 0), 0))
        finally:
            self._syncing = False

    def current_id(self) -> str | None:
        item = self.table_model.item_at(self.table.currentIndex().row())
        return item.id if item is not None else None

    def _on_current(self, current, _previous) -> None:
        if self._syncing or not current.isValid():
            return
        item = self.table_model.item_at(current.row())
        if item is not None and (self.viewer.item is None or item.id != self.viewer.item.id):
            self.itemRequested.emit(item.id)
