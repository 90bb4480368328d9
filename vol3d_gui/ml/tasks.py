"""What an ML task reports and what it sends to the ML service, without Qt or TensorFlow.

The GUI's typed tasks (vol3d_gui.ui.ml_tasks) run on the ML worker thread of the GUI process
and send requests to the TensorFlow process (vol3d_gui.ml.service). A request carries the
model-grid tensor, never the Volume: preprocessing (numpy/scipy only) runs on the worker
thread, so a 512x512x300 int16 CT (150 MB) crosses the pipe as a 48^3 float32 cube (0.4 MB
for the bundled model) plus the 4x4 affine that places a Grad-CAM map over the scan.

Progress is data (``Progress``), computed where the information is (the training loop knows
its epoch, batch and loss), so no one parses text to draw a loss curve or an ETA.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field, replace

import numpy as np


class Priority(enum.IntEnum):
    """Lower runs first. The case on screen goes ahead of batch work."""

    ON_SCREEN = 0  # load model, predict and Grad-CAM of the volume the reader looks at
    NEXT_CASE = 5  # the same for the case after it, read ahead while the reader looks at this one
    BATCH = 10  # classify-all: yields between volumes to ON_SCREEN work
    TRAINING = 20  # fine-tuning and training


@dataclass(frozen=True)
class Progress:
    """One progress report of a task. ``done``/``total`` drive a progress bar; the rest is
    what is known at that point (None when it does not apply)."""

    done: int
    total: int
    stage: str = ""
    epoch: int | None = None  # 1-based
    n_epochs: int | None = None
    batch: int | None = None  # 1-based, within the epoch
    n_batches: int | None = None
    loss: float | None = None
    metrics: dict = field(default_factory=dict)
    eta_s: float | None = None
    item: str | None = None  # the study item just processed (classify-all)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    def text(self) -> str:
        """A short human-readable line (for a progress bar's format), made from the data."""
        parts = [self.stage] if self.stage else []
        if self.epoch is not None:
            parts.append(f"epoch {self.epoch}" + (f"/{self.n_epochs}" if self.n_epochs else ""))
        if self.loss is not None:
            parts.append(f"loss {self.loss:.3f}")
        if self.item:
            parts.append(self.item)
        return "  ".join(parts)


class EtaClock:
    """Seconds left from the mean time per unit of work done so far (units: batches, volumes)."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._t0 = clock()
        self._done0 = 0

    def restart(self, done: int = 0) -> None:
        """Start timing here (e.g. after a warm-up whose cost says nothing about the rest)."""
        self._t0, self._done0 = self._clock(), done

    def eta(self, done: int, total: int) -> float | None:
        units = done - self._done0
        if units <= 0:
            return None
        return max(0.0, (self._clock() - self._t0) / units * (total - done))


def with_eta(p: Progress, clock: EtaClock) -> Progress:
    return replace(p, eta_s=clock.eta(p.done, p.total))


def training_progress(progress, epochs: int, on_batch=None, on_epoch=None):
    """Training callbacks that also report ``Progress`` (done/total in batches over all epochs)."""
    if progress is None:
        return on_batch, on_epoch
    clock = EtaClock()
    last: dict = {}

    def batch_cb(e, b, n, logs):
        if on_batch is not None:
            on_batch(e, b, n, logs)
        if e == 0 and b == 0:
            clock.restart(1)  # the first batch pays for tracing: it says nothing about the rest
        done = e * n + b + 1
        metrics = {k: float(v) for k, v in logs.items() if k != "loss"}
        last.update(n=n, done=done)
        progress(with_eta(Progress(done, epochs * n, "training", epoch=e + 1, n_epochs=epochs, batch=b + 1,
                                   n_batches=n, loss=float(logs["loss"]) if "loss" in logs else None,
                                   metrics=metrics), clock))

    def epoch_cb(rec):
        if on_epoch is not None:
            on_epoch(rec)
        n = last.get("n", 1)
        done = int(rec["epoch"]) * n
        metrics = {k: float(v) for k, v in rec.items() if k not in ("epoch", "loss")}
        progress(with_eta(Progress(done, epochs * n, "epoch done", epoch=int(rec["epoch"]), n_epochs=epochs,
                                   batch=None, n_batches=n, loss=rec.get("loss"), metrics=metrics), clock))

    return batch_cb, epoch_cb


# --- requests: what crosses the pipe ----------------------------------------------------------------
def model_input(bundle, volume) -> np.ndarray:
    """The preprocessed model-grid tensor (1, d, h, w, 1) float32 of one volume. ``bundle``
    may be the GUI side's card-only ModelBundle (no weights, no TensorFlow)."""
    return np.ascontiguousarray(bundle.preprocess(volume)[None], dtype=np.float32)


def assess_answer(bundle, volume, x: np.ndarray, reply: dict) -> dict:
    """The GUI side of an "assess" reply (TensorFlow-free): the displayed class at the card's
    operating point and the domain check, whose metadata half (modality, spacing, field of
    view, intensity) needs the Volume that never crossed the pipe."""
    from vol3d_gui.ml import domain

    check = domain.combine(domain.metadata_ratios(bundle.card, volume, x[0]), reply.get("feature_score"))
    return {"probabilities": np.asarray(reply["probabilities"], float), "uncertainty": reply.get("uncertainty"),
            "spread": reply.get("spread"), "class_index": bundle.decide(reply["probabilities"]),
            "domain": check.to_dict()}


def predict_request(bundle, volume) -> dict:
    return {"x": model_input(bundle, volume)}


def gradcam_request(bundle, volume, class_index: int | None = None, plus: bool = False,
                    x: np.ndarray | None = None) -> dict:
    """The tensor (``x`` when the caller has it already) plus where its grid sits in the scan's
    world space (all Grad-CAM needs to place its map; the map comes back on its own small grid)."""
    return {"x": model_input(bundle, volume) if x is None else x, "grid_affine": bundle.grid_affine(volume),
            "class_index": class_index, "plus": bool(plus)}


def finetune_tensors(bundle, loaders, should_stop=None, progress=None, between=None) -> np.ndarray:
    """Labelled items (Volumes or zero-argument loaders) to the stacked model-grid tensor
    (N, d, h, w, 1) float32 that fine-tuning sends instead of the Volumes. ``between()`` runs
    after each volume (the GUI lets an on-screen predict in there). Returns None when stopped."""
    loaders = list(loaders)
    out = np.zeros((len(loaders), *bundle.input_shape, 1), np.float32)
    clock = EtaClock()
    for i, v in enumerate(loaders):
        if should_stop is not None and should_stop():
            return None
        out[i] = bundle.preprocess(v() if callable(v) else v)
        if progress is not None:
            progress(with_eta(Progress(i + 1, len(loaders), "preparing volumes"), clock))
        if between is not None:
            between()
    return out
