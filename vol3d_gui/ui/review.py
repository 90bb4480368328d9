"""Review mode: step through the worklist and assign classes with keys 1..9.

The logic (which case is labelled, what is stored, which case comes next) is
viewer.review.ReviewSession; this module is its controller and panel. Every label goes to the
label store at once (one committed event per key press). A key press while the next case is
still opening is refused with a message: a label only ever lands on the case on screen.
"""

from __future__ import annotations

import os

import numpy as np
from PySide6 import QtCore, QtWidgets

from vol3d_gui.store.labels import LabelStore, LabelStoreError
from vol3d_gui.store.predictions import PredictionStore, predictions_path
from vol3d_gui.ui.io_controller import IOController
from vol3d_gui.ui.settings import app_settings, labels_db_path
from vol3d_gui.viewer.review import Assignment, ReviewError, ReviewSession, study_key
from vol3d_gui.viewer.worklist import Prediction, predictions_from_results

STORE_POLL_MS = 2000  # labels written by another window or process show up within this


class ReviewController(QtCore.QObject):
    labelled = QtCore.Signal(object)  # Assignment
    message = QtCore.Signal(str)  # a short confirmation or refusal, shown without taking focus
    blindChanged = QtCore.Signal(bool)
    failed = QtCore.Signal(str, str)  # dialog title, message

    def __init__(self, session: ReviewSession, io: IOController, parent=None):
        super().__init__(parent)
        self.session = session
        self.io = io
        self.store_status = ""
        self.predictions: PredictionStore | None = None
        self._open_store()
        session.model.events.study.connect(self._on_study)
        self._poll = QtCore.QTimer(self)
        self._poll.setInterval(STORE_POLL_MS)
        self._poll.timeout.connect(self.refresh_labels)

    def _open_store(self) -> None:
        path = labels_db_path()
        try:
            self.session.store = LabelStore(path)
            self.store_status = f"Labels are saved to {path}"
        except LabelStoreError as exc:
            self.session.store = None
            self.store_status = f"Labels cannot be saved: {exc}"
        try:
            self.predictions = PredictionStore(predictions_path(path))
        except LabelStoreError as exc:
            self.predictions = None
            self.store_status += f"\nPredictions are not kept: {exc}"

    def _on_study(self, study) -> None:
        self.refresh_labels()
        if study is not None:  # a results table of `vol3d score`: the archive run's predictions
            stored = predictions_from_results(study)
            if stored:
                self.session.worklist.set_predictions(stored)
        if study is None or self.predictions is None:
            return
        try:
            kept = self.predictions.latest(study_key(study))
        except LabelStoreError as exc:
            self.message.emit(f"Kept predictions could not be read: {exc}")
            return
        wl = self.session.worklist
        known = {it.id for it in study}
        wl.set_predictions({
            item_id: Prediction(p.class_index, wl.class_name(p.class_index), np.asarray(p.probabilities, float),
                                model=p.model, uncertainty_value=p.uncertainty, in_domain=p.in_domain)
            for item_id, p in kept.items() if item_id in known})

    @QtCore.Slot(str, str, int, object, object)
    def keep_prediction(self, item_id: str, model: str, class_index: int, probabilities, extra) -> None:
        """A study item's prediction, kept where the labels are (shown again after a restart)."""
        extra = dict(extra or {})
        study = self.session.model.study
        if self.predictions is not None and study is not None:
            try:
                self.predictions.record(study_key(study), item_id, model, class_index, probabilities,
                                        uncertainty=extra.get("uncertainty"), in_domain=extra.get("in_domain"))
            except LabelStoreError as exc:
                self.message.emit(str(exc))

    def export(self, path, with_predictions: bool = False) -> None:
        """Labels (full history) as CSV; or current labels beside the kept predictions."""
        store, study = self.session.store, self.session.model.study
        if store is None:
            raise LabelStoreError(labels_db_path(), "the label database is not open")
        if with_predictions and self.predictions is not None and study is not None:
            self.predictions.export_with_labels(path, store.study_labels(study_key(study)), study_key(study))
        else:
            store.export_csv(path)

    @QtCore.Slot(str)
    def set_model_version(self, label: str) -> None:
        self.session.model_version = label

    def start_polling(self) -> None:
        self._poll.start()

    def stop(self) -> None:
        self._poll.stop()
        if self.session.store is not None:
            self.session.store.close()
            self.session.store = None
        if self.predictions is not None:
            self.predictions.close()
            self.predictions = None

    def refresh_labels(self) -> None:
        try:
            self.session.load_labels()
        except LabelStoreError as exc:
            self.message.emit(f"Labels could not be re-read: {exc}")

    def assign(self, class_index: int) -> Assignment | None:
        if self.io.pending_item is not None:
            self.message.emit(f"Still opening {self.io.pending}: the label was not given")
            return None
        try:
            done = self.session.assign(class_index)
        except ReviewError as exc:
            if self.session.model.item is not None and self.session.store is None:
                self.failed.emit("Cannot save the label", str(exc))
            else:
                self.message.emit(str(exc))
            return None
        answer = f" — model: {done.model_answer}" if done.model_answer else ""
        self.message.emit(f"{done.item_name}: {done.class_name}{answer}  ({done.labelled} of {done.total} labelled)")
        self.labelled.emit(done)
        if done.next_id is not None:
            self.io.open_item(done.next_id)
        return done

    def undo(self) -> Assignment | None:
        """Ctrl+Z: the last label or clear is reverted (a new event) and its case opens again."""
        done = self._act(self.session.undo, lambda d: f"Undone: {d.item_name} is back to {d.class_name}")
        item = self.session.model.item
        if done is not None and (item is None or item.id != done.item_id):
            self.io.open_item(done.item_id)
        return done

    def clear(self) -> Assignment | None:
        return self._act(self.session.clear, lambda d: f"{d.item_name}: label cleared")

    def _act(self, action, describe) -> Assignment | None:
        try:
            done = action()
        except ReviewError as exc:
            self.message.emit(str(exc))
            return None
        self.message.emit(describe(done))
        self.labelled.emit(done)
        return done

    def set_blind(self, on: bool) -> None:
        if self.session.blind != bool(on):
            self.session.blind = bool(on)
            self.blindChanged.emit(bool(on))

    def step(self, delta: int, unlabelled_only: bool = False) -> bool:
        item = self.session.model.item
        target = self.session.worklist.step_from(item.id if item is not None else None, delta,
                                                 unlabelled_only=unlabelled_only)
        if target is None:
            return False
        self.io.open_item(target)
        return True


