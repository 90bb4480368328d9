"""The one ML worker: a single thread runs jobs in order and talks to the ML service.

Jobs are callables ``fn(ctx)`` that report progress with ``ctx.progress(done, total, text)``,
poll ``ctx.should_stop()`` and send model work to the ML service process with
``ctx.call(kind, **kwargs)`` (see vol3d_gui.ml.service for why TensorFlow lives in its own
process). ``ctx.bundle`` is the loaded bundle's card (a ModelBundle without weights on this
side). Results and errors come back to the GUI thread as Qt signals. The service starts
with the first job, after the window is up.
"""

from __future__ import annotations

import itertools
import multiprocessing
import queue
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from PySide6 import QtCore

from vol3d_gui.core.errors import Vol3dError


@dataclass
class Job:
    id: int
    kind: str
    fn: object
    cancelled: threading.Event = field(default_factory=threading.Event)


class JobContext:
    def __init__(self, worker: MLWorker, job: Job):
        self._worker = worker
        self._job = job

    @property
    def bundle(self):
        return self._worker.bundle

    def progress(self, done: int, total: int, text: str = "") -> None:
        self._worker.progress.emit(self._job.id, int(done), int(total), text)

    def should_stop(self) -> bool:
        return self._job.cancelled.is_set()

    def call(self, kind: str, **kwargs):
        """Run one request in the ML service; relays its progress; returns its payload."""
        return self._worker._call(self._job, kind, kwargs)


class _Thread(QtCore.QThread):
    def __init__(self, worker: MLWorker):
        super().__init__()
        self.setObjectName("vol3d-ml-worker")
        self.worker = worker

    def run(self) -> None:
        self.worker._loop()


