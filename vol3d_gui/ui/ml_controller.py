"""The ML controller: the one Qt object the window owns for model work.

It owns the ML worker, makes typed tasks (vol3d_gui.ui.ml_tasks) and applies the rules that
span tasks: a new predict supersedes the previous one (cancelled, not only ignored: dropped
if still queued, its service request stopped if running), and a Grad-CAM for another volume
supersedes the previous Grad-CAM. Panels connect to the returned task's own signals.
"""

from __future__ import annotations

from PySide6 import QtCore

from vol3d_gui.ml.tasks import Priority
from vol3d_gui.ui.ml_tasks import (
    ClassifyAllTask,
    FinetuneTask,
    GradcamTask,
    LoadModelTask,
    MLTask,
    PredictTask,
    TrainTask,
)
from vol3d_gui.ui.workers import MLWorker


class MLController(QtCore.QObject):
    modelLoaded = QtCore.Signal(object)  # the ModelBundle (card only: weights live in the service)
    deviceReady = QtCore.Signal(str)
    submitted = QtCore.Signal(object)  # every task, as it is queued
    _release = QtCore.Signal(object)  # queued to this thread: starts a task once its caller returned

    def __init__(self, parent=None, worker: MLWorker | None = None, mixed_precision: bool = False):
        super().__init__(parent)
        self.worker = worker or MLWorker(self, mixed_precision=mixed_precision)
        self.worker.modelLoaded.connect(self.modelLoaded)
        self.worker.deviceReady.connect(self.deviceReady)
        self._predict: PredictTask | None = None
        self._gradcam: GradcamTask | None = None
        self._ahead: list[MLTask] = []  # the next case's predict and Grad-CAM
        self._live: set[MLTask] = set()  # Python owns the task objects until they finish
        self._release.connect(self._on_release, QtCore.Qt.ConnectionType.QueuedConnection)

    @property
    def bundle(self):
        return self.worker.bundle

    @property
    def device(self) -> str | None:
        return self.worker.device

    def submit(self, task: MLTask) -> MLTask:
        """Queue a task (call from the GUI thread). It is held until this thread's event loop
        runs again, so the caller connects to its signals before any can fire (as with a
        QNetworkReply); cancel() works at once. Work asked of a stopped worker (a result that
        was already queued when the window closed asks for the next step) is cancelled at once
        and never runs or signals."""
        if self.worker.stopped:
            task.cancel()  # not queued anywhere: only marks it
            task.state = "cancelled"
            return task
        self._live.add(task)
        task.finished.connect(self._forget)
        self.worker.submit(task, hold=True)
        self.submitted.emit(task)
        self._release.emit(task)
        return task

    @QtCore.Slot(object)
    def _on_release(self, task: MLTask) -> None:
        self.worker.release(task)

    @QtCore.Slot()
    def _forget(self) -> None:
        # queued after the task's last signal: every earlier one has been delivered
        self._live = {t for t in self._live if not t.done}
        self.worker.bury()  # the tasks the worker is done with are freed here, on this thread

    # --- tasks -----------------------------------------------------------------------------------------
    def load_model(self, path) -> LoadModelTask:
        return self.submit(LoadModelTask(path))

    def predict(self, volume, item_id=None) -> PredictTask:
        """Probabilities of the volume on screen; the previous predict is cancelled."""
        if self._predict is not None and not self._predict.done:
            self._predict.cancel()
        self._predict = self.submit(PredictTask(volume, item_id))
        return self._predict

    def gradcam(self, volume, class_index=None, key=None, plus: bool = False) -> GradcamTask:
        """A saliency map of the volume on screen; one for another volume still pending is cancelled."""
        old = self._gradcam
        if old is not None and not old.done and old.volume is not volume:
            old.cancel()
        self._gradcam = self.submit(GradcamTask(volume, class_index, key, plus))
        return self._gradcam

    def ahead(self, task: MLTask) -> MLTask:
        """Work for the case after the one on screen (its predict, then its Grad-CAM): behind
        the case on screen, ahead of batch work; a new next case cancels the previous one's."""
        if isinstance(task, PredictTask):
            for old in self._ahead:
                if not old.done:
                    old.cancel()
            self._ahead = []
        task.priority = Priority.NEXT_CASE
        self._ahead.append(task)
        return self.submit(task)

    def classify_all(self, items) -> ClassifyAllTask:
        return self.submit(ClassifyAllTask(items))

    def finetune(self, items, labels, options: dict) -> FinetuneTask:
        return self.submit(FinetuneTask(items, labels, options))

    def train(self, items, labels, card: dict, options: dict) -> TrainTask:
        return self.submit(TrainTask(items, labels, card, options))

    def cancel_all(self) -> None:
        self.worker.cancel_all()

    def stop(self, timeout_ms: int = 30000) -> None:
        """Cancel everything and end the worker thread and the service process."""
        self.worker.stop(timeout_ms)