class ReviewPanel(QtWidgets.QWidget):
    def __init__(self, controller: ReviewController, parent=None):
        super().__init__(parent)
        self.controller = controller
        session = controller.session
        self.class_buttons: list[QtWidgets.QPushButton] = []
        self.reviewer = QtWidgets.QLineEdit(app_settings().value("reviewer", "") or os.environ.get("USER", ""))
        self.reviewer.setPlaceholderText("your name")
        session.reviewer = self.reviewer.text().strip()
        self.reviewer.editingFinished.connect(self._reviewer_changed)
        self.buttons_box = QtWidgets.QVBoxLayout()
        prev_b, next_b = QtWidgets.QPushButton("◀ Previous"), QtWidgets.QPushButton("Next ▶")
        unl_b = QtWidgets.QPushButton("Next unlabelled")
        prev_b.clicked.connect(lambda: controller.step(-1))
        next_b.clicked.connect(lambda: controller.step(1))
        unl_b.clicked.connect(lambda: controller.step(1, unlabelled_only=True))
        self.status = QtWidgets.QLabel(controller.store_status)
        self.status.setWordWrap(True)
        self.export_button = QtWidgets.QPushButton("Export labels (CSV)…")
        self.export_button.clicked.connect(lambda: self._export(False))
        self.export_all_button = QtWidgets.QPushButton("Export labels with predictions (CSV)…")
        self.export_all_button.clicked.connect(lambda: self._export(True))
        self.finetune_button = QtWidgets.QPushButton("Fine-tune on these labels…")
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
        lay.addWidget(self.export_all_button)
        lay.addWidget(self.finetune_button)
        lay.addStretch(1)
        controller.message.connect(self.status.setText)
        session.model.events.study.connect(self._on_study)

    def _reviewer_changed(self) -> None:
        self.controller.session.reviewer = self.reviewer.text().strip()
        app_settings().setValue("reviewer", self.reviewer.text())

    def _on_study(self, study) -> None:
        while self.buttons_box.count():
            w = self.buttons_box.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self.class_buttons = []
        for i, name in enumerate(((study.class_names or []) if study is not None else [])[:9]):
            b = QtWidgets.QPushButton(f"{i + 1}   {name}")
            b.setToolTip(f"Label the current item '{name}' (key {i + 1})")
            b.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
            b.clicked.connect(lambda _=False, i=i: self.controller.assign(i))
            self.buttons_box.addWidget(b)
            self.class_buttons.append(b)

    def _export(self, with_predictions: bool) -> None:
        name = "labels-and-predictions.csv" if with_predictions else "labels.csv"
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export labels", name, "CSV (*.csv)")
        if path:
            try:
                self.controller.export(path, with_predictions)
            except LabelStoreError as exc:
                self.controller.failed.emit("Cannot export labels", str(exc))
