"""Confidence intervals and paired comparisons (ml/intervals.py): DeLong's variance to the
definition, the intervals' coverage on data with a known AUC, the paired test's false-positive
rate, and the edges (perfect separation, one class, identical models)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from vol3d_gui.ml.evaluation import evaluate_probs, metrics_at_operating_point
from vol3d_gui.ml.intervals import (
    auc_influence,
    auc_interval,
    balanced_accuracy_interval,
    compare_auc,
    compare_decisions,
    influence_variance,
    wilson,
    with_interval,
)


def two_class(score):
    score = np.asarray(score, float)
    return np.c_[1 - score, score]


def delong_by_definition(y, s):
    """DeLong et al. (1988) as written: every positive-negative pair's kernel."""
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return psi.mean(), v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 6)), min_size=4, max_size=60))
def test_delong_variance_equals_the_definition_with_ties(cases):
    y = np.array([c[0] for c in cases], int)
    s = np.array([c[1] for c in cases], float)  # few distinct values: many ties
    if y.sum() < 2 or (1 - y).sum() < 2:
        return
    auc, infl = auc_influence(y, two_class(s / 6))
    ref_auc, ref_var = delong_by_definition(y, s)
    assert auc == pytest.approx(ref_auc, abs=1e-12)
    assert influence_variance(y, infl) == pytest.approx(ref_var, rel=1e-9, abs=1e-15)
    assert auc == pytest.approx(evaluate_probs(y, two_class(s / 6))["auc"], abs=1e-12)


def test_binary_interval_covers_a_known_auc_95_percent_of_the_time():
    rng = np.random.default_rng(20261128)
    for d, n_pos, n_neg in [(1.0, 30, 90), (2.5, 20, 60)]:  # AUC 0.76 and 0.96: mid-range and near 1
        true = norm.cdf(d / np.sqrt(2))
        hits = 0
        for _ in range(800):
            s = np.r_[rng.normal(d, 1, n_pos), rng.normal(0, 1, n_neg)]
            y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
            lo, hi = auc_interval(y, np.c_[-s, s])
            hits += lo <= true <= hi
        assert 0.925 <= hits / 800 <= 0.975, (d, hits / 800)


def test_macro_auc_interval_of_three_classes_covers_the_population_value():
    rng = np.random.default_rng(7)
    means = np.array([[1.2, 0, 0], [0, 0.8, 0], [0, 0, 0.5]])

    def draw(n_per):
        y = np.repeat(np.arange(3), n_per)
        logits = means[y] + rng.normal(size=(len(y), 3))
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        return y, p

    truth = evaluate_probs(*draw(40000))["auc"]  # the population value, to about 1e-3
    hits = 0
    for _ in range(500):
        y, p = draw(40)
        lo, hi = auc_interval(y, p)
        hits += lo <= truth <= hi
    assert 0.92 <= hits / 500 <= 0.98, hits / 500


def test_intervals_depend_on_the_ranking_only():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 80)
    s = rng.random(80) + 0.3 * y
    assert auc_interval(y, two_class(s)) == pytest.approx(auc_interval(y, two_class(s ** 3)))


def test_perfect_separation_gets_birnbaum_klose_not_a_zero_width_interval():
    y = np.r_[np.ones(8, int), np.zeros(20, int)]
    s = np.r_[np.linspace(0.6, 0.9, 8), np.linspace(0.1, 0.5, 20)]
    lo, hi = auc_interval(y, two_class(s))
    assert hi == pytest.approx(1.0) and lo < 0.8  # eight positives cannot prove an AUC near 1
    assert (lo, hi) == pytest.approx(wilson(8, 8))


def test_perfect_separation_of_three_classes_is_bounded_by_the_smallest_class():
    y = np.repeat([0, 1, 2], [3, 10, 10])
    lo, hi = auc_interval(y, np.eye(3)[y] * 0.8 + 0.1)
    assert (lo, hi) == pytest.approx(wilson(3, 3))


def test_one_class_has_no_auc_and_no_interval():
    lo, hi = auc_interval(np.zeros(10, int), two_class(np.linspace(0, 1, 10)))
    assert np.isnan(lo) and np.isnan(hi)
    m = evaluate_probs(np.zeros(10, int), two_class(np.linspace(0, 1, 10)), intervals=True)
    assert np.isnan(m["intervals"]["auc"]).all() and np.isnan(m["intervals"]["per_class_recall"]["1"]).all()


def test_wilson_against_its_closed_form():
    for k, n in [(0, 10), (54, 69), (69, 69), (1, 2)]:
        z, p = norm.ppf(0.975), k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        assert wilson(k, n) == pytest.approx((centre - half, centre + half), abs=1e-9)
    assert np.isnan(wilson(0, 0)).all()


