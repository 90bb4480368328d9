"""Fine-tuning a bundle on the reader's labels: a new bundle version, never an overwrite.

The base bundle's files are never touched: its model is cloned, trained on the labelled
items and written as ``NAME-ft-N`` beside it (or in the user's model folder), with a card
that names the parent, the label set (hash and size) and the metrics on the held-out part
before and after, measured the same way. A stop request ends training within one batch and
writes nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vol3d_gui.core.errors import Vol3dError
from vol3d_gui.ml.bundle import ModelBundle, next_version_path, save_bundle
from vol3d_gui.ml.evaluation import evaluate_probs
from vol3d_gui.ml.intervals import compare_auc, compare_decisions
from vol3d_gui.ml.tasks import finetune_tensors, training_progress
from vol3d_gui.ml.training import TrainingStopped, predict_arrays, train_model


def stratified_split(y, held_out: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, held-out) with every class represented in both where it can be."""
    y = np.asarray(y, int)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.nonzero(y == c)[0])
        n_test = int(round(len(idx) * held_out))
        if len(idx) >= 2:
            n_test = min(max(n_test, 1), len(idx) - 1)
        test += idx[:n_test].tolist()
        train += idx[n_test:].tolist()
    return np.array(sorted(train), int), np.array(sorted(test), int)


def base_flips(bundle: ModelBundle) -> tuple[int, ...]:
    """The flips fine-tuning may use: those the base model was trained with. A model trained
    on upright anatomy (the phantom model: liver on the right, head up) has never seen a
    flipped body; flipped copies would be new data it calls wrong with confidence (the first
    fine-tuning epoch's loss was 13 with all three flips)."""
    return bundle.training_flips or ()


def finetune_bundle(bundle: ModelBundle, volumes, labels, *, out_dir=None, held_out=0.3, val_volumes=None,
                    val_labels=None, should_stop=None, progress=None, **kwargs) -> dict:
    """Fine-tune a copy of ``bundle`` on labelled volumes; returns a report with the new path.

    ``volumes`` are Volumes or zero-argument loaders; ``progress(Progress)`` is called per
    prepared volume and then as ``finetune_arrays`` reports. Raises TrainingStopped when stopped."""
    _check_labels(bundle, labels)

    def prep(vols):
        x = finetune_tensors(bundle, vols, should_stop=should_stop, progress=progress)
        if x is None:
            raise TrainingStopped()
        return x

    x = prep(list(volumes))
    x_val = None if val_volumes is None else prep(list(val_volumes))
    return finetune_arrays(bundle, x, labels, out_dir=out_dir, held_out=held_out, x_val=x_val, val_labels=val_labels,
                           should_stop=should_stop, progress=progress, **kwargs)


def _check_labels(bundle, labels) -> np.ndarray:
    labels = np.asarray(labels, int)
    n_classes = len(bundle.class_names)
    if len(labels) < 4 or len(np.unique(labels)) < 2:
        raise Vol3dError("fine-tuning needs at least 4 labelled items of at least two classes")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise Vol3dError(f"labels must be class indices 0..{n_classes - 1} of {bundle.label}")
    return labels


