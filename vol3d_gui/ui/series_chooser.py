"""A dialog to pick one of the series (and volume files) a folder holds.

Takes plain data: one dict per entry, as ``vol3d_gui.core.study.series_extras`` builds them
plus an ``id`` (the study item id) and optionally a ``name``; keys it shows: description,
note, modality, n_slices, spacing. Nothing here reads a file.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

COLUMNS = ("Description", "Modality", "Slices", "Spacing (mm)")


def _spacing_text(spacing) -> str:
    if not spacing:
        return ""
    return " x ".join(f"{float(v):.3g}" for v in spacing)


def _description(entry: dict) -> str:
    desc = entry.get("description") or entry.get("name") or entry.get("id", "")
    note = entry.get("note")
    return f"{desc} ({note})" if note else str(desc)


class SeriesChooser(QtWidgets.QDialog):
    """Lists entries largest first as given; ``chosen_id`` is the selected entry's id."""

    def __init__(self, entries: list[dict], parent=None, *, title: str = "Choose a series",
                 current_id: str | None = None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.entries = [dict(e) for e in entries]
        self.table = QtWidgets.QTableWidget(len(self.entries), len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(COLUMNS)):
            header.setSectionResizeMode(col, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        for row, entry in enumerate(self.entries):
            cells = (_description(entry), str(entry.get("modality") or ""),
                     "" if entry.get("n_slices") is None else str(entry["n_slices"]),
                     _spacing_text(entry.get("spacing")))
            for col, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                if col == 2:
                    item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight
                                          | QtCore.Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Open
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.open_button = buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Open)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.table.cellDoubleClicked.connect(lambda *_: self.accept())
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(QtWidgets.QLabel(f"{len(self.entries)} series and volumes in this folder"))
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        ids = [e.get("id") for e in self.entries]
        if self.entries:
            self.table.selectRow(ids.index(current_id) if current_id in ids else 0)
        self._selection_changed()
        self.resize(640, 320)

    def _selection_changed(self) -> None:
        self.open_button.setEnabled(self.chosen_row is not None)

    @property
    def chosen_row(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].row() if rows else None

    @property
    def chosen_id(self) -> str | None:
        row = self.chosen_row
        return None if row is None else self.entries[row].get("id")
