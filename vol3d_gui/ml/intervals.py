"""Confidence intervals for held-out metrics, and paired comparisons of two models.

A test split of a few hundred cases measures an AUC to about +-0.03: a card that says
"AUC 0.909" without that is not an honest number, and two models 0.01 apart cannot be told
apart on it (issue 15's six adrenal3d rounds). Everything here is closed-form and
deterministic, so a card, `vol3d evaluate` and `vol3d compare` give the same interval for the
same predictions.

- AUC: DeLong, DeLong & Clarke-Pearson (1988), with Sun & Xu's (2014) midrank computation,
  extended to the macro one-vs-rest AUC of several classes: each case's influence on the
  AUC (its placement value, Hajek's projection of the U-statistic) is summed over the
  classes' AUCs, and its variance taken within each true class, the way the cases were
  sampled. For two classes this is DeLong's variance exactly. The interval is computed on the
  logit scale (Pepe 2003, sec. 5.2), which keeps it inside (0, 1) and is closer to nominal
  coverage near 1 than the plain normal interval. Where the estimate has no spread (perfect
  separation), the interval is Wilson's on min(positives, negatives) cases: Birnbaum &
  Klose's (1957) bound on the AUC's variance, A(1-A)/min(m, n).
- Recall and accuracy: Wilson's score interval (scipy.stats.binomtest).
- Balanced accuracy, the mean of independent recalls: MOVER (Zou & Donner 2008) from the
  recalls' Wilson limits.
- Paired: the AUC difference of two models scored on the same cases with the same DeLong
  influences (the covariance between the models is what makes a paired test sharper than
  two intervals), and McNemar's exact test on the cases one decision gets right and the other
  wrong.
- Cross-validation: the mean of the folds' AUCs, each fold's cases ranked only against each
  other. The pooled out-of-fold AUC ranks cases scored by different members on one scale, so
  it also measures how well the members' scales agree (issue 15's fourth round rose from 0.851
  to 0.870 pooled with the same mean fold AUC). A case's influence is then its fold AUC's,
  divided by the number of folds, and the variance is taken within each fold and class.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest, norm, rankdata

LEVEL = 0.95


def _z(level: float) -> float:
    return float(norm.ppf(0.5 + level / 2))


def wilson(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of a proportion k / n; (nan, nan) for n = 0."""
    if n <= 0:
        return float("nan"), float("nan")
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def _influence_one(positive: np.ndarray, score: np.ndarray) -> tuple[float, np.ndarray]:
    """AUC of ``score`` for ``positive`` vs the rest, and each case's influence on it
    (its placement value's deviation, divided by its group's size). NaN AUC if a group is empty."""
    m, n = int(positive.sum()), int((~positive).sum())
    if m == 0 or n == 0:
        return float("nan"), np.zeros(len(score))
    r_all = rankdata(score)
    r_within = np.empty(len(score))
    r_within[positive] = rankdata(score[positive])
    r_within[~positive] = rankdata(score[~positive])
    # placement values: a positive's share of negatives below it, a negative's of positives above
    place = np.where(positive, (r_all - r_within) / n, 1.0 - (r_all - r_within) / m)
    auc = float(place[positive].mean())
    return auc, np.where(positive, (place - auc) / m, (place - auc) / n)


def auc_influence(y, probs) -> tuple[float, np.ndarray]:
    """The AUC evaluate_probs reports (class 1's for two classes, else the macro one-vs-rest
    mean over the classes present) and each case's influence on it."""
    y = np.asarray(y).astype(int).reshape(-1)
    p = np.asarray(probs, dtype=np.float64)
    if p.shape[1] == 2:
        return _influence_one(y == 1, p[:, 1])
    parts = [_influence_one(y == c, p[:, c]) for c in range(p.shape[1])]
    parts = [(a, f) for a, f in parts if np.isfinite(a)]
    if not parts:
        return float("nan"), np.zeros(len(y))
    return float(np.mean([a for a, _ in parts])), np.mean([f for _, f in parts], axis=0)


def influence_variance(strata: np.ndarray, influence: np.ndarray) -> float:
    """The variance of a sum of influences over cases sampled within each stratum (the true
    class; with folds, the fold and the class)."""
    total = 0.0
    for c in np.unique(strata):
        f = influence[strata == c]
        if len(f) > 1:
            total += len(f) / (len(f) - 1) * float(((f - f.mean()) ** 2).sum())
    return total


def fold_auc_influence(y, probs, folds) -> tuple[list[float], float, np.ndarray]:
    """Each fold's AUC, their mean over the folds that have both classes, and each case's
    influence on that mean."""
    y, folds = np.asarray(y).astype(int).reshape(-1), np.asarray(folds).reshape(-1)
    p = np.asarray(probs, dtype=np.float64)
    aucs, infl = [], np.zeros(len(y))
    for f in np.unique(folds):
        at = folds == f
        a, infl[at] = auc_influence(y[at], p[at])
        aucs.append(a)
    valid = np.isfinite(aucs)
    if not valid.any():
        return aucs, float("nan"), infl
    return aucs, float(np.mean(np.asarray(aucs)[valid])), infl / valid.sum()


def _strata(y, folds) -> np.ndarray:
    y = np.asarray(y).astype(int).reshape(-1)
    return y if folds is None else np.asarray(folds).reshape(-1) * (y.max() + 1) + y


