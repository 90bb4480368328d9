"""A cross-validated ensemble as one plain Keras model (issue 15).

K members, each trained on K-1 folds of the pooled train+val cases and early-stopped on the
fold it never saw, are merged into ONE functional model: the K trunks share the input, their
penultimate features (the input of each member's dropout) are concatenated, and one Dropout
and one final Dense layer ("probabilities") follow. The final kernel is the members' final
kernels stacked and divided by K, its bias their mean, so the merged logits are exactly the
members' mean logits; everything that reads "the final Dense layer and the dropout before it"
(MC dropout, the feature reference, Platt folding) works on the merged model unchanged, and the
bundle loads in safe mode (no Lambda, no custom layer). Member k's layers are renamed
``m{k}_<name>``; each member's Grad-CAM layer is listed in the card's ``gradcam_layers``.

Out-of-fold predictions (each pooled case scored by the member that did not train on it)
stand in for a validation split: Platt calibration and the operating point are fitted on all
train+val cases instead of the 98 validation ones. The ensemble itself has no held-out
validation split: every pooled case was in the training set of K-1 of its members.
"""

from __future__ import annotations

import numpy as np

MEMBER_PREFIX = "m{}_"


def stratified_folds(y, k: int, seed: int = 0) -> np.ndarray:
    """Fold index (0..k-1) per case: each class shuffled with ``seed`` and dealt round-robin,
    so every fold holds each class in proportion (within one case)."""
    y = np.asarray(y, int).reshape(-1)
    if k < 2:
        raise ValueError("cross-validation needs at least two folds")
    counts = np.bincount(y)
    if counts[counts > 0].min() < k:
        raise ValueError(f"a class has {counts[counts > 0].min()} cases, fewer than the {k} folds")
    rng = np.random.default_rng([seed, 15])
    folds = np.empty(len(y), int)
    offset = 0
    for c in np.unique(y):
        idx = rng.permutation(np.nonzero(y == c)[0])
        folds[idx] = (np.arange(len(idx)) + offset) % k
        offset += len(idx)  # the next class starts where this one ended: fold sizes stay even
    return folds


def member_layer(name: str, k: int) -> str:
    return MEMBER_PREFIX.format(k) + name


def merge_members(members, name: str = "ensemble"):
    """One functional model whose logits are the mean of the members' logits (see module doc).
    Each member must end in Dropout("dropout") -> Dense("probabilities", softmax), as
    architecture.build_classifier builds them."""
    import keras
    from keras import layers

    if not members:
        raise ValueError("an ensemble needs at least one member")
    inputs = keras.Input(shape=tuple(members[0].input_shape[1:]), name="volume")
    feats, kernels, biases, rate = [], [], [], 0.0
    for k, member in enumerate(members):
        def renamed(layer, k=k):
            cfg = layer.get_config()
            cfg["name"] = member_layer(layer.name, k)
            return layer.__class__.from_config(cfg)

        clone = keras.models.clone_model(member, input_tensors=inputs, clone_function=renamed)
        for layer in member.layers:
            if layer.weights:
                clone.get_layer(member_layer(layer.name, k)).set_weights(layer.get_weights())
        dropout = member.get_layer("dropout")
        rate = float(dropout.rate)
        feats.append(clone.get_layer(member_layer("dropout", k)).input)
        kernel, bias = member.get_layer("probabilities").get_weights()
        kernels.append(np.asarray(kernel, np.float64))
        biases.append(np.asarray(bias, np.float64))
    x = feats[0] if len(feats) == 1 else layers.Concatenate(name="members")(feats)
    x = layers.Dropout(rate, name="dropout")(x)
    n_classes = kernels[0].shape[1]
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    model = keras.Model(inputs, outputs, name=name)
    model.get_layer("probabilities").set_weights(
        [(np.concatenate(kernels, axis=0) / len(members)).astype(np.float32),
         np.mean(biases, axis=0).astype(np.float32)])
    return model


def gradcam_layers(n_members: int, layer: str) -> list[str]:
    return [member_layer(layer, k) for k in range(n_members)]
