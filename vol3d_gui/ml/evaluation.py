"""Metrics on held-out data: AUC (one-vs-rest for several classes), accuracy, per-class
recall and the confusion matrix. Rank-based AUC (Mann-Whitney U) with ties averaged. With
``intervals=True`` each figure also gets its 95% confidence interval (ml/intervals.py)."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def binary_auc(y_true, score) -> float:
    y = np.asarray(y_true).astype(bool).reshape(-1)
    s = np.asarray(score, dtype=np.float64).reshape(-1)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(y_true, probs, eps: float = 1e-7) -> float:
    """Mean negative log-probability of the true class (cross-entropy, nats)."""
    y = np.asarray(y_true).astype(int).reshape(-1)
    p = np.clip(np.asarray(probs, np.float64)[np.arange(len(y)), y], eps, 1.0)
    return float(-np.log(p).mean()) if len(y) else float("nan")


def evaluate_probs(y_true, probs, class_names=None, intervals: bool = False) -> dict:
    y = np.asarray(y_true).astype(int).reshape(-1)
    p = np.asarray(probs, dtype=np.float64)
    k = p.shape[1]
    pred = p.argmax(axis=1)
    conf = np.zeros((k, k), dtype=int)
    np.add.at(conf, (y, pred), 1)
    recall = [float(conf[c, c] / conf[c].sum()) if conf[c].sum() else float("nan") for c in range(k)]
    if k == 2:
        auc = binary_auc(y == 1, p[:, 1])
    else:
        aucs = [binary_auc(y == c, p[:, c]) for c in range(k)]
        auc = float(np.nanmean(aucs))
    names = list(class_names) if class_names else [str(c) for c in range(k)]
    m = {
        "n": int(len(y)),
        "auc": auc,
        "accuracy": float((pred == y).mean()) if len(y) else float("nan"),
        "balanced_accuracy": float(np.nanmean(recall)),
        "log_loss": log_loss(y, p),
        "per_class_recall": dict(zip(names, recall)),
        "confusion": conf.tolist(),  # rows: truth, columns: predicted
        "confusion_matrix": conf.tolist(),  # the same, under the name the first cards used
        "class_names": names,
    }
    if intervals:
        from vol3d_gui.ml.intervals import metric_intervals

        m["intervals"] = metric_intervals(y, p, conf, names)
    return m


def shown_classes(card: dict, probs) -> np.ndarray:
    """The class a reader is shown for each row of ``probs``: the card's operating point for
    two classes, else the argmax (ml.reliability.decide)."""
    from vol3d_gui.ml.reliability import decide

    return np.array([decide(card, q) for q in np.asarray(probs, dtype=np.float64)], dtype=int)


def decision_metrics(y_true, shown, n_classes: int, class_names=None, intervals: bool = False) -> dict:
    """Accuracy, recall, balanced accuracy and confusion of hard decisions ``shown``; with
    ``intervals``, theirs (no AUC: decisions are one threshold of the scores, not a ranking)."""
    hard = np.eye(n_classes)[np.asarray(shown, int)]  # one-hot: evaluate_probs' argmax is then the decision
    m = evaluate_probs(y_true, hard, class_names)
    out = {k: m[k] for k in ("accuracy", "balanced_accuracy", "per_class_recall", "confusion")}
    if intervals:
        from vol3d_gui.ml.intervals import metric_intervals

        out["intervals"] = metric_intervals(y_true, hard, m["confusion"], m["class_names"], with_auc=False)
    return out


def metrics_at_operating_point(card: dict, y_true, probs, class_names=None, intervals: bool = False) -> dict:
    """evaluate_probs' recall, balanced accuracy and confusion for the class a reader is shown
    (the card's operating point, ml.reliability.decide), not the argmax."""
    p = np.asarray(probs, dtype=np.float64)
    op = card.get("operating_point") or {}
    return {"threshold": op.get("threshold"), "rule": op.get("rule"),
            **decision_metrics(y_true, shown_classes(card, p), p.shape[1], class_names, intervals)}
