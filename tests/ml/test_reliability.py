"""ECE and the reliability table, and the operating point behind the displayed class."""

import numpy as np
import pytest

from vol3d_gui.ml.reliability import (
    decide,
    operating_point,
    operating_point_record,
    reliability_table,
    sensitivity_specificity,
)


def _probs(p1):
    p1 = np.asarray(p1, float)
    return np.stack([1 - p1, p1], axis=1)


def test_a_calibrated_model_has_a_small_ece_and_an_overconfident_one_a_large_one():
    rng = np.random.default_rng(0)
    p = rng.random(20000)
    y = rng.random(20000) < p  # the truth follows the stated probability
    good = reliability_table(y, _probs(p))
    assert good["ece"] < 0.02 and good["kind"] == "positive class" and len(good["bins"]) == 10
    bad = reliability_table(y, _probs(np.where(p > 0.5, 1.0, 0.0)))  # all-or-nothing
    assert bad["ece"] > 0.2
    row = good["bins"][7]
    assert row["lo"] == pytest.approx(0.7) and row["hi"] == pytest.approx(0.8)
    assert row["observed"] == pytest.approx(row["mean_predicted"], abs=0.03)
    assert sum(b["n"] for b in good["bins"]) == 20000


def test_empty_bins_are_kept_without_values():
    t = reliability_table([0, 1], _probs([0.05, 0.95]))
    assert [b["n"] for b in t["bins"]] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert t["bins"][4]["observed"] is None


def test_multiclass_tables_bin_the_top_label():
    t = reliability_table([0, 1, 2], np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.8, 0.1, 0.1]]))
    assert t["kind"] == "top label" and t["bins"][7]["observed"] == pytest.approx(2 / 3)


def test_operating_point_reaches_the_target_sensitivity_with_the_highest_threshold():
    rng = np.random.default_rng(1)
    y = rng.random(300) < 0.3
    p1 = np.clip(rng.normal(np.where(y, 0.6, 0.3), 0.15), 0, 1)
    t = operating_point(y, _probs(p1), 0.9)
    sens, _ = sensitivity_specificity(y, p1, t)
    assert sens >= 0.9
    higher = np.min(p1[y][p1[y] > t])  # the next threshold up loses a positive
    assert sensitivity_specificity(y, p1, higher)[0] < 0.9
    rec = operating_point_record(y, _probs(p1), y[:100], _probs(p1[:100]), 0.9)
    assert rec["threshold"] == t and rec["val_sensitivity"] >= 0.9 and rec["n_test"] == 100


def test_balanced_operating_point_sits_near_the_best_balanced_accuracy():
    # calibrated scores of two Gaussian classes (equal variance): balanced accuracy is highest
    # where P(positive) equals the prevalence; a small validation split must land near it
    rng = np.random.default_rng(2)

    def sample(n):
        y = rng.random(n) < 0.15
        d = rng.normal(np.where(y, 1.5, -1.5), 1.0)  # class-conditional log-likelihood ratio 3d
        odds = np.exp(3.0 * d) * 0.15 / 0.85
        return y, odds / (1 + odds)

    y_val, p_val = sample(150)  # ~22 positives, as the MedMNIST validation splits
    y_test, p_test = sample(20000)
    t = operating_point(y_val, _probs(p_val), None)
    cuts = np.quantile(p_test, np.linspace(0.01, 0.99, 197))
    best = max(sum(sensitivity_specificity(y_test, p_test, c)) / 2 for c in cuts)
    got = sum(sensitivity_specificity(y_test, p_test, t)) / 2
    assert got >= best - 0.02, (got, best)
    sens, spec = sensitivity_specificity(y_test, p_test, t)
    assert abs(sens - spec) < 0.06  # balanced, not a screening point
    rec = operating_point_record(y_val, _probs(p_val), y_test, _probs(p_test))
    assert rec["threshold"] == t and rec["rule"].startswith("balanced")
    assert rec["test_balanced_accuracy"] == pytest.approx(got)


def test_decide_uses_the_operating_point_and_falls_back_to_argmax():
    card = {"operating_point": {"threshold": 0.2}}
    assert decide(card, [0.75, 0.25]) == 1  # below 0.5, above the operating point
    assert decide(card, [0.85, 0.15]) == 0
    assert decide({}, [0.75, 0.25]) == 0
    assert decide(card, [0.2, 0.5, 0.3]) == 1  # more than two classes: argmax
