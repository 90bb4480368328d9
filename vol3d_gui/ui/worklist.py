"""The worklist: the study's items with their label and the model's prediction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from vol3d_gui.core.study import Study


@dataclass
class Prediction:
    class_index: int
    class_name: str
    probabilities: np.ndarray

    @property
    def confidence(self) -> float:
        return float(self.probabilities[self.class_index])

    @property
    def uncertainty(self) -> float:
        """1 - margin between the two most likely classes (1 = coin toss)."""
        p = np.sort(np.asarray(self.probabilities, dtype=float))[::-1]
        return float(1.0 - (p[0] - (p[1] if len(p) > 1 else 0.0)))


class WorklistModel(QtCore.QAbstractTableModel):
    COLUMNS = ("Item", "Truth", "Label", "Prediction", "Agree")
    SORT_ROLE = QtCore.Qt.ItemDataRole.UserRole + 1

    def __init__(self, parent=None):
        super().__init__(parent)
        self.study: Study | None = None
        self.predictions: dict[str, Prediction] = {}
        self.labels: dict[str, int] = {}  # reader's labels by item id

    def set_study(self, study: Study | None) -> None:
        self.beginResetModel()
        self.study = study
        self.predictions = {}
        self.labels = {}
        self.endResetModel()

    def class_name(self, index: int | None) -> str:
        if index is None:
            return ""
        names = self.study.class_names if self.study else None
        return names[index] if names and 0 <= index < len(names) else str(index)

    def rowCount(self, parent=None):
        return 0 if (parent is not None and parent.isValid()) or self.study is None else len(self.study)

    def columnCount(self, parent=None):
        return len(self.COLUMNS)

    def headerData(self, section, orientation, role=QtCore.Qt.ItemDataRole.DisplayRole):
        if role == QtCore.Qt.ItemDataRole.DisplayRole and orientation == QtCore.Qt.Orientation.Horizontal:
            return self.COLUMNS[section]
        return None

    def data(self, index, role=QtCore.Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self.study is None:
            return None
        item = self.study[index.row()]
        col = index.column()
        pred = self.predictions.get(item.id)
        if role == QtCore.Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return item.name
            if col == 1:
                return self.class_name(item.label)
            if col == 2:
                return self.class_name(self.labels.get(item.id))
            if col == 3 and pred is not None:
                return f"{pred.class_name} ({pred.confidence:.0%})"
            if col == 4:
                agree = self.agreement(item.id)
                return "" if agree is None else ("yes" if agree else "NO")
        if role == self.SORT_ROLE:
            # the active-learning order: most uncertain prediction first, unpredicted last
            return -pred.uncertainty if pred is not None else 1.0
        if role == QtCore.Qt.ItemDataRole.ForegroundRole and col == 3 and pred is not None:
            ref = self.labels.get(item.id, item.label)
            if ref is not None and ref != pred.class_index:
                return QtGui.QBrush(QtGui.QColor(220, 60, 60))
        if role == QtCore.Qt.ItemDataRole.ToolTipRole and pred is not None:
            return ", ".join(f"{self.class_name(i)}: {p:.3f}" for i, p in enumerate(pred.probabilities))
        return None

    def set_prediction(self, item_id: str, class_index: int, probabilities) -> None:
        probs = np.asarray(probabilities, dtype=float)
        self.predictions[item_id] = Prediction(int(class_index), self.class_name(int(class_index)), probs)
        self._changed(item_id)

    def set_label(self, item_id: str, label: int | None) -> None:
        if label is None:
            self.labels.pop(item_id, None)
        else:
            self.labels[item_id] = int(label)
        self._changed(item_id)

    def agreement(self, item_id: str) -> bool | None:
        """Does the model agree with the reader's label (or, without one, the ground truth)?"""
        pred = self.predictions.get(item_id)
        item = self.study.by_id(item_id) if self.study else None
        ref = self.labels.get(item_id, item.label if item is not None else None)
        if pred is None or ref is None:
            return None
        return pred.class_index == ref

    def row_of(self, item_id: str) -> int:
        for i, item in enumerate(self.study or []):
            if item.id == item_id:
                return i
        return -1

    def _changed(self, item_id: str) -> None:
        row = self.row_of(item_id)
        if row >= 0:
            self.dataChanged.emit(self.index(row, 0), self.index(row, self.columnCount() - 1))