class MLWorker(QtCore.QObject):
    jobStarted = QtCore.Signal(int, str)
    progress = QtCore.Signal(int, int, int, str)  # job id, done, total, text
    result = QtCore.Signal(int, str, object)  # job id, kind, payload
    error = QtCore.Signal(int, str, str)  # job id, kind, message
    cancelled = QtCore.Signal(int, str)
    finished = QtCore.Signal(int)
    modelLoaded = QtCore.Signal(object)  # the ModelBundle
    deviceReady = QtCore.Signal(str)

    def __init__(self, parent=None, mixed_precision: bool = False):
        super().__init__(parent)
        self.bundle = None
        self.device = None
        self._mixed = mixed_precision
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._ids = itertools.count(1)
        self._current: Job | None = None
        self._lock = threading.Lock()
        self._proc = None
        self._conn = None
        self._remote_stop = None
        self._model_path = None
        self._thread = _Thread(self)
        self._thread.start()

    # --- submitting ------------------------------------------------------------------------------
    def submit(self, kind: str, fn) -> int:
        job = Job(next(self._ids), kind, fn)
        self._queue.put(job)
        return job.id

    def load_model(self, path) -> int:
        def fn(ctx):
            from vol3d_gui.ml.bundle import ModelBundle

            info = ctx.call("load_model", path=str(path))
            self.bundle = ModelBundle(None, info["card"], Path(info["path"]))
            self._model_path = info["path"]
            self.modelLoaded.emit(self.bundle)
            return self.bundle

        return self.submit("load_model", fn)

    def predict(self, volume, item_id=None) -> int:
        def fn(ctx):
            self._need_bundle()
            # probabilities, uncertainty, displayed class and domain check (ml.service.do_assess)
            return {"item_id": item_id, **ctx.call("assess", volume=volume), "model": ctx.bundle.label}

        return self.submit("predict", fn)

    def predict_items(self, items) -> int:
        """Classify study items one by one (each loaded on this thread), stopping within one volume."""
        items = list(items)

        def fn(ctx):
            self._need_bundle()
            n = 0
            for i, item in enumerate(items):
                if ctx.should_stop():
                    break
                answer = ctx.call("assess", volume=item.load())
                n += 1
                self.result.emit(self._current.id, "predict_item",
                                 {"item_id": item.id, **answer, "model": ctx.bundle.label})
                ctx.progress(i + 1, len(items), item.name)
            return {"n": n, "of": len(items)}

        return self.submit("predict_all", fn)

    def gradcam(self, volume, class_index=None, key=None, plus=False) -> int:
        def fn(ctx):
            self._need_bundle()
            # masked to the body before it is drawn (core.foreground), with the mask for the
            # crosshair's decision
            saliency, body = ctx.call("gradcam_in_body", volume=volume, class_index=class_index, plus=plus)
            return {"key": key, "saliency": saliency, "body": body}

        return self.submit("gradcam", fn)

    # --- control ---------------------------------------------------------------------------------------
    def cancel(self, job_id: int) -> None:
        with self._lock:
            if self._current is not None and self._current.id == job_id:
                self._current.cancelled.set()
                if self._remote_stop is not None:
                    self._remote_stop.set()
        for job in list(self._queue.queue):
            if job is not None and job.id == job_id:
                job.cancelled.set()

    def cancel_kind(self, kind: str) -> None:
        """Cancel the running and queued jobs of one kind (e.g. the GUI's "Classify all")."""
        for job in list(self._queue.queue):
            if job is not None and job.kind == kind:
                job.cancelled.set()
        with self._lock:
            if self._current is not None and self._current.kind == kind:
                self._current.cancelled.set()
                if self._remote_stop is not None:
                    self._remote_stop.set()

    def cancel_all(self) -> None:
        for job in list(self._queue.queue):
            if job is not None:
                job.cancelled.set()
        with self._lock:
            if self._current is not None:
                self._current.cancelled.set()
                if self._remote_stop is not None:
                    self._remote_stop.set()

    @property
    def busy(self) -> bool:
        return self._current is not None or not self._queue.empty()

    def stop(self, timeout_ms: int = 30000) -> None:
        """Cancel everything, end the thread and wait for it (no leaked QThreads)."""
        if not self._thread.isRunning():
            return
        self.cancel_all()
        self._queue.put(None)
        self._thread.wait(timeout_ms)
        self._stop_service()

    # --- the thread ----------------------------------------------------------------------------------
    def _need_bundle(self) -> None:
        if self.bundle is None:
            raise Vol3dError("no model is loaded")

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

    def _request(self, kind: str, kwargs: dict, job: Job | None):
        self._remote_stop.clear()
        if job is not None and job.cancelled.is_set():
            self._remote_stop.set()
        try:
            self._conn.send((kind, kwargs))
            while True:
                msg = self._conn.recv()
                if msg[0] == "progress":
                    if job is not None:
                        self.progress.emit(job.id, msg[1], msg[2], msg[3])
                    continue
                if msg[0] == "result":
                    return msg[1]
                raise Vol3dError(msg[2]) if msg[1] == "Vol3dError" else RuntimeError(msg[2])
        except (EOFError, OSError, BrokenPipeError) as exc:
            code = self._proc.exitcode if self._proc is not None else None
            self._proc = None
            raise RuntimeError(f"the ML service stopped unexpectedly (exit code {code})") from exc

    def _call(self, job: Job, kind: str, kwargs: dict):
        self._ensure_service()
        return self._request(kind, kwargs, job)

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

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if job.cancelled.is_set():
                self.cancelled.emit(job.id, job.kind)
                self.finished.emit(job.id)
                continue
            with self._lock:
                self._current = job
            self.jobStarted.emit(job.id, job.kind)
            try:
                payload = job.fn(JobContext(self, job))
                if job.cancelled.is_set():
                    self.cancelled.emit(job.id, job.kind)
                else:
                    self.result.emit(job.id, job.kind, payload)
            except Exception as exc:  # a bug or TF failure must not kill the worker
                if job.cancelled.is_set():  # a stop request surfaces as an exception in the job
                    self.cancelled.emit(job.id, job.kind)
                elif isinstance(exc, Vol3dError):
                    self.error.emit(job.id, job.kind, str(exc))
                else:
                    self.error.emit(job.id, job.kind,
                                    f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")
            finally:
                with self._lock:
                    self._current = None
                self.finished.emit(job.id)
