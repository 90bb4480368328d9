"""The model panel: choose a bundle, read its card, see class probabilities for the volume
on screen (computed automatically on the ML worker), classify the whole study, and show
Grad-CAM saliency for the predicted or a chosen class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtWidgets

from vol3d_gui.ui.ml_controller import MLController
from vol3d_gui.ui.ml_tasks import GradcamTask, PredictTask
from vol3d_gui.ui.peak_button import PeakButton
from vol3d_gui.ui.probability_chart import ProbabilityChart
from vol3d_gui.ui.reliability_chart import ReliabilityChart
from vol3d_gui.ui.settings import REPO_MODELS, model_dirs
from vol3d_gui.viewer.model import ViewerModel
from vol3d_gui.viewer.worklist import Worklist

DEFAULT_MODEL = "phantom-lesion"
# the map is coarse (6^3 cells for a 48^3 model) and interpolated: below half its peak it washes
# over half the body and hides where it peaks; the reader can lower it in the Overlays panel
SALIENCY_THRESHOLD = 0.5
MODEL_DOCK_WIDTH = 380  # px at start: the probabilities and card fit, the slice views keep the rest


class ModelPanel(QtWidgets.QWidget):
    """Observes the viewer model (the case on screen) and writes predictions to the worklist and
    the saliency layer to the viewer model; the window shows its errors and messages. Model
    work goes through the ML controller's typed tasks."""

    errorRaised = QtCore.Signal(str, str)  # dialog title, message
    message = QtCore.Signal(str)  # a status-bar line
    deviceChanged = QtCore.Signal(str)
    modelChanged = QtCore.Signal(str)  # the active bundle's label (recorded with each label)
    # a study item's prediction (item id, model, displayed class, probabilities, extras): kept
    # beside the labels by the review controller
    predicted = QtCore.Signal(str, str, int, object, object)

    def __init__(self, viewer: ViewerModel, worklist: Worklist, ml: MLController | None = None):
        super().__init__()
        self.viewer = viewer
        self.worklist = worklist
        self.ml = ml or MLController(self)
        self.bundle = None
        self.probs = None
        self.answer: dict | None = None  # the last "assess" reply for the case on screen
        # the next case's answer, computed while the reader looks at this one: (volume, payload)
        self._ahead: tuple | None = None
        self._was_hidden = False  # whether the answer on screen was last drawn hidden (blind reading)
        self._volume = None
        self._item_id = None
        self._all_job = None  # the running ClassifyAllTask
        self._saliency_cache: dict = {}

        self.combo = QtWidgets.QComboBox()
        self.combo.setToolTip("Bundled models and your fine-tuned versions")
        self.open_button = QtWidgets.QPushButton("Open…")
        self.summary = QtWidgets.QLabel("No model loaded")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.chart = ProbabilityChart()
        self.result_label = QtWidgets.QLabel("")
        self.result_label.setWordWrap(True)
        self.reliability = ReliabilityChart()
        self.reliability.setMaximumHeight(200)
        self.reliability.setToolTip("Reliability on the model's test split: bar = observed share, "
                                    "dashed = perfect calibration, green = the operating point")
        self.peak_button = PeakButton(viewer)
        self.saliency_box = QtWidgets.QCheckBox("Grad-CAM saliency")
        self.saliency_box.setChecked(True)
        self.explain_combo = QtWidgets.QComboBox()
        self.explain_combo.setToolTip("Class the saliency map explains")
        self.all_button = QtWidgets.QPushButton("Classify all")
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setVisible(False)

        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.combo, 1)
        top.addWidget(self.open_button)
        sal = QtWidgets.QHBoxLayout()
        sal.addWidget(self.saliency_box)
        sal.addWidget(self.explain_combo, 1)
        sal.addWidget(self.peak_button)
        run = QtWidgets.QHBoxLayout()
        run.addWidget(self.all_button)
        run.addWidget(self.cancel_button)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.summary)
        lay.addWidget(self.reliability)
        lay.addWidget(self.chart)
        lay.addWidget(self.result_label)
        lay.addLayout(sal)
        lay.addLayout(run)
        lay.addWidget(self.progress)
        lay.addStretch(1)

        self.open_button.clicked.connect(self._open_dialog)
        self.combo.activated.connect(lambda i: self.load_model(self.combo.itemData(i)))
        self.all_button.clicked.connect(self.classify_all)
        self.cancel_button.clicked.connect(self.cancel_all)
        self.saliency_box.toggled.connect(lambda _: self._refresh_saliency())
        self.explain_combo.activated.connect(lambda _: self._refresh_saliency())
        self.ml.modelLoaded.connect(self._on_model_loaded)
        # bound slots, not lambdas, for every ML signal: a lambda has no thread affinity, so it
        # would run (and touch a widget) in the worker thread; PySide 6.12 also aborts in
        # none_dealloc on such calls
        self.ml.deviceReady.connect(self._on_device)
        viewer.caseChanged.connect(self._on_case)
        # blind reading: the answer appears when the case on screen gets its label
        worklist.changed.connect(self._on_worklist_changed)
        worklist.reordered.connect(self._on_worklist_changed)
        self.refresh_models()
        if viewer.volume is not None:  # the panel can arrive after the volume (make run)
            self._on_case(viewer.volume, viewer.item)

    @property
    def worker(self) -> MLController:
        """The ML controller under its old name (the window stops it on close)."""
        return self.ml

    @QtCore.Slot(str)
    def _on_device(self, description: str) -> None:
        self.deviceChanged.emit(f"Model runs on {description}")

    # --- models -----------------------------------------------------------------------------
    def refresh_models(self, select: Path | None = None) -> None:
        from vol3d_gui.ml.bundle import list_bundles

        self.combo.blockSignals(True)
        self.combo.clear()
        for p in list_bundles(*model_dirs()):
            self.combo.addItem(p.stem, str(p))
        if select is not None:
            i = self.combo.findData(str(select))
            if i < 0:
                self.combo.addItem(Path(select).stem, str(select))
                i = self.combo.count() - 1
            self.combo.setCurrentIndex(i)
        self.combo.blockSignals(False)

    def load_model(self, path):
        if not path:
            return None
        self.summary.setText(f"Loading {Path(path).name}…")
        task = self.ml.load_model(path)
        task.failed.connect(self._on_load_failed)
        return task

    def default_model_path(self) -> Path | None:
        from vol3d_gui.ml.bundle import list_bundles

        bundles = list_bundles(*model_dirs())
        for p in bundles:
            if p.stem == DEFAULT_MODEL:
                return p
        return bundles[0] if bundles else None

    def _open_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open model bundle", str(REPO_MODELS),
                                                        "Keras model bundle (*.keras)")
        if path:
            self.load_model(path)

    def _on_model_loaded(self, bundle) -> None:
        self.bundle = bundle
        self._saliency_cache.clear()
        self.refresh_models(select=bundle.path)
        self.summary.setText(_breakable(bundle.summary()))
        self.reliability.set_table(bundle.card.get("reliability"),
                                   (bundle.card.get("operating_point") or {}).get("threshold"))
        self.explain_combo.clear()
        self.explain_combo.addItem("predicted class", None)
        for i, name in enumerate(bundle.class_names):
            self.explain_combo.addItem(name, i)
        self.message.emit(f"Model {bundle.label} loaded")
        self.modelChanged.emit(bundle.label)
        if self._volume is not None:
            self._predict_current()

    # --- prediction -------------------------------------------------------------------------
    def _on_case(self, volume, item) -> None:
        self._volume = volume
        self._item_id = item.id if item is not None else None
        self.probs = None
        self.answer = None
        self.peak_button.set_target(None, "")
        self.chart.clear_bars()
        self.result_label.setText("")
        if volume is not None and min(volume.shape) == 1:
            # a single DICOM slice opens for viewing; the classifier is 3-D
            self.result_label.setText("A single slice: the model needs a volume")
            return
        if self.bundle is None or volume is None:
            return
        ahead, self._ahead = self._ahead, None
        self._prune_cache(volume, ahead[0] if ahead is not None else None)
        if ahead is not None and ahead[0] is volume:
            if ahead[1] is None:  # still on its way: it answers this case when it lands
                self._ahead = ahead
                self.result_label.setText("Classifying…")
            elif ahead[1]["model"] == self.bundle.label:
                self._on_predicted(ahead[1])  # read ahead: shown at once, its saliency map cached too
            else:
                self._predict_current()
            return
        self._predict_current()

    def precompute(self, volume, item_id=None) -> None:
        """The next case's prediction and Grad-CAM, behind the case on screen (the reader then
        steps to an answer that is already there)."""
        if self.bundle is None or volume is None or min(volume.shape) == 1 or volume is self._volume:
            return
        self._ahead = (volume, None)
        self._prune_cache(self._volume, volume)
        task = self.ml.ahead(PredictTask(volume, item_id))
        task.result.connect(self._on_ahead_predicted)

    def _prune_cache(self, *volumes) -> None:
        """Saliency maps are keyed by the volume's id: keep only those of live volumes (the case
        on screen and the next), so a reused id can never find another case's map."""
        keep = {id(v) for v in volumes if v is not None}
        self._saliency_cache = {k: v for k, v in self._saliency_cache.items() if k[0] in keep}

    @QtCore.Slot(object)
    def _on_ahead_predicted(self, payload) -> None:
        if self._ahead is None or self._ahead[0] is not payload["volume"] or self.bundle is None:
            return
        if payload["volume"] is self._volume:  # the reader got there first
            self._ahead = None
            self._on_predicted(payload)
            return
        self._ahead = (payload["volume"], payload)
        if payload["item_id"] is not None:
            self._set_worklist_prediction(payload)
        cls = self.explain_combo.currentData()
        cls = int(payload["class_index"]) if cls is None else int(cls)
        key = (id(payload["volume"]), self.bundle.label, cls)
        if self.saliency_box.isChecked() and key not in self._saliency_cache:
            task = self.ml.ahead(GradcamTask(payload["volume"], cls, key=key))
            task.result.connect(self._on_saliency)

    def _predict_current(self) -> None:
        self.result_label.setText("Classifying…")
        task = self.ml.predict(self._volume, item_id=self._item_id)  # cancels the previous volume's
        task.result.connect(self._on_predicted)
        task.failed.connect(self._on_task_failed)

    def classify_all(self) -> None:
        study = self.viewer.study
        if study is None or self.bundle is None:
            self.errorRaised.emit("Cannot classify", "Open a study and a model first.")
            return
        task = self._all_job = self.ml.classify_all(study.items)
        task.itemResult.connect(self._on_item_predicted)
        task.progress.connect(self._on_progress)
        task.failed.connect(self._on_task_failed)
        task.finished.connect(self._on_all_finished)
        self.progress.setRange(0, len(study))
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.all_button.setEnabled(False)
        self.cancel_button.setEnabled(True)

    def cancel_all(self) -> None:
        if self._all_job is not None:
            self._all_job.cancel()

    # --- saliency -----------------------------------------------------------------------------
    def explained_class(self) -> int | None:
        data = self.explain_combo.currentData()
        if data is not None:
            return int(data)
        return None if self.probs is None else self.displayed_class()

    def displayed_class(self) -> int:
        """The class shown: the card's operating point (ml.reliability.decide), else the argmax."""
        if self.answer is not None and self.answer.get("class_index") is not None:
            return int(self.answer["class_index"])
        return int(np.argmax(self.probs))

    def in_domain(self) -> bool | None:
        dom = (self.answer or {}).get("domain")
        return None if dom is None else bool(dom["in_domain"])

    def _refresh_saliency(self) -> None:
        if not self.saliency_box.isChecked() or self.bundle is None or self._volume is None:
            self.viewer.remove_overlay("saliency")
            return
        cls = self.explained_class()
        if cls is None:
            return
        key = (id(self._volume), self.bundle.label, cls)
        cached = self._saliency_cache.get(key)
        if cached is not None:
            self._show_saliency(cached)
            return
        task = self.ml.gradcam(self._volume, cls, key=key)
        task.result.connect(self._on_saliency)
        task.failed.connect(self._on_task_failed)

    def _show_saliency(self, cached) -> None:
        if self.answer_hidden():  # the saliency map points at the answer: hidden in blind reading
            self.viewer.remove_overlay("saliency")
            return
        saliency, body = cached
        self.peak_button.update_from(saliency, body, self.in_domain())
        previous = self.viewer.overlays.get("saliency")
        style = ({"colormap": previous.colormap, "opacity": previous.opacity, "threshold": previous.threshold}
                 if previous is not None else {"colormap": "hot", "opacity": 0.5, "threshold": SALIENCY_THRESHOLD})
        self.viewer.add_overlay(saliency, "saliency", vmin=0.0, vmax=1.0, order=1, **style)
        self.viewer.saliency = saliency

    # --- task replies (bound slots: queued to this thread) ----------------------------------------
    @QtCore.Slot(object)
    def _on_predicted(self, payload) -> None:
        if payload["volume"] is not self._volume:
            return  # an older volume's answer that left the worker before the cancel
        self.answer = payload
        self._show_probs(payload["probabilities"])
        if payload["item_id"] is not None:
            self._set_worklist_prediction(payload)
        self._refresh_saliency()

    @QtCore.Slot(object)
    def _on_item_predicted(self, payload) -> None:  # classify all: each item marked in or out of the domain
        self._set_worklist_prediction(payload)

    @QtCore.Slot(object)
    def _on_saliency(self, payload) -> None:
        key = payload["key"]
        self._saliency_cache[key] = (payload["saliency"], payload.get("body"))
        if key == (id(self._volume), self.bundle.label if self.bundle else None, self.explained_class()):
            self._show_saliency(self._saliency_cache[key])

    def answer_hidden(self) -> bool:
        """Blind reading: the model's answer for the case on screen waits for the reader's label."""
        return not self.worklist.answer_visible(self._item_id)

    def _show_probs(self, probs) -> None:
        self.probs = np.asarray(probs, float)
        self._was_hidden = self.answer_hidden()
        if self._was_hidden:
            self.chart.clear_bars()
            self.result_label.setText("<i>Blind reading: the model's answer shows once you have labelled "
                                      "this case.</i>")
            return
        names = self.bundle.class_names
        k = self.displayed_class()
        outside = self.in_domain() is False
        self.chart.show_probabilities(names, self.probs, chosen=k, grey=outside,
                                      spread=(self.answer or {}).get("spread"))
        unc = (self.answer or {}).get("uncertainty")
        text = f"<b>{names[k]}</b> ({self.probs[k]:.1%}"
        text += f", uncertainty {unc:.2f} bit) — {self.bundle.label}" if unc is not None else f") — {self.bundle.label}"
        if outside:
            reasons = self.answer["domain"]["reasons"]
            text = (f"<span style='color:#b03a2e'><b>outside this model's training data:</b> "
                    f"{reasons[0] if reasons else 'unknown reason'}</span><br><span style='color:gray'>{text}</span>")
        self.result_label.setText(text)

    def _on_worklist_changed(self, *_args) -> None:
        """Redraw only when the case on screen's answer turns visible or hidden (its label, or
        blind reading switched), not for every prediction that classify-all writes."""
        hidden = self.answer_hidden()
        if hidden != self._was_hidden and self.probs is not None and self.bundle is not None:
            self._show_probs(self.probs)
            self._refresh_saliency()

    def _set_worklist_prediction(self, payload) -> None:
        probs = payload["probabilities"]
        k = payload.get("class_index")
        dom = payload.get("domain") or {}
        k = int(np.argmax(probs)) if k is None else int(k)
        self.worklist.set_prediction(payload["item_id"], k, probs, model=payload.get("model"),
                                     uncertainty_value=payload.get("uncertainty"), in_domain=dom.get("in_domain"))
        self.predicted.emit(payload["item_id"], payload.get("model") or "", k, list(map(float, probs)),
                            {"uncertainty": payload.get("uncertainty"), "in_domain": dom.get("in_domain")})

    @QtCore.Slot(str)
    def _on_load_failed(self, message: str) -> None:
        self.summary.setText(_breakable(self.bundle.summary()) if self.bundle else "No model loaded")
        self.refresh_models(select=self.bundle.path if self.bundle else None)
        self.result_label.setText("")
        self.errorRaised.emit("Cannot load model", message)

    @QtCore.Slot(str)
    def _on_task_failed(self, message: str) -> None:
        self.result_label.setText("")
        self.errorRaised.emit("Model job failed", message)

    @QtCore.Slot(object)
    def _on_progress(self, p) -> None:
        self.progress.setRange(0, p.total)
        self.progress.setValue(p.done)
        self.progress.setFormat(f"%v / %m  {p.item or ''}")

    @QtCore.Slot()
    def _on_all_finished(self) -> None:
        self._all_job = None
        self.progress.setVisible(False)
        self.all_button.setEnabled(True)
        self.cancel_button.setEnabled(False)


def _breakable(text: str) -> str:
    """Let QLabel's word wrap break long data-source strings after their commas: an
    unbreakable line sets the dock's minimum width (it took half the window)."""
    return text.replace(",", ",\u200b")


def attach_model_panel(window, default_model=None) -> ModelPanel:
    panel = ModelPanel(window.viewer, window.worklist_state)
    panel.errorRaised.connect(window.show_error)
    panel.message.connect(lambda text: window.statusBar().showMessage(text, 5000))
    panel.deviceChanged.connect(window.device_label.setText)
    panel.modelChanged.connect(window.review_controller.set_model_version)
    panel.predicted.connect(window.review_controller.keep_prediction)
    # the next case, once read ahead, is classified and explained behind the one on screen
    window.io.prefetched.connect(lambda case: panel.precompute(case.volume, getattr(case.item, "id", None)))
    window.model_panel = panel
    dock = window.add_dock(panel, "Model", QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
    # the slice views get the space (the saved layout is restored before this dock exists)
    window.resizeDocks([dock], [MODEL_DOCK_WIDTH], QtCore.Qt.Orientation.Horizontal)
    path = default_model or panel.default_model_path()
    if path:
        panel.load_model(path)
    return panel
