"""Features, probabilities and their uncertainty from one compiled forward pass.

Uncertainty is Monte Carlo dropout (Gal & Ghahramani 2016) applied where the bundled
networks have their only dropout: between the penultimate features and the final Dense
layer. Everything before the dropout is deterministic at inference, so the samples need the
network once: the penultimate features come out of the same compiled pass as the
probabilities, and the K dropout masks and the final Dense layer are applied in numpy
(K x d x classes multiply-adds, microseconds). K = 64 samples for about the cost of one
prediction, where test-time augmentation with the training flips would cost one forward pass
per flip (and phantom-lesion was trained without flips) and an ensemble would mean training
more models. The reported uncertainty is the predictive entropy of the averaged samples,
in bits (0 = certain, 1 = a coin toss for two classes); it includes the spread between the
samples as well as the ambiguity of each.

A fold ensemble (ml/ensemble.py) is one model whose final Dense layer reads all members'
features, concatenated, through one dropout: the same code samples it, each mask thinning
every member's head at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

MC_SAMPLES = 64


@dataclass
class Analysis:
    """What one pass over a batch of preprocessed tensors yields."""

    probabilities: np.ndarray  # (N, classes): the deterministic (dropout off) probabilities
    uncertainty: np.ndarray  # (N,) predictive entropy of the MC-dropout mean, bits
    features: np.ndarray  # (N, d) penultimate features
    mc_std: np.ndarray  # (N, classes) spread of the MC-dropout samples


def head_weights(model) -> tuple[np.ndarray, np.ndarray, float]:
    """(kernel, bias, dropout rate) of the final Dense layer and the dropout before it."""
    layer = model.get_layer("probabilities")
    kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
    rate = 0.0
    for lyr in model.layers:
        if type(lyr).__name__ == "Dropout":
            rate = float(lyr.rate)
    return kernel, bias, rate


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def entropy_bits(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-12, 1.0)
    return -(p * np.log2(p)).sum(axis=-1)


def mc_dropout(features, kernel, bias, rate: float, samples: int = MC_SAMPLES, seed: int = 0):
    """(mean probabilities, std) over ``samples`` dropout masks on the features (N, d).
    The same fixed masks for every row: a volume gets the same answer every time it is shown,
    alone or in a batch at any position (the masks are a fixed ensemble of 64 thinned heads)."""
    f = np.asarray(features, np.float64)
    if rate <= 0:
        p = _softmax(f @ kernel + bias)
        return p, np.zeros_like(p)
    rng = np.random.default_rng(seed)
    keep = (rng.random((samples, 1, f.shape[1])) >= rate) / (1.0 - rate)
    p = _softmax(np.einsum("knd,dc->knc", keep * f[None], kernel) + bias)
    return p.mean(axis=0), p.std(axis=0)


def feature_function(bundle):
    """A compiled pass: preprocessed batch (N, D, H, W, 1) -> (features, probabilities)."""
    fn = getattr(bundle, "_feature_fn", None)
    if fn is not None:
        return fn
    import keras
    import tensorflow as tf

    model = bundle.model
    probe = keras.Model(model.inputs, [model.get_layer("probabilities").input, model.output])
    spec = tf.TensorSpec((None, *bundle.input_shape, 1), tf.float32)

    @tf.function(input_signature=[spec], reduce_retracing=True)
    def fn(batch):
        return probe(batch, training=False)

    bundle._feature_fn = fn
    return fn


def analyse(bundle, x, batch_size: int = 16) -> Analysis:
    """Probabilities, uncertainty and features for preprocessed tensors (N, D, H, W, 1)."""
    x = np.asarray(x, np.float32)
    fn = feature_function(bundle)
    feats, probs = [], []
    for i in range(0, len(x), batch_size):
        f, p = fn(x[i : i + batch_size])
        feats.append(np.asarray(f, np.float64))
        probs.append(np.asarray(p, np.float64))
    f = np.concatenate(feats) if feats else np.zeros((0, 0))
    p = np.concatenate(probs) if probs else np.zeros((0, len(bundle.class_names)))
    kernel, bias, rate = head_weights(bundle.model)
    mean, std = mc_dropout(f, kernel, bias, rate)
    return Analysis(probabilities=p, uncertainty=entropy_bits(mean), features=f, mc_std=std)


class TensorAnalysis(NamedTuple):
    """One volume's answer from the ML process: unpacks as (probs, uncertainty, feature_score)."""

    probabilities: np.ndarray
    uncertainty: float
    feature_score: float | None


class Prediction(NamedTuple):
    probabilities: np.ndarray
    uncertainty: float
