"""Calibration in view and the decision a reader sees: expected calibration error with its
reliability table, and an operating point (a threshold chosen for a target sensitivity).

For two classes the table bins the probability of the positive class (index 1) and gives the
observed share of positives per bin, the diagram a reader knows from the literature; for
more classes it bins the top-label confidence against the accuracy. Numpy only, so the GUI
can draw the card's table without TensorFlow.
"""

from __future__ import annotations

import numpy as np

N_BINS = 10


def reliability_table(y_true, probs, n_bins: int = N_BINS) -> dict:
    """{"kind", "ece", "n", "bins": [{lo, hi, n, mean_predicted, observed}]} (empty bins kept,
    with n = 0 and None values, so a chart shows where there was no data)."""
    y = np.asarray(y_true).astype(int).reshape(-1)
    p = np.asarray(probs, np.float64)
    if p.shape[1] == 2:
        kind, conf, hit = "positive class", p[:, 1], (y == 1).astype(float)
    else:
        kind, conf, hit = "top label", p.max(axis=1), (p.argmax(axis=1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        m = which == b
        n = int(m.sum())
        row = {"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": n, "mean_predicted": None, "observed": None}
        if n:
            row["mean_predicted"] = float(conf[m].mean())
            row["observed"] = float(hit[m].mean())
            ece += n / len(y) * abs(row["mean_predicted"] - row["observed"])
        bins.append(row)
    return {"kind": kind, "ece": float(ece), "n": int(len(y)), "bins": bins}


def sensitivity_specificity(y_true, positive_prob, threshold: float) -> tuple[float, float]:
    y = np.asarray(y_true).astype(int).reshape(-1)
    called = np.asarray(positive_prob, np.float64) >= threshold
    pos, neg = y == 1, y == 0
    sens = float(called[pos].mean()) if pos.any() else float("nan")
    spec = float((~called[neg]).mean()) if neg.any() else float("nan")
    return sens, spec


def operating_point(y_val, probs_val, target_sensitivity: float = 0.9) -> float:
    """The highest threshold on the positive-class probability whose sensitivity on the
    validation split is at least ``target_sensitivity``."""
    y = np.asarray(y_val).astype(int).reshape(-1)
    pos = np.sort(np.asarray(probs_val, np.float64)[:, 1][y == 1])
    if not len(pos):
        raise ValueError("an operating point needs positive cases in the validation split")
    # calling the k highest positives catches k of them: keep the smallest k that reaches the target
    k = int(np.ceil(target_sensitivity * len(pos) - 1e-9))
    return float(pos[len(pos) - max(k, 1)])


def operating_point_record(y_val, probs_val, y_test, probs_test, target_sensitivity: float = 0.9) -> dict:
    t = operating_point(y_val, probs_val, target_sensitivity)
    val = sensitivity_specificity(y_val, np.asarray(probs_val)[:, 1], t)
    rec = {"positive_class": 1, "threshold": t, "target_sensitivity": target_sensitivity, "chosen_on": "val",
           "val_sensitivity": val[0], "val_specificity": val[1]}
    if y_test is not None and len(y_test):
        test = sensitivity_specificity(y_test, np.asarray(probs_test)[:, 1], t)
        rec.update(test_sensitivity=test[0], test_specificity=test[1], n_test=int(len(y_test)))
    return rec


def decide(card: dict, probs) -> int:
    """The class to display: the positive class when its probability reaches the card's
    operating point, else the other one; the argmax for cards without an operating point."""
    p = np.asarray(probs, np.float64).reshape(-1)
    op = card.get("operating_point")
    if op and len(p) == 2:  # the positive class is index 1 (operating_point_record)
        return 1 if p[1] >= float(op["threshold"]) else 0
    return int(p.argmax())