def finetune_arrays(bundle: ModelBundle, x, labels, *, out_dir=None, held_out=0.3, x_val=None, val_labels=None,
                    epochs: int = 10, learning_rate: float = 1e-4, freeze_base: bool = False,
                    augment: bool = True, class_weight="balanced", batch_size: int = 4, seed: int = 0,
                    labelset_hash: str = "", on_batch=None, on_epoch=None, should_stop=None,
                    progress=None) -> dict:
    """Fine-tune on preprocessed model-grid tensors ``x`` (N, d, h, w, 1), as the GUI sends them.

    ``progress(Progress)`` after every batch (epoch, batch, loss, metrics, ETA from the time per
    batch so far) and at every epoch's end (with the held-out metrics)."""
    import keras

    labels = _check_labels(bundle, labels)
    x = np.asarray(x, np.float32)
    if x.shape[1:] != (*bundle.input_shape, 1) or len(x) != len(labels):
        raise Vol3dError(f"fine-tuning tensors {x.shape} do not fit {len(labels)} labels and {bundle.label}'s "
                         f"input {bundle.input_shape}")
    if x_val is not None:
        tr_idx, x_val, y_val = np.arange(len(labels)), np.asarray(x_val, np.float32), np.asarray(val_labels, int)
    else:
        tr_idx, te_idx = stratified_split(labels, held_out, seed)
        x_val, y_val = x[te_idx], labels[te_idx]
    x_tr, y_tr = x[tr_idx], labels[tr_idx]
    on_batch, on_epoch = training_progress(progress, epochs, on_batch, on_epoch)

    probs_before = predict_arrays(bundle.model, x_val)
    before = evaluate_probs(y_val, probs_before, bundle.class_names, intervals=True)
    keras.utils.set_random_seed(seed)
    model = keras.models.clone_model(bundle.model)
    model.set_weights(bundle.model.get_weights())
    for layer in model.layers:
        # BatchNorm stays in inference mode (a non-trainable BN layer in Keras 3 uses its moving
        # statistics): batches of 4 of the reader's volumes would otherwise replace statistics
        # learnt on hundreds, and the model collapses to one class (held-out accuracy 0.70 ->
        # 0.50 on the low-contrast phantoms of bench finetune)
        if isinstance(layer, keras.layers.BatchNormalization) or (
                freeze_base and isinstance(layer, keras.layers.Conv3D)):
            layer.trainable = False
    hist = train_model(model, x_tr, y_tr, x_val, y_val, epochs=epochs, batch_size=batch_size,
                       learning_rate=learning_rate, class_weight=class_weight, augment=augment, seed=seed,
                       flips=base_flips(bundle),
                       on_batch=on_batch, on_epoch=on_epoch, should_stop=should_stop, patience=epochs,
                       monitor="loss", keep_initial=True)
    if hist.get("stopped"):
        raise TrainingStopped()
    probs_after = predict_arrays(model, x_val)
    after = evaluate_probs(y_val, probs_after, bundle.class_names, intervals=True)
    # the same cases before and after: a paired test, sharper than the two intervals side by side
    change = {"auc": compare_auc(y_val, probs_after, probs_before),
              "decisions": compare_decisions(y_val, probs_after.argmax(1), probs_before.argmax(1))}

    base_name = bundle.card.get("name", "model").split("-ft-")[0]
    folder = Path(out_dir) if out_dir is not None else Path(bundle.path).parent
    path = next_version_path(folder, base_name)
    card = dict(bundle.card)
    for key in ("created", "framework", "calibration", "metrics_before_calibration", "reliability",
                "operating_point", "uncertainty"):
        card.pop(key, None)  # the parent's: they do not describe the new weights
    if isinstance(card.get("ensemble"), dict):  # a fold ensemble's members' scores were the parent's weights'
        card["ensemble"] = {k: v for k, v in card["ensemble"].items() if k != "oof_log_odds"}
    if card.get("domain"):  # the acquisition domain still holds; the feature space has moved
        card["domain"] = {k: v for k, v in card["domain"].items() if k != "features"}
    card.update({
        "name": path.stem,
        "version": path.stem.rsplit("-ft-", 1)[1],
        "parent": bundle.label,
        "parent_path": str(bundle.path) if bundle.path else None,
        "training_data": {"name": "reader labels", "labelset_sha256": labelset_hash,
                          "n_labelled": int(len(labels)), "n_train": int(len(y_tr)), "n_held_out": int(len(y_val))},
        "finetune": {"epochs_run": len(hist["epochs"]), "best_epoch": hist["best_epoch"],
                     "selected_by": "held-out log-loss; epoch 0 is the base's weights",
                     "flips": list(base_flips(bundle)), "learning_rate": learning_rate,
                     "freeze_base": bool(freeze_base), "augment": bool(augment), "seed": seed,
                     "history": hist["epochs"]},
        "metrics_before": {**before, "split": "held-out"},
        "metrics_change": change,
        "metrics": {**after, "split": "held-out",
                    # a handful of labels cannot also fill a third, untouched split
                    "note": "the held-out part also picked the epoch: this figure is optimistic; "
                            "measure on cases labelled later to know"},
    })
    save_bundle(model, card, path)
    return {"path": str(path), "before": before, "after": after, "change": change, "card": card}


def run_in_service(service, *, x, labels, **kwargs) -> dict:
    """Entry point for the ML service process: fine-tune the loaded bundle on tensors ``x``."""
    return finetune_arrays(service.need_bundle(), x, labels, should_stop=service.should_stop,
                           progress=service.progress, **kwargs)