class WorklistFilter(QtCore.QSortFilterProxyModel):
    MODES = ("all", "unlabelled", "disagreements")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.mode = "all"
        self.setSortRole(WorklistModel.SORT_ROLE)

    def set_mode(self, mode: str) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.10; invalidateFilter is deprecated there
            self.beginFilterChange()
            self.mode = mode
            self.endFilterChange(QtCore.QSortFilterProxyModel.Direction.Rows)
        else:
            self.mode = mode
            self.invalidateFilter()

    def filterAcceptsRow(self, row, parent):
        model: WorklistModel = self.sourceModel()
        if self.mode == "all" or model.study is None:
            return True
        item = model.study[row]
        if self.mode == "unlabelled":
            return item.id not in model.labels
        return model.agreement(item.id) is False


class WorklistPanel(QtWidgets.QWidget):
    itemActivated = QtCore.Signal(int)  # row

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model = WorklistModel(self)
        self.proxy = WorklistFilter(self)
        self.proxy.setSourceModel(self.model)
        self.table = QtWidgets.QTableView()
        self.table.setModel(self.proxy)
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
        self.table.selectionModel().currentRowChanged.connect(self._on_current)
        self.header = QtWidgets.QLabel("No study open")
        self.filter_combo = QtWidgets.QComboBox()
        self.filter_combo.addItems(["All items", "Unlabelled", "Disagreements"])
        self.filter_combo.currentIndexChanged.connect(lambda i: self.set_filter(WorklistFilter.MODES[i]))
        self.sort_button = QtWidgets.QPushButton("Most uncertain first")
        self.sort_button.setToolTip("Active-learning order: the model's least certain predictions first")
        self.sort_button.clicked.connect(self.sort_by_uncertainty)
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(self.filter_combo, 1)
        bar.addWidget(self.sort_button)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.header)
        lay.addLayout(bar)
        lay.addWidget(self.table)

    @property
    def study(self) -> Study | None:
        return self.model.study

    def set_study(self, study: Study | None) -> None:
        self.model.set_study(study)
        self.header.setText(f"{study.name}: {len(study)} items" if study else "No study open")

    def set_prediction(self, item_id: str, class_index: int, probabilities) -> None:
        self.model.set_prediction(item_id, class_index, probabilities)

    def set_label(self, item_id: str, label: int | None) -> None:
        self.model.set_label(item_id, label)

    def set_filter(self, mode: str) -> None:
        self.proxy.set_mode(mode)
        self.filter_combo.blockSignals(True)
        self.filter_combo.setCurrentIndex(WorklistFilter.MODES.index(mode))
        self.filter_combo.blockSignals(False)

    def sort_by_uncertainty(self) -> None:
        self.proxy.sort(0, QtCore.Qt.SortOrder.AscendingOrder)

    def visible_rows(self) -> list[int]:
        """Source rows in the order shown (after filter and sort)."""
        return [self.proxy.mapToSource(self.proxy.index(r, 0)).row() for r in range(self.proxy.rowCount())]

    def step(self, delta: int, unlabelled_only: bool = False) -> bool:
        """Select the next/previous shown item (optionally the next unlabelled one)."""
        rows = self.visible_rows()
        if not rows:
            return False
        cur = self.current_row()
        pos = rows.index(cur) if cur in rows else -1
        for k in range(1, len(rows) + 1):
            i = pos + delta * k
            if not 0 <= i < len(rows):
                return False
            row = rows[i]
            if not unlabelled_only or self.model.study[row].id not in self.model.labels:
                self.select_row(row)
                return True
        return False

    def select_row(self, row: int) -> None:
        idx = self.proxy.mapFromSource(self.model.index(row, 0))
        self.table.setCurrentIndex(idx)

    def current_row(self) -> int:
        idx = self.table.currentIndex()
        return self.proxy.mapToSource(idx).row() if idx.isValid() else -1

    def _on_current(self, current, _previous) -> None:
        if current.isValid():
            self.itemActivated.emit(self.proxy.mapToSource(current).row())
