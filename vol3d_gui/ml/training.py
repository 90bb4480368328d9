"""Training and fine-tuning loop on preprocessed arrays (N, D, H, W, 1) float32.

Keras' own fit with callbacks: per-batch progress, a cooperative stop polled per batch,
early stopping on validation AUC that restores the best weights, class weighting for
imbalanced data, and augmentation (flips, small rotations, intensity jitter) in a
PyDataset so it runs beside the training step.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from vol3d_gui.ml.evaluation import binary_auc, evaluate_probs

# The training defaults of `vol3d train` and of training from the GUI (issue 15): AdamW with this
# decay, a cosine schedule, the weights' moving average validated and kept, BatchNorm
# statistics that follow a small data set (momentum 0.9), classes weighted to balance.
DEFAULT_WEIGHT_DECAY = 1e-4
DEFAULT_BN_MOMENTUM = 0.9


def balanced_class_weight(y, n_classes: int) -> dict[int, float]:
    counts = np.bincount(np.asarray(y, int), minlength=n_classes).astype(float)
    counts[counts == 0] = 1.0
    return {c: float(len(y) / (n_classes * counts[c])) for c in range(n_classes)}


def augment_volume(x: np.ndarray, rng: np.random.Generator, *, flips=(0, 1, 2), max_angle: float = 10.0,
                   jitter: float = 0.1) -> np.ndarray:
    """One augmented copy of a (D, H, W, 1) volume in [0, 1]."""
    v = x[..., 0]
    for ax in flips:
        if rng.random() < 0.5:
            v = np.flip(v, axis=ax)
    if max_angle > 0:
        plane = [(0, 1), (0, 2), (1, 2)][rng.integers(3)]
        angle = rng.uniform(-max_angle, max_angle)
        v = ndimage.rotate(v, angle, axes=plane, reshape=False, order=1, mode="nearest")
    if jitter > 0:
        v = v * (1.0 + rng.uniform(-jitter, jitter)) + rng.uniform(-jitter / 2, jitter / 2)
    return np.clip(v, 0.0, 1.0).astype(np.float32)[..., None]


def _shuffled(n: int, group: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation of range(n) that keeps runs of ``group`` consecutive samples together."""
    if group <= 1:
        return rng.permutation(n)
    if n % group:
        raise ValueError(f"{n} samples do not form groups of {group}")
    first = rng.permutation(n // group) * group
    return (first[:, None] + np.arange(group)).reshape(-1)


def _make_sequence(x, y_onehot, batch_size, augment, seed, flips, group=1, jitter=0.1):
    import keras

    class Batches(keras.utils.PyDataset):
        """Shuffled batches; augmented copies made on worker threads while the previous
        step trains (TensorFlow's step releases the GIL). Every batch draws from its own
        generator, seeded by (seed, epoch, batch), so the result does not depend on which
        thread made it: a run is reproducible."""

        def __init__(self):
            # two threads keep a batch ready without oversubscribing a small machine
            super().__init__(workers=2 if augment else 1, use_multiprocessing=False,
                             max_queue_size=4)
            self.epoch = 0
            self.order = _shuffled(len(x), group, np.random.default_rng([seed, 0]))

        def __len__(self):
            return math.ceil(len(x) / batch_size)

        def __getitem__(self, i):
            idx = np.sort(self.order[i * batch_size : (i + 1) * batch_size])
            xb = x[idx]
            if augment:
                rng = np.random.default_rng([seed, self.epoch, i])
                xb = np.stack([augment_volume(v, rng, flips=flips, jitter=jitter) for v in xb])
            return xb, y_onehot[idx]

        def on_epoch_end(self):
            self.epoch += 1
            self.order = _shuffled(len(x), group, np.random.default_rng([seed, self.epoch]))

    return Batches()


class TrainingStopped(Exception):
    """Raised to the caller when should_stop() asked training to stop (no model written)."""


def train_model(model, x_train, y_train, x_val=None, y_val=None, *, epochs: int = 10, batch_size: int = 8,
                learning_rate: float = 1e-3, class_weight=None, augment: bool = False, seed: int = 0,
                on_batch=None, on_epoch=None, should_stop=None, patience: int = 8,
                flips=(0, 1, 2), verbose: int = 0, max_seconds: float | None = None,
                group_size: int = 1, monitor: str = "auc", keep_initial: bool = False,
                schedule: str = "constant", weight_decay: float = 0.0, ema: bool = False,
                jitter: float = 0.1, bn_refresh: int = 0) -> dict:
    """Fit ``model`` in place. Returns a history dict with per-epoch loss/val metrics and
    ``stopped`` (True when should_stop() ended it). The best-val-AUC weights are restored.

    ``max_seconds`` is a time budget checked at the end of each epoch: training ends like an
    early stop (best weights restored, ``history["out_of_time"]`` set), unlike should_stop,
    which abandons the run.

    ``group_size``: consecutive training samples that stay in one batch (2 for a phantom and
    its lesion-free twin: the batch's gradient then points at what tells them apart, the
    lesion, rather than at anatomy; batch_size should be a multiple of it).

    ``monitor``: what picks the best epoch on the validation set, "auc" (ranking) or "loss"
    (log-loss: ranking and calibration; the choice for a handful of held-out items, where
    AUC moves in steps of 1/(n_pos*n_neg) and says nothing about the threshold).
    ``keep_initial``: the starting weights compete too (epoch 0), so fine-tuning never
    returns a model worse on the validation set than the one it started from.

    ``schedule="cosine"`` decays the learning rate to zero over ``epochs`` (a run cut short
    by early stopping simply ends higher on the curve); ``weight_decay`` > 0 uses AdamW;
    ``ema`` keeps an exponential moving average of the weights (Polyak averaging, Keras'
    ``use_ema``) and validates and keeps that average: on a few hundred training cases the
    raw weights' validation AUC jumps by 0.05 from one epoch to the next, and the early stop
    would otherwise pick a lucky epoch.

    ``bn_refresh`` > 0: before each validation, the BatchNorm statistics are recomputed on that
    many (unaugmented) training cases with the weights being validated (``refresh_batchnorm``).
    Keras' weight average covers the trainable weights only: the running statistics stay those
    of the raw weights, and on AdrenalMNIST3D the validation accuracy of the average swung
    between 0.22 and 0.91 from one late epoch to the next while its AUC moved by 0.04."""
    import time

    import keras

    t_start = time.monotonic()

    keras.utils.set_random_seed(seed)
    n_classes = int(model.output_shape[-1])
    y_train = np.asarray(y_train, int)
    y_onehot = np.eye(n_classes, dtype=np.float32)[y_train]
    if class_weight == "balanced":
        class_weight = balanced_class_weight(y_train, n_classes)
    x_train = np.asarray(x_train, np.float32)
    x_val = None if x_val is None or len(x_val) == 0 else np.asarray(x_val, np.float32)
    ema = ema and x_val is not None  # the average is swapped in by the validation callback
    steps = math.ceil(len(x_train) / batch_size)
    model.compile(optimizer=make_optimizer(learning_rate, schedule, epochs * steps, weight_decay, ema, steps),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    if augment or group_size > 1:
        data = _make_sequence(x_train, y_onehot, batch_size, augment, seed, flips, group_size, jitter)
        fit_args = {"x": data}
    else:  # nothing of ours to do per batch: Keras' own array pipeline is the faster one
        fit_args = {"x": x_train, "y": y_onehot, "batch_size": batch_size, "shuffle": True}
    n_batches = math.ceil(len(x_train) / batch_size)
    history: dict = {"epochs": [], "stopped": False, "out_of_time": False, "best_epoch": None,
                     "best_val_auc": None}

    if monitor not in ("auc", "loss"):
        raise ValueError(f"monitor must be 'auc' or 'loss', got {monitor!r}")

    def val_score(model) -> tuple[float, dict]:
        probs = predict_arrays(model, x_val, batch_size)
        m = evaluate_probs(y_val, probs)
        if monitor == "loss":
            return -m["log_loss"], m
        return (m["auc"] if np.isfinite(m["auc"]) else m["accuracy"]), m

    class Monitor(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best = -np.inf
            self.best_weights = None
            self.wait = 0
            self.epoch = 0

        def on_train_begin(self, logs=None):
            if keep_initial and x_val is not None:
                self.best, m = val_score(self.model)
                self.best_weights = self.model.get_weights()
                history["best_epoch"], history["initial_val"] = 0, {
                    k: m[k] for k in ("auc", "accuracy", "log_loss")}

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if on_batch is not None:
                on_batch(self.epoch, batch, n_batches, dict(logs or {}))
            if should_stop is not None and should_stop():
                history["stopped"] = True
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            rec = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
            if x_val is not None and not history["stopped"]:
                if bn_refresh:
                    refresh_batchnorm(self.model, x_train[refresh_idx])
                score, m = val_score(self.model)
                rec.update(val_auc=m["auc"], val_accuracy=m["accuracy"], val_loss=m["log_loss"])
                if score > self.best + 1e-4:
                    self.best, self.wait = score, 0
                    self.best_weights = self.model.get_weights()
                    history["best_epoch"] = epoch + 1
                    history["best_val_auc"] = float(m["auc"]) if np.isfinite(m["auc"]) else None
                else:
                    self.wait += 1
                    if self.wait >= patience:
                        self.model.stop_training = True
            rec["seconds"] = round(time.monotonic() - t_start, 1)
            if max_seconds is not None and time.monotonic() - t_start > max_seconds:
                history["out_of_time"] = True
                self.model.stop_training = True
            history["epochs"].append(rec)
            if on_epoch is not None:
                on_epoch(rec)

    refresh_idx = np.sort(np.random.default_rng([seed, 1]).permutation(len(x_train))[:bn_refresh])
    tracker = Monitor()  # not "monitor": val_score reads that name
    # the EMA swap runs first at each epoch's end, so the tracker validates (and keeps) the average
    callbacks = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True), tracker] if ema else [tracker]
    model.fit(**fit_args, epochs=epochs, class_weight=class_weight, callbacks=callbacks, verbose=verbose)
    if tracker.best_weights is not None and not history["stopped"]:
        model.set_weights(tracker.best_weights)
    return history


def refresh_batchnorm(model, x, batch_size: int = 32) -> None:
    """Set every BatchNormalization layer's running mean and variance to their average over
    ``x`` under the model's current weights ("precise BN", Wu & Johnson 2021, "Rethinking
    'Batch' in BatchNorm"): a cumulative mean, batch by batch, through the layers' own update
    (momentum i / (i + 1) for the i-th batch, then restored)."""
    import keras

    bns = [la for la in model._flatten_layers() if isinstance(la, keras.layers.BatchNormalization)]
    if not bns or len(x) == 0:
        return
    saved = [la.momentum for la in bns]
    try:
        for i, start in enumerate(range(0, len(x), batch_size)):
            for la in bns:
                la.momentum = i / (i + 1)
            model(x[start : start + batch_size], training=True)
    finally:
        for la, m in zip(bns, saved):
            la.momentum = m


def make_optimizer(learning_rate: float, schedule: str, total_steps: int, weight_decay: float, ema: bool,
                   steps_per_epoch: int = 100):
    """Adam (AdamW with weight decay), a constant or cosine-decayed rate, optionally with EMA.

    The average spans about one epoch (momentum 1 - 1/steps, at most 0.99): Keras starts it
    at the first step's weights without a bias correction, so a fixed 0.99 would keep a run
    of a few dozen steps close to its initial weights."""
    import keras

    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
    lr = (keras.optimizers.schedules.CosineDecay(learning_rate, max(int(total_steps), 1))
          if schedule == "cosine" else learning_rate)
    extra = {"use_ema": True, "ema_momentum": min(0.99, 1.0 - 1.0 / max(steps_per_epoch, 2))} if ema else {}
    if weight_decay > 0:
        return keras.optimizers.AdamW(lr, weight_decay=weight_decay, **extra)
    return keras.optimizers.Adam(lr, **extra)


def predict_arrays(model, x, batch_size: int = 16) -> np.ndarray:
    """Probabilities for preprocessed arrays via direct calls (no model.predict overhead)."""
    out = []
    for i in range(0, len(x), batch_size):
        out.append(np.asarray(model(x[i : i + batch_size], training=False)))
    return np.concatenate(out) if out else np.zeros((0, int(model.output_shape[-1])))


__all__ = ["TrainingStopped", "augment_volume", "balanced_class_weight", "binary_auc", "predict_arrays",
           "refresh_batchnorm", "train_model"]


def train_in_service(service, *, x, labels, card: dict, out_path, held_out: float = 0.3, epochs: int = 10,
                     batch_size: int = 8, learning_rate: float = 1e-3, augment: bool = False, width: int = 8,
                     seed: int = 0) -> dict:
    """Entry point for the ML service process: train a new bundle from scratch on model-grid
    tensors ``x`` (preprocessed in the GUI process by the card's rules) and write it at
    ``out_path`` (never over an existing bundle). Raises TrainingStopped when stopped."""
    import keras

    from vol3d_gui.ml.architecture import GRADCAM_LAYER, build_classifier
    from vol3d_gui.ml.bundle import save_bundle
    from vol3d_gui.ml.finetune import stratified_split
    from vol3d_gui.ml.tasks import training_progress

    y = np.asarray(labels, int)
    tr, te = stratified_split(y, held_out, seed)
    keras.utils.set_random_seed(seed)
    model = build_classifier(tuple(card["input_shape"]), len(card["class_names"]), width=width, name=card["name"],
                             bn_momentum=DEFAULT_BN_MOMENTUM)
    on_batch, on_epoch = training_progress(service.progress, epochs)
    hist = train_model(model, x[tr], y[tr], x[te], y[te], epochs=epochs, batch_size=batch_size,
                       learning_rate=learning_rate, class_weight="balanced", augment=augment, seed=seed,
                       on_batch=on_batch, on_epoch=on_epoch, should_stop=service.should_stop,
                       patience=epochs, schedule="cosine", weight_decay=DEFAULT_WEIGHT_DECAY, ema=True)
    if hist["stopped"]:
        raise TrainingStopped()
    metrics = evaluate_probs(y[te], predict_arrays(model, x[te]), card["class_names"])
    card = {**card, "gradcam_layer": GRADCAM_LAYER,
            "training": {"epochs_run": len(hist["epochs"]), "best_epoch": hist["best_epoch"],
                         "augment": bool(augment), "seed": seed, "schedule": "cosine",
                         "weight_decay": DEFAULT_WEIGHT_DECAY, "ema": True,
                         "bn_momentum": DEFAULT_BN_MOMENTUM, "class_weight": "balanced",
                         "history": hist["epochs"]},
            "metrics": {**metrics, "split": "held-out"}}
    path = save_bundle(model, card, out_path)
    return {"path": str(path), "metrics": metrics, "card": card}
