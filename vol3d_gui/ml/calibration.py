"""Probability calibration of a binary classifier on held-out data, folded into the model.

A model trained with class weighting, augmentation and BatchNorm can rank cases well (high
AUC) and still put every case on one side of 0.5: adrenal3d before calibration had a test
AUC of 0.89 and called every case "hyperplasia". The reader sees the probabilities, so they
must mean something. Platt scaling (a logistic regression on the model's log-odds, fitted
on the validation split) fixes that without changing the ranking, and it is folded into the
final Dense layer, so the bundle stays a plain Keras model with the same contract:

    d = z1 - z0 (log-odds of the softmax)  ->  d' = a * d + b
    W' = a * W, c' = a * c + [0, b]

For more than two classes the bundle is left as it is (a vector or matrix scaling would be
the analogue; no bundled model needs it yet).
"""

from __future__ import annotations

import numpy as np

from vol3d_gui.ml.evaluation import log_loss

_EPS = 1e-30


def log_odds(probs: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probs, np.float64), _EPS, 1.0)
    return np.log(p[:, 1]) - np.log(p[:, 0])


def fit_platt(d: np.ndarray, y: np.ndarray, l2: float = 1e-3, iters: int = 100) -> tuple[float, float]:
    """(a, b) maximising the likelihood of ``y`` under sigmoid(a * d + b), by Newton's method.

    A small L2 penalty keeps the fit finite when the validation split is separable. Platt's
    target smoothing ((n+ + 1) / (n+ + 2), 1 / (n- + 2)) guards against over-confidence on a
    small split."""
    d = np.asarray(d, np.float64).reshape(-1)
    y = np.asarray(y).astype(bool).reshape(-1)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("calibration needs both classes in the held-out data")
    t = np.where(y, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    X = np.stack([d, np.ones_like(d)], axis=1)
    prior = np.array([1.0, 0.0])

    def loss(w):
        z = X @ w  # the penalised negative log-likelihood, computed stably
        return float(np.sum(np.logaddexp(0, z) - t * z) + 0.5 * l2 * np.sum((w - prior) ** 2))

    w = prior.copy()
    current = loss(w)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(X @ w, -40, 40)))
        grad = X.T @ (p - t) + l2 * (w - prior)
        hess = (X * (p * (1 - p))[:, None]).T @ X + l2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        scale = 1.0  # Newton from a far start overshoots: halve until the loss drops
        while scale > 1e-6 and loss(w - scale * step) > current:
            scale /= 2
        w = w - scale * step
        new = loss(w)
        if current - new < 1e-12:
            break
        current = new
    a, b = float(w[0]), float(w[1])
    if not a > 0:  # a model that ranks backwards on validation is not rescued by flipping it
        raise ValueError(f"calibration slope {a:.3g} is not positive: the model does not rank the held-out data")
    return a, b


def fold_into_model(model, a: float, b: float, layer_name: str = "probabilities") -> None:
    """Scale the final softmax layer so its log-odds become a * d + b (in place)."""
    layer = model.get_layer(layer_name)
    kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
    if kernel.shape[-1] != 2:
        raise ValueError("Platt calibration applies to a two-class model")
    bias = a * bias + np.array([0.0, b])
    layer.set_weights([(a * kernel).astype(np.float32), bias.astype(np.float32)])


def calibrate_binary(model, x_val, y_val, predict) -> dict:
    """Fit on (x_val, y_val) with ``predict(model, x) -> probs`` and fold into ``model``.

    Returns the card's record: slope, intercept, n and the validation log-loss before and
    after (measured, so the card shows the calibration did what it claims)."""
    y = np.asarray(y_val).astype(int)
    before = np.asarray(predict(model, x_val))
    a, b = fit_platt(log_odds(before), y)
    fold_into_model(model, a, b)
    after = np.asarray(predict(model, x_val))
    return {"method": "platt", "split": "val", "n": int(len(y)), "slope": a, "intercept": b,
            "val_log_loss_before": log_loss(y, before, _EPS),
            "val_log_loss_after": log_loss(y, after, _EPS),
            "val_accuracy_before": float((before.argmax(1) == y).mean()),
            "val_accuracy_after": float((after.argmax(1) == y).mean())}

