"""Calibration in view and the decision a reader sees: expected calibration error with its
reliability table, and an operating point (a threshold chosen on validation data for the
highest balanced accuracy, or for a target sensitivity).

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


def operating_point(y_val, probs_val, target_sensitivity: float | None = 0.9) -> float:
    """A threshold on the positive-class probability, chosen on the validation split.

    ``target_sensitivity`` a number: the highest threshold whose sensitivity reaches it (a
    screening point). None: the balanced point, where P(positive) recalibrated on the
    validation split equals the validation prevalence (for a bundle calibrated on that split,
    the prevalence itself)."""
    y = np.asarray(y_val).astype(int).reshape(-1)
    p1 = np.asarray(probs_val, np.float64)[:, 1]
    pos = np.sort(p1[y == 1])
    if not len(pos):
        raise ValueError("an operating point needs positive cases in the validation split")
    if target_sensitivity is not None:
        # calling the k highest positives catches k of them: keep the smallest k that reaches the target
        k = int(np.ceil(target_sensitivity * len(pos) - 1e-9))
        return float(pos[len(pos) - max(k, 1)])
    if not (y == 0).any():
        return float(pos[0])
    # Balanced accuracy is highest where the likelihood ratio is 1, i.e. where a calibrated
    # P(positive) equals the prevalence it was calibrated at. Estimated by a logistic fit
    # (two parameters) of the validation outcomes on the model's log-odds, rather than by
    # the best of the validation cuts: on 20-odd validation positives the best cut is one
    # case's score (adrenal 28^3: test sensitivity 0.62 at the best validation cut, 0.71 at
    # this one, for the same balanced accuracy).
    from vol3d_gui.ml.calibration import fit_platt, log_odds

    try:
        a, b = fit_platt(log_odds(np.asarray(probs_val, np.float64)), y)
    except ValueError:  # no ranking on validation: the cut that balances best
        cuts = np.unique(p1)
        return float(cuts[int(np.argmax([sum(sensitivity_specificity(y, p1, t)) for t in cuts]))])
    prevalence = float(y.mean())
    d = (np.log(prevalence / (1 - prevalence)) - b) / a  # the model's log-odds at that point
    return float(1.0 / (1.0 + np.exp(-d)))


def operating_point_record(y_val, probs_val, y_test, probs_test, target_sensitivity: float | None = None,
                           chosen_on: str = "val") -> dict:
    """The card's operating point: by default the balanced one (see operating_point). ``chosen_on``
    names the held-out predictions (y_val, probs_val) are: "val", or a fold ensemble's
    out-of-fold predictions (the "val_*" fields then describe those)."""
    t = operating_point(y_val, probs_val, target_sensitivity)
    val = sensitivity_specificity(y_val, np.asarray(probs_val)[:, 1], t)
    rule = "balanced (calibrated P = validation prevalence)" if target_sensitivity is None else "target sensitivity"
    rec = {"positive_class": 1, "threshold": t, "rule": rule, "target_sensitivity": target_sensitivity,
           "chosen_on": chosen_on, "val_sensitivity": val[0], "val_specificity": val[1],
           "val_balanced_accuracy": (val[0] + val[1]) / 2}
    if y_test is not None and len(y_test):
        test = sensitivity_specificity(y_test, np.asarray(probs_test)[:, 1], t)
        rec.update(test_sensitivity=test[0], test_specificity=test[1],
                   test_balanced_accuracy=(test[0] + test[1]) / 2, n_test=int(len(y_test)))
    return rec


def decide(card: dict, probs) -> int:
    """The class to display: the positive class when its probability reaches the card's
    operating point, else the other one; the argmax for cards without an operating point."""
    p = np.asarray(probs, np.float64).reshape(-1)
    op = card.get("operating_point")
    if op and len(p) == 2:  # the positive class is index 1 (operating_point_record)
        return 1 if p[1] >= float(op["threshold"]) else 0
    return int(p.argmax())