def test_balanced_accuracy_interval_is_wilsons_for_one_class_and_holds_the_estimate():
    assert balanced_accuracy_interval([[54, 15], [0, 0]]) == pytest.approx(wilson(54, 69))
    conf = [[196, 33], [15, 54]]
    lo, hi = balanced_accuracy_interval(conf)
    ba = (196 / 229 + 54 / 69) / 2
    assert lo < ba < hi
    # narrower than the hyperplasia recall's alone (69 cases), wider than the normal recall's (229)
    assert hi - lo < np.diff(wilson(54, 69))[0] and hi - lo > np.diff(wilson(196, 229))[0]


def test_evaluate_probs_intervals_and_the_operating_point_without_auc():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 120)
    p = two_class(np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.25, 120), 0, 1))
    m = evaluate_probs(y, p, ["a", "b"], intervals=True)
    ci = m["intervals"]
    for key in ("auc", "accuracy", "balanced_accuracy"):
        assert ci[key][0] <= m[key] <= ci[key][1]
    for name in ("a", "b"):
        assert ci["per_class_recall"][name][0] <= m["per_class_recall"][name] <= ci["per_class_recall"][name][1]
    assert "intervals" not in evaluate_probs(y, p, ["a", "b"])  # the training loop's epochs do not pay for them
    op = metrics_at_operating_point({"operating_point": {"threshold": 0.4, "rule": "test"}}, y, p, ["a", "b"],
                                    intervals=True)
    assert "auc" not in op["intervals"] and op["intervals"]["balanced_accuracy"][0] <= op["balanced_accuracy"]


def test_paired_test_holds_its_false_positive_rate_and_finds_a_real_difference():
    rng = np.random.default_rng(11)
    rejections, found = 0, 0
    for _ in range(400):
        y = np.r_[np.ones(40, int), np.zeros(120, int)]
        shared = rng.normal(size=160) + 1.0 * y  # what both models see: their errors correlate
        a = shared + rng.normal(0, 0.7, 160)
        b = shared + rng.normal(0, 0.7, 160)  # the same model, other noise: no true difference
        rejections += compare_auc(y, np.c_[-a, a], np.c_[-b, b])["p_value"] < 0.05
        better = shared + 1.0 * y + rng.normal(0, 0.7, 160)
        found += compare_auc(y, np.c_[-better, better], np.c_[-b, b])["interval"][0] > 0
    assert 0.02 <= rejections / 400 <= 0.08, rejections / 400
    assert found / 400 > 0.5


def test_paired_difference_of_a_model_with_itself_is_exactly_zero():
    y = np.r_[np.ones(5, int), np.zeros(5, int)]
    p = two_class(np.linspace(0, 1, 10))
    c = compare_auc(y, p, p)
    assert c["difference"] == 0 and c["interval"] == [0, 0] and c["p_value"] == 1.0


def test_paired_interval_is_narrower_than_the_unpaired_one_when_errors_correlate():
    rng = np.random.default_rng(5)
    y = np.r_[np.ones(60, int), np.zeros(200, int)]
    shared = rng.normal(size=260) + 1.2 * y
    a, b = shared + rng.normal(0, 0.3, 260), shared + rng.normal(0, 0.3, 260)
    c = compare_auc(y, two_class(a), two_class(b))
    _, ia = auc_influence(y, two_class(a))
    _, ib = auc_influence(y, two_class(b))
    unpaired = np.sqrt(influence_variance(y, ia) + influence_variance(y, ib))
    assert c["se"] < 0.5 * unpaired


def test_mcnemar_counts_the_discordant_cases():
    y = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    a = np.array([1, 1, 1, 0, 0, 0, 0, 1])  # right on the first six
    b = np.array([0, 0, 1, 0, 1, 0, 1, 0])  # right on cases 2, 3, 5, 6, 7
    c = compare_decisions(y, a, b)
    assert (c["only_a_right"], c["only_b_right"]) == (3, 2)
    assert c["p_value"] == pytest.approx(1.0)
    assert compare_decisions(y, a, a)["p_value"] == 1.0


def test_with_interval_text():
    assert with_interval(0.9087, [0.8666, 0.9384]) == "0.909 (95% CI 0.867-0.938)"
    assert with_interval(-0.014, [-0.034, 0.005]) == "-0.014 (95% CI -0.034 to 0.005)"
    assert with_interval(0.5, None) == with_interval(0.5, [float("nan")] * 2) == "0.500"