def auc_interval(y, probs, level: float = LEVEL, folds=None) -> tuple[float, float]:
    """DeLong interval of evaluate_probs' AUC, on the logit scale; with ``folds``, of the mean
    of the folds' AUCs."""
    y = np.asarray(y).astype(int).reshape(-1)
    auc, infl = auc_influence(y, probs) if folds is None else fold_auc_influence(y, probs, folds)[1:]
    if not np.isfinite(auc):
        return float("nan"), float("nan")
    se = np.sqrt(influence_variance(_strata(y, folds), infl))
    if se == 0.0 or auc in (0.0, 1.0):
        # the smaller side of the smallest one-vs-rest split: Birnbaum & Klose's bound
        counts = np.bincount(y)
        present = counts[counts > 0]
        small = int(np.minimum(present, len(y) - present).min())
        return wilson(round(auc * small), small, level)
    logit, se_logit = np.log(auc / (1 - auc)), se / (auc * (1 - auc))
    lo, hi = logit - _z(level) * se_logit, logit + _z(level) * se_logit
    return float(1 / (1 + np.exp(-lo))), float(1 / (1 + np.exp(-hi)))


def balanced_accuracy_interval(confusion, level: float = LEVEL) -> tuple[float, float]:
    """MOVER interval of the mean recall over the classes with cases."""
    conf = np.asarray(confusion)
    rows = [(int(conf[c, c]), int(conf[c].sum())) for c in range(len(conf)) if conf[c].sum()]
    if not rows:
        return float("nan"), float("nan")
    r = np.array([k / n for k, n in rows])
    lim = np.array([wilson(k, n, level) for k, n in rows])
    ba = r.mean()
    lo = ba - np.sqrt(((r - lim[:, 0]) ** 2).sum()) / len(rows)
    hi = ba + np.sqrt(((lim[:, 1] - r) ** 2).sum()) / len(rows)
    return float(max(lo, 0.0)), float(min(hi, 1.0))


def metric_intervals(y, probs, confusion, class_names, with_auc: bool = True, level: float = LEVEL) -> dict:
    """The ``intervals`` entry of evaluate_probs' metrics."""
    conf = np.asarray(confusion)
    out = {"level": level}
    if with_auc:
        out["auc"] = list(auc_interval(y, probs, level))
    out["accuracy"] = list(wilson(int(np.trace(conf)), int(conf.sum()), level))
    out["balanced_accuracy"] = list(balanced_accuracy_interval(conf, level))
    out["per_class_recall"] = {name: list(wilson(int(conf[c, c]), int(conf[c].sum()), level))
                               for c, name in enumerate(class_names)}
    out["methods"] = (("AUC: DeLong, logit scale; " if with_auc else "")
                      + "recall and accuracy: Wilson; balanced accuracy: MOVER from the recalls' Wilson limits")
    return out


def compare_auc(y, probs_a, probs_b, level: float = LEVEL, folds=None) -> dict:
    """Paired DeLong comparison of two models' AUCs on the same cases: the difference (a - b),
    its interval and the two-sided p-value of 'no difference'. With ``folds`` (two sets of
    out-of-fold predictions on the same folds), of their mean fold AUCs."""
    y = np.asarray(y).astype(int).reshape(-1)
    if folds is None:
        (auc_a, infl_a), (auc_b, infl_b) = auc_influence(y, probs_a), auc_influence(y, probs_b)
    else:
        (_, auc_a, infl_a), (_, auc_b, infl_b) = (fold_auc_influence(y, probs_a, folds),
                                                  fold_auc_influence(y, probs_b, folds))
    diff = auc_a - auc_b
    se = float(np.sqrt(influence_variance(_strata(y, folds), infl_a - infl_b)))
    if not np.isfinite(diff):
        lo = hi = p = float("nan")
    elif se == 0.0:
        lo, hi, p = diff, diff, 1.0 if diff == 0 else 0.0
    else:
        lo, hi = diff - _z(level) * se, diff + _z(level) * se
        p = float(2 * norm.sf(abs(diff) / se))
    return {"auc_a": auc_a, "auc_b": auc_b, "difference": diff, "interval": [lo, hi],
            "se": se, "p_value": p, "level": level,
            "method": "paired DeLong" + ("" if folds is None else ", mean of the folds' AUCs")}


def compare_decisions(y, decided_a, decided_b) -> dict:
    """McNemar's exact test on two sets of decisions for the same cases."""
    y = np.asarray(y).astype(int).reshape(-1)
    right_a, right_b = np.asarray(decided_a) == y, np.asarray(decided_b) == y
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"only_a_right": only_a, "only_b_right": only_b, "p_value": float(p), "method": "McNemar, exact"}


def with_interval(value: float, interval, digits: int = 3) -> str:
    """'0.909 (95% CI 0.872-0.937)', 'to' between limits when one is negative; the bare value
    where there is no interval."""
    if not interval or not all(np.isfinite(interval)):
        return f"{value:.{digits}f}"
    lo, hi = interval
    sep = " to " if min(lo, hi) < 0 else "-"
    return f"{value:.{digits}f} (95% CI {lo:.{digits}f}{sep}{hi:.{digits}f})"
