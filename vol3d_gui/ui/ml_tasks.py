"""Typed ML tasks: one QObject per job with its own signals, structured progress and cancel.

A task is created on the GUI thread, queued on the ML worker by priority (vol3d_gui.ml.tasks.
Priority) and run there; its signals reach GUI-thread slots queued, in order: any number of
``progress(Progress)``, then exactly one of ``result(object)``, ``failed(str)`` or
``cancelled()``, then ``finished()``. ``cancel()`` drops a queued task at once and asks a
running one to stop (its own flag, and the ML service's stop event while its request runs);
a cancelled task never delivers a result.

Everything heavy but TensorFlow-free (loading study items, preprocessing onto the model grid)
runs in ``run`` on the worker thread; only model-grid tensors go to the TensorFlow process.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np
from PySide6 import QtCore

from vol3d_gui.core.errors import Vol3dError
from vol3d_gui.ml.tasks import (
    EtaClock,
    Priority,
    Progress,
    assess_answer,
    finetune_tensors,
    gradcam_request,
    model_input,
    with_eta,
)


class MLTask(QtCore.QObject):
    started = QtCore.Signal()
    progress = QtCore.Signal(object)  # a vol3d_gui.ml.tasks.Progress
    result = QtCore.Signal(object)
    failed = QtCore.Signal(str)
    cancelled = QtCore.Signal()
    finished = QtCore.Signal()  # after result, failed or cancelled

    kind = "task"
    default_priority = Priority.ON_SCREEN

    def __init__(self, priority: int | None = None):
        super().__init__()
        self.priority = int(self.default_priority if priority is None else priority)
        self.state = "new"  # queued, running, done, failed, cancelled (set by the worker)
        self._stop = threading.Event()
        self._worker = None

    def cancel(self) -> None:
        """Drop it if queued; ask it to stop within one step if running."""
        if self._worker is not None:
            self._worker.cancel(self)
        else:
            self._stop.set()

    @property
    def is_cancelled(self) -> bool:
        return self._stop.is_set()

    @property
    def done(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    def run(self, ctx):  # pragma: no cover - every task says what it does
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.state} priority={self.priority}>"


class FunctionTask(MLTask):
    """A plain callable ``fn(ctx)`` as a task (tests, one-off jobs)."""

    def __init__(self, kind: str, fn, priority: int | None = None):
        super().__init__(priority)
        self.kind, self._fn = kind, fn

    def run(self, ctx):
        return self._fn(ctx)


class LoadModelTask(MLTask):
    kind = "load_model"

    def __init__(self, path):
        super().__init__()
        self.path = str(path)

    def run(self, ctx):
        return ctx.adopt_model(ctx.call("load_model", path=self.path))


class PredictTask(MLTask):
    """What the model says of the volume on screen: {"item_id", "model", "volume" (so a receiver
    can tell which case it answers), "probabilities", "uncertainty", "spread", "class_index" (at
    the card's operating point), "domain" (the domain check as a dict)}."""

    kind = "predict"

    def __init__(self, volume, item_id=None, priority: int | None = None):
        super().__init__(priority)
        self.volume, self.item_id = volume, item_id

    def run(self, ctx):
        bundle = ctx.need_bundle()
        x = ctx.model_input(self.volume)
        if ctx.should_stop():
            return None
        answer = assess_answer(bundle, self.volume, x, ctx.call("assess", x=x))
        return {"item_id": self.item_id, "model": bundle.label, "volume": self.volume, **answer}


class GradcamTask(MLTask):
    """A Grad-CAM map of the volume on screen, masked to the body (core.foreground) before it is
    drawn. Result: {"key", "saliency": Volume, "body": the body mask Volume}."""

    kind = "gradcam"

    def __init__(self, volume, class_index=None, key=None, plus: bool = False, priority: int | None = None):
        super().__init__(priority)
        self.volume, self.class_index, self.key, self.plus = volume, class_index, key, plus

    def run(self, ctx):
        from vol3d_gui.core.foreground import foreground_mask, mask_saliency
        from vol3d_gui.ml.gradcam import saliency_volume

        request = gradcam_request(ctx.need_bundle(), self.volume, self.class_index, self.plus,
                                  x=ctx.model_input(self.volume))
        if ctx.should_stop():
            return None
        reply = ctx.call("gradcam", **request)
        cam = saliency_volume(reply["cam"], reply["affine"], reply["meta"], self.volume.source)
        body = foreground_mask(self.volume)  # a peak in the air must not draw the reader's eye
        return {"key": self.key, "saliency": mask_saliency(cam, body), "body": body}


class ClassifyAllTask(MLTask):
    """Every study item, one by one (loaded and preprocessed on the worker thread). Each
    answer comes as ``itemResult`` (PredictTask's keys but "volume"), each item marked in or
    out of the model's domain; between volumes the worker runs any queued on-screen task
    first. Result: {"n", "of"}."""

    itemResult = QtCore.Signal(object)
    kind = "classify_all"
    default_priority = Priority.BATCH

    def __init__(self, items, priority: int | None = None):
        super().__init__(priority)
        self.items = list(items)

    def run(self, ctx):
        bundle = ctx.need_bundle()
        clock, n = EtaClock(), 0
        for i, item in enumerate(self.items):
            ctx.yield_to_urgent()
            if ctx.should_stop():
                break
            volume = item.load()
            x = model_input(bundle, volume)
            answer = assess_answer(bundle, volume, x, ctx.call("assess", x=x))
            n += 1
            self.itemResult.emit({"item_id": item.id, "model": bundle.label, **answer})
            ctx.progress(with_eta(Progress(i + 1, len(self.items), "classifying", item=item.name), clock))
        return {"n": n, "of": len(self.items)}


class FinetuneTask(MLTask):
    """Fine-tune the loaded bundle on labelled items; the new version becomes the active model.
    ``options``: the keyword arguments of vol3d_gui.ml.finetune.finetune_arrays (epochs,
    learning_rate, out_dir, ...). Result: its report {"path", "before", "after", "card"}."""

    kind = "finetune"
    default_priority = Priority.TRAINING

    def __init__(self, items, labels, options: dict, priority: int | None = None):
        super().__init__(priority)
        self.items, self.labels, self.options = list(items), list(labels), dict(options)

    def run(self, ctx):
        x = finetune_tensors(ctx.need_bundle(), [it.load for it in self.items], should_stop=ctx.should_stop,
                             progress=ctx.progress, between=ctx.yield_to_urgent)
        if x is None:
            return None
        report = ctx.call("call", module="vol3d_gui.ml.finetune", function="run_in_service",
                          kwargs={"x": x, "labels": self.labels, **self.options})
        ctx.adopt_model(ctx.call("load_model", path=report["path"]))
        return report


class TrainTask(MLTask):
    """Train a new bundle from scratch on labelled items, preprocessed by ``card`` (class
    names, input shape, preprocessing, name); ``options``: the keyword arguments of
    vol3d_gui.ml.training.train_in_service (out_path, epochs, ...). Does not load the result."""

    kind = "train"
    default_priority = Priority.TRAINING

    def __init__(self, items, labels, card: dict, options: dict, priority: int | None = None):
        super().__init__(priority)
        self.items, self.labels, self.card, self.options = list(items), list(labels), dict(card), dict(options)

    def run(self, ctx):
        from vol3d_gui.ml.bundle import ModelBundle

        recipe = ModelBundle(None, {"gradcam_layer": "", **self.card})  # preprocessing by the card, no weights
        x = finetune_tensors(recipe, [it.load for it in self.items], should_stop=ctx.should_stop,
                             progress=ctx.progress, between=ctx.yield_to_urgent)
        if x is None:
            return None
        return ctx.call("call", module="vol3d_gui.ml.training", function="train_in_service",
                        kwargs={"x": x, "labels": self.labels, "card": self.card, **self.options})


class TaskContext:
    """What a running task may do on the worker thread."""

    def __init__(self, worker, task: MLTask):
        self._worker, self._task = worker, task

    @property
    def bundle(self):
        return self._worker.bundle

    def need_bundle(self):
        if self._worker.bundle is None:
            raise Vol3dError("no model is loaded")
        return self._worker.bundle

    def progress(self, p: Progress) -> None:
        self._task.progress.emit(p)

    def should_stop(self) -> bool:
        return self._task.is_cancelled

    def model_input(self, volume) -> np.ndarray:
        """``volume``'s model-grid tensor for the loaded model, resampled once per case: the
        predict and the Grad-CAM of the case on screen (or read ahead) share it."""
        bundle = self.need_bundle()
        last = self._worker.last_input
        if last is not None and last[0] is bundle and last[1]() is volume:
            return last[2]
        x = model_input(bundle, volume)
        self._worker.last_input = (bundle, weakref.ref(volume), x)
        return x

    def call(self, kind: str, **kwargs):
        """One request to the ML service; its progress reaches this task's signal."""
        return self._worker.call(self._task, kind, kwargs)

    def yield_to_urgent(self) -> None:
        """Run queued tasks of a higher priority now (between two volumes of a batch)."""
        self._worker.run_urgent(self._task.priority)

    def adopt_model(self, info: dict):
        return self._worker.adopt_model(info)
