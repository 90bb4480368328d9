"""The one ML worker: a thread that runs typed tasks (vol3d_gui.ui.ml_tasks) by priority and
talks to the ML service process (see vol3d_gui.ml.service for why TensorFlow lives there).

Tasks of equal priority run in submission order; a lower priority number runs first, and a
long batch task lets queued on-screen tasks run between its volumes (``run_urgent``). Only
this thread uses the service's pipe. ``bundle`` is the loaded bundle's card (a ModelBundle
without weights on this side). The service starts with the first request, after the window
is up.
"""

from __future__ import annotations

import heapq
import itertools
import multiprocessing
import threading
import traceback
from pathlib import Path

from PySide6 import QtCore

from vol3d_gui.core.errors import Vol3dError
from vol3d_gui.ui.ml_tasks import MLTask, TaskContext


class TaskStopped(Exception):
    """The service ended a request because its stop event was set."""


class _Thread(QtCore.QThread):
    def __init__(self, worker: MLWorker):
        super().__init__()
        self.setObjectName("vol3d-ml-worker")
        self.worker = worker

    def run(self) -> None:
        self.worker._loop()


class MLWorker(QtCore.QObject):
    modelLoaded = QtCore.Signal(object)  # the ModelBundle (card only)
    deviceReady = QtCore.Signal(str)

    def __init__(self, parent=None, mixed_precision: bool = False):
        super().__init__(parent)
        self.bundle = None
        self.device = None
        self._mixed = mixed_precision
        self._cond = threading.Condition()
        self._heap: list[tuple[int, int, MLTask]] = []
        self._seq = itertools.count()
        self._running: list[MLTask] = []  # a stack: a batch task with an on-screen task run inside it
        self._held: set[MLTask] = set()  # submitted with hold=True, not yet released to the queue
        # tasks this thread is done with, freed by the GUI thread (bury): a task is a QObject of
        # the GUI thread, and the worker held the last reference to most of them (9 of 10 were
        # destroyed here), which Qt does not allow and which could deadlock with the GUI thread
        self._graveyard: list[MLTask] = []
        self._stopping = False
        self._proc = None
        self._conn = None
        # (bundle, weakref to the Volume, its model-grid tensor): the predict and the Grad-CAM of
        # one case share one resampling (ui.ml_tasks.TaskContext.model_input)
        self.last_input = None
        self._remote_stop = None
        self._model_path = None
        self._thread = _Thread(self)
        self._thread.start()

    # --- submitting and cancelling (any thread) -------------------------------------------------------
    def submit(self, task: MLTask, hold: bool = False) -> MLTask:
        """Queue a task. ``hold``: it counts as queued (cancel() drops it) but runs only after
        ``release(task)``, so a caller can connect to its signals before any can fire."""
        with self._cond:
            if self._stopping:
                raise RuntimeError("the ML worker has stopped")
            task._worker = self
            task.state = "queued"
            if hold:
                self._held.add(task)
            else:
                self._push(task)
        return task

    @property
    def stopped(self) -> bool:
        """stop() has been called: no task is taken any more."""
        with self._cond:
            return self._stopping

    def release(self, task: MLTask) -> None:
        with self._cond:
            if task in self._held:
                self._held.discard(task)
                if task.state == "queued" and not self._stopping:
                    self._push(task)

    def _push(self, task: MLTask) -> None:  # with self._cond held
        heapq.heappush(self._heap, (task.priority, next(self._seq), task))
        self._cond.notify()

    def cancel(self, task: MLTask) -> None:
        with self._cond:
            task._stop.set()
            dropped = task.state == "queued"
            if dropped:  # stays in the heap; the loop skips it
                task.state = "cancelled"
            elif task.state == "running" and self._running and self._running[-1] is task \
                    and self._remote_stop is not None:
                self._remote_stop.set()  # the service request running now is this task's
        if dropped:
            task.cancelled.emit()
            task.finished.emit()

    def cancel_all(self) -> None:
        with self._cond:
            tasks = [t for _, _, t in self._heap] + list(self._held) + list(self._running)
        for t in tasks:
            self.cancel(t)

    @property
    def busy(self) -> bool:
        with self._cond:
            return bool(self._running) or any(t.state == "queued" for _, _, t in self._heap) \
                or any(t.state == "queued" for t in self._held)

    def stop(self, timeout_ms: int = 30000) -> None:
        """Cancel everything, end the thread and wait for it (no leaked QThreads)."""
        if not self._thread.isRunning():
            return
        self.cancel_all()
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.wait(timeout_ms)
        self._stop_service()
        self.bury()

    # --- on the worker thread -------------------------------------------------------------------------
    def _next(self, below: int | None = None) -> MLTask | None:
        """The next queued task (waits for one unless ``below`` is given: then only a task of a
        priority number below it, without waiting). None: stop, or nothing urgent."""
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].state != "queued":
                    self._graveyard.append(heapq.heappop(self._heap)[2])  # cancelled while queued
                if self._heap and (below is None or self._heap[0][0] < below):
                    task = heapq.heappop(self._heap)[2]
                    task.state = "running"
                    self._running.append(task)
                    return task
                if below is not None or self._stopping:
                    return None
                self._cond.wait()

    def _loop(self) -> None:
        while (task := self._next()) is not None:
            self._run(task)
            del task  # the graveyard holds it now: not freed on this thread

    def run_urgent(self, priority: int) -> None:
        while (task := self._next(below=priority)) is not None:
            self._run(task)
            del task

    def bury(self) -> None:
        """Free the tasks the worker is done with (call from the GUI thread)."""
        with self._cond:
            dead, self._graveyard = self._graveyard, []
        del dead

    def _run(self, task: MLTask) -> None:
        task.started.emit()
        outcome, payload = "cancelled", None
        try:
            payload = task.run(TaskContext(self, task))
            outcome = "done"
        except TaskStopped:
            pass
        except Exception as exc:  # a bug or TF failure must not kill the worker
            outcome = "failed"
            payload = str(exc) if isinstance(exc, Vol3dError) else \
                f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
        with self._cond:  # cancel() sets the flag under this lock: a cancelled task never delivers
            if task.is_cancelled:
                outcome = "cancelled"  # a stop request may also surface as an error in the task
            self._running.remove(task)
            task.state = outcome
        if outcome == "done":
            task.result.emit(payload)
        elif outcome == "failed":
            task.failed.emit(payload)
        else:
            task.cancelled.emit()
        task.finished.emit()
        with self._cond:
            self._graveyard.append(task)

    def adopt_model(self, info: dict):
        from vol3d_gui.ml.bundle import ModelBundle

        self.bundle = ModelBundle(None, info["card"], Path(info["path"]))
        self._model_path = info["path"]
        self.modelLoaded.emit(self.bundle)
        return self.bundle

    def call(self, task: MLTask | None, kind: str, kwargs: dict):
        self._ensure_service()
        return self._request(kind, kwargs, task)

    def _ensure_service(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        from vol3d_gui.ml.service import serve

        # spawn, not fork: the child must not inherit Qt or GL state
        mp = multiprocessing.get_context("spawn")
        self._remote_stop = mp.Event()
        self._conn, child = mp.Pipe()
        self._proc = mp.Process(target=serve, args=(child, self._remote_stop, self._mixed),
                                name="vol3d-ml-service", daemon=True)
        self._proc.start()
        child.close()
        restarted = self.device is not None
        self.device = self._request("device", {}, None)
        self.deviceReady.emit(self.device)
        if restarted and self._model_path:  # the service died: bring the model back
            self._request("load_model", {"path": self._model_path}, None)

    def _request(self, kind: str, kwargs: dict, task: MLTask | None):
        self._remote_stop.clear()
        if task is not None and task.is_cancelled:  # cancel() may have come before the clear
            self._remote_stop.set()
        try:
            self._conn.send((kind, kwargs))
            while True:
                msg = self._conn.recv()
                if msg[0] == "progress":
                    if task is not None:
                        task.progress.emit(msg[1])
                    continue
                if msg[0] == "result":
                    return msg[1]
                if msg[1] == "TrainingStopped":
                    raise TaskStopped(msg[2])
                raise Vol3dError(msg[2]) if msg[1] == "Vol3dError" else RuntimeError(msg[2])
        except (EOFError, OSError, BrokenPipeError) as exc:
            code = self._proc.exitcode if self._proc is not None else None
            self._proc = None
            raise RuntimeError(f"the ML service stopped unexpectedly (exit code {code})") from exc

    def _stop_service(self) -> None:
        if self._proc is None:
            return
        try:
            self._conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        self._proc = None
