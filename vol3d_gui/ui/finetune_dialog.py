"""The fine-tune dialog: options, a per-batch progress bar with ETA, a live loss plot,
Cancel (stops within one batch, writes nothing), and before/after metrics side by side.

Progress arrives as data (vol3d_gui.ml.tasks.Progress: epoch, batch, loss, metrics, ETA)
from the FinetuneTask's own signal; nothing here parses text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from vol3d_gui.store.labels import labelset_hash
from vol3d_gui.ui.settings import user_models_dir


def result_table(before: dict, after: dict) -> str:
    """Before / after figures on the held-out part, each with its interval: on a few dozen
    reviewed cases they are wide, and a reader should see that before trusting a change."""
    from vol3d_gui.ml.intervals import with_interval

    def cell(m, k):
        return with_interval(m[k], (m.get("intervals") or {}).get(k), 2)

    rows = "".join(f"<tr><td>{k.replace('_', ' ')}</td><td>{cell(before, k)}</td><td><b>{cell(after, k)}</b></td></tr>"
                   for k in ("accuracy", "auc", "balanced_accuracy")
                   if isinstance(before.get(k), float) and np.isfinite(before[k]))
    return f"<table><tr><th></th><th>before</th><th>after</th></tr>{rows}</table>"


def change_text(change: dict | None) -> str:
    """The paired test of after vs before on the same held-out cases, in words."""
    auc = (change or {}).get("auc") or {}
    if not np.isfinite(auc.get("difference", float("nan"))):
        return ""
    from vol3d_gui.ml.intervals import with_interval

    lo, hi = auc["interval"]
    verdict = ("better than the base beyond chance" if lo > 0 else "worse than the base beyond chance" if hi < 0
               else "not distinguishable from the base on these cases")
    return (f"<br>AUC change, paired on the same cases: {with_interval(auc['difference'], auc['interval'], 3)}, "
            f"p = {auc['p_value']:.2g}: <b>{verdict}</b>.")


class FinetuneDialog(QtWidgets.QDialog):
    def __init__(self, window, panel, labelled):
        super().__init__(window)
        self.setWindowTitle(f"Fine-tune {panel.bundle.label}")
        self.host, self.panel, self.labelled = window, panel, list(labelled)
        self.job = None  # the running FinetuneTask
        self.losses: list[float] = []
        self.report = None
        self.epochs = QtWidgets.QSpinBox()
        self.epochs.setRange(1, 200)
        self.epochs.setValue(30)  # best epoch by held-out log-loss: extra epochs cost time, not quality
        self.lr = QtWidgets.QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(1e-5, 1e-1)
        self.lr.setSingleStep(1e-4)
        self.lr.setValue(1e-4)
        self.held_out = QtWidgets.QDoubleSpinBox()
        self.held_out.setRange(0.1, 0.5)
        self.held_out.setSingleStep(0.05)
        self.held_out.setValue(0.3)
        self.freeze = QtWidgets.QCheckBox("freeze the convolutional base (train the head only)")
        self.augment = QtWidgets.QCheckBox("augmentation (small rotations, intensity jitter, and the "
                                           "flips the base model was trained with)")
        # on by default where the base model was trained with it: a model that never saw a
        # rotated or rescaled volume learns the augmentation instead of the reader's labels
        self.augment.setChecked(panel.bundle.training_flips is not None)
        self.weighting = QtWidgets.QCheckBox("class weighting for imbalance")
        self.weighting.setChecked(True)
        counts = np.bincount([c for _, c in self.labelled], minlength=len(panel.bundle.class_names))
        info = ", ".join(f"{n} {name}" for n, name in zip(counts, panel.bundle.class_names))
        self.summary = QtWidgets.QLabel(f"{len(self.labelled)} labelled items ({info}); "
                                        "a stratified held-out part measures before and after.")
        self.summary.setWordWrap(True)
        self.progress = QtWidgets.QProgressBar()
        self.eta = QtWidgets.QLabel("")
        self.plot = pg.PlotWidget(title="training loss per batch")
        self.plot.setBackground("w")
        self.plot.setMinimumHeight(160)
        self.curve = self.plot.plot(pen=pg.mkPen((200, 60, 40), width=2))
        self.result = QtWidgets.QLabel("")
        self.result.setWordWrap(True)
        self.start_button = QtWidgets.QPushButton("Start")
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.close_button = QtWidgets.QPushButton("Close")
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.close)
        self.cancel_button.setEnabled(False)
        form = QtWidgets.QFormLayout()
        form.addRow("Base model", QtWidgets.QLabel(panel.bundle.label))
        form.addRow("Epochs", self.epochs)
        form.addRow("Learning rate", self.lr)
        form.addRow("Held-out share", self.held_out)
        form.addRow("", self.freeze)
        form.addRow("", self.augment)
        form.addRow("", self.weighting)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.start_button, self.cancel_button, self.close_button):
            buttons.addWidget(b)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.summary)
        lay.addLayout(form)
        lay.addWidget(self.progress)
        lay.addWidget(self.eta)
        lay.addWidget(self.plot)
        lay.addWidget(self.result)
        lay.addLayout(buttons)
        self.resize(520, 620)

    def start(self) -> None:
        items = [it for it, _ in self.labelled]
        labels = [c for _, c in self.labelled]
        if len(labels) < 4 or len(set(labels)) < 2:
            self.host.show_error("Cannot fine-tune", "Label at least 4 items of at least two classes first.")
            return
        keys = {it.id: c for it, c in self.labelled}
        options = {"out_dir": str(user_models_dir()), "held_out": self.held_out.value(),
                   "epochs": self.epochs.value(), "learning_rate": self.lr.value(),
                   "freeze_base": self.freeze.isChecked(), "augment": self.augment.isChecked(),
                   "class_weight": "balanced" if self.weighting.isChecked() else None,
                   "labelset_hash": labelset_hash(keys)}
        self.losses = []
        task = self.job = self.panel.ml.finetune(items, labels, options)
        task.progress.connect(self._on_progress)
        task.result.connect(self._on_result)
        task.failed.connect(self._on_error)
        task.cancelled.connect(self._on_cancelled)
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.result.setText("Training…")

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.result.setText("Stopping after the current batch…")

    @QtCore.Slot(object)
    def _on_progress(self, p) -> None:
        self.progress.setRange(0, p.total)
        self.progress.setValue(p.done)
        self.progress.setFormat(f"%v / %m  {p.text()}")
        if p.stage == "training" and p.loss is not None:
            self.losses.append(p.loss)
            self.curve.setData(np.arange(len(self.losses)), np.array(self.losses))
        if p.eta_s is not None:
            self.eta.setText(f"{p.stage}: about {p.eta_s:.0f} s left")

    def _finish(self) -> None:
        self.job = None
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.eta.setText("")

    @QtCore.Slot(object)
    def _on_result(self, payload) -> None:
        self._finish()
        if payload is None:
            return
        self.report = payload
        b = payload["before"]
        self.result.setText(f"New version <b>{Path(payload['path']).stem}</b> is now the active model "
                            f"(earlier versions stay in the model list).<br>Held-out part ({b['n']} items; it also "
                            f"picked the epoch, so 'after' is optimistic; 95% confidence intervals):"
                            + result_table(b, payload["after"]) + change_text(payload.get("change"))
                            + ("<br>No epoch beat the base model on the held-out part: the new version "
                               "keeps the base's weights." if self._best_epoch(payload) == 0 else ""))

    @staticmethod
    def _best_epoch(payload):
        return ((payload.get("card") or {}).get("finetune") or {}).get("best_epoch")

    @QtCore.Slot(str)
    def _on_error(self, message) -> None:
        self._finish()
        self.result.setText("")
        self.host.show_error("Fine-tuning failed", message)

    @QtCore.Slot()
    def _on_cancelled(self) -> None:
        self._finish()
        self.result.setText("Cancelled: nothing was written.")
