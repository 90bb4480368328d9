"""Review mode: step through the worklist and assign classes with keys 1..9.

Every label goes to the label store at once (one committed event per key press), with the
reviewer's name, the image's content hash and what the model said at that moment.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from vol3d_gui.store.labels import LabelStore, LabelStoreError, default_store_path, make_item_key
from vol3d_gui.ui.main_window import app_settings


def labels_db_path() -> Path:
    env = os.environ.get("VOL3D_LABELS_DB")
    return Path(env) if env else default_store_path()


class ReviewPanel(QtWidgets.QWidget):
    labelled = QtCore.Signal(str, int)  # item id, class

    def __init__(self, window):
        super().__init__()
        self.window = window
        self.store: LabelStore | None = None
        self.class_buttons: list[QtWidgets.QPushButton] = []
        self.reviewer = QtWidgets.QLineEdit(app_settings().value("reviewer", "") or os.environ.get("USER", ""))
        self.reviewer.setPlaceholderText("your name")
        self.reviewer.editingFinished.connect(lambda: app_settings().setValue("reviewer", self.reviewer.text()))
        self.buttons_box = QtWidgets.QVBoxLayout()
        prev_b, next_b = QtWidgets.QPushButton("◀ Previous"), QtWidgets.QPushButton("Next ▶")
        unl_b = QtWidgets.QPushButton("Next unlabelled")
        prev_b.clicked.connect(lambda: window.worklist.step(-1))
        next_b.clicked.connect(lambda: window.worklist.step(1))
        unl_b.clicked.connect(lambda: window.worklist.step(1, unlabelled_only=True))
        self.status = QtWidgets.QLabel("")
        self.status.setWordWrap(True)
        self.export_button = QtWidgets.QPushButton("Export labels (CSV)…")
        self.export_button.clicked.connect(self._export)
        self.finetune_button = QtWidgets.QPushButton("Fine-tune on these labels…")
        self.finetune_button.clicked.connect(self._finetune)
        form = QtWidgets.QFormLayout()
        form.addRow("Reviewer", self.reviewer)
        nav = QtWidgets.QHBoxLayout()
        for b in (prev_b, next_b, unl_b):
            nav.addWidget(b)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(self.buttons_box)
        lay.addLayout(nav)
        lay.addWidget(self.status)
        lay.addWidget(self.export_button)
        lay.addWidget(self.finetune_button)
        lay.addStretch(1)
        self._shortcuts = []
        for n in range(1, 10):
            sc = QtGui.QShortcut(QtGui.QKeySequence(str(n)), window)
            sc.activated.connect(lambda n=n: self.assign(n - 1))
            self._shortcuts.append(sc)
        for key, delta in ((QtCore.Qt.Key.Key_N, 1), (QtCore.Qt.Key.Key_B, -1)):
            sc = QtGui.QShortcut(QtGui.QKeySequence(key), window)
            sc.activated.connect(lambda d=delta: window.worklist.step(d))
        window.studyChanged.connect(self._on_study)
        self._open_store()

    def _open_store(self) -> None:
        path = labels_db_path()
        try:
            self.store = LabelStore(path)
            self.status.setText(f"Labels are saved to {path}")
        except LabelStoreError as exc:
            self.store = None
            self.status.setText(f"Labels cannot be saved: {exc}")

    def item_key(self, item) -> str:
        study = self.window.study
        return make_item_key(study.source or study.name, item.id)

    def _on_study(self, study) -> None:
        while self.buttons_box.count():
            w = self.buttons_box.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self.class_buttons = []
        names = study.class_names or []
        for i, name in enumerate(names[:9]):
            b = QtWidgets.QPushButton(f"{i + 1}   {name}")
            b.setToolTip(f"Label the current item '{name}' (key {i + 1})")
            b.clicked.connect(lambda _=False, i=i: self.assign(i))
            self.buttons_box.addWidget(b)
            self.class_buttons.append(b)
        if self.store is not None:  # show what was labelled before, in any session
            prefix = f"{study.source or study.name}::"
            for key, ev in self.store.current_labels(prefix).items():
                self.window.worklist.set_label(key[len(prefix):], ev.label)

    def assign(self, class_index: int) -> bool:
        w = self.window
        item, study = w.current_item, w.study
        if item is None or study is None or not study.class_names or class_index >= len(study.class_names):
            return False
        if self.store is None:
            w.show_error("Cannot save the label", self.status.text())
            return False
        pred = w.worklist.model.predictions.get(item.id)
        panel = getattr(w, "model_panel", None)
        version = panel.bundle.label if panel is not None and panel.bundle is not None else None
        try:
            self.store.add_label(self.item_key(item), class_index, class_name=study.class_names[class_index],
                                 content_hash=w.current_volume.content_hash() if w.current_volume is not None else None,
                                 reviewer=self.reviewer.text().strip(), model_version=version,
                                 model_prediction=None if pred is None else (pred.class_index,
                                                                             pred.probabilities.tolist()))
        except LabelStoreError as exc:
            w.show_error("Cannot save the label", exc)
            return False
        w.worklist.set_label(item.id, class_index)
        n = len(w.worklist.model.labels)
        self.status.setText(f"{item.name}: {study.class_names[class_index]}  ({n} of {len(study)} labelled)")
        self.labelled.emit(item.id, class_index)
        w.worklist.step(1)
        return True

    def labelled_items(self):
        """(item, class) for the current study's labelled items."""
        study = self.window.study
        labels = self.window.worklist.model.labels
        return [(it, labels[it.id]) for it in study if it.id in labels] if study else []

    def _export(self) -> None:
        if self.store is None:
            return
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export labels", "labels.csv", "CSV (*.csv)")
        if path:
            try:
                self.store.export_csv(path)
            except LabelStoreError as exc:
                self.window.show_error("Cannot export labels", exc)

    def _finetune(self) -> None:
        from vol3d_gui.ui.finetune_dialog import FinetuneDialog

        panel = getattr(self.window, "model_panel", None)
        if panel is None or panel.bundle is None:
            self.window.show_error("Cannot fine-tune", "Load a model first.")
            return
        FinetuneDialog(self.window, panel, self.labelled_items()).open()

    def closeEvent(self, ev):
        if self.store is not None:
            self.store.close()
        super().closeEvent(ev)
