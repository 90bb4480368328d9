"""The domain check's two halves, Qt- and TF-free: metadata mismatches named in words, and a
feature-space distance whose validation threshold lets the promised share through."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vol3d_gui.core.volume import Volume, centered_affine
from vol3d_gui.ml import domain

CARD = {"input_shape": [16, 16, 16], "preprocessing": {"type": "hu_window", "low": -200, "high": 250},
        "domain": {"modality": "CT", "spacing_mm": {"min": [1, 1, 1.5], "max": [1, 1, 1.5]},
                   "fov_mm": {"min": [128, 128, 144], "max": [128, 128, 144]},
                   "intensity": {"mean": {"min": 0.15, "max": 0.21}, "std": {"min": 0.23, "max": 0.25},
                                 "low_fraction": {"min": 0.53, "max": 0.64},
                                 "high_fraction": {"min": 0.006, "max": 0.01}}}}


def _vol(shape=(128, 128, 96), spacing=(1.0, 1.0, 1.5), modality="CT"):
    return Volume(np.zeros(shape, np.int16), centered_affine(shape, spacing),
                  meta={"modality": modality} if modality else {})


def _x(mean=0.18, low=0.6, high=0.008, n=16**3, seed=0):
    """A preprocessed tensor with the given statistics (values in [0, 1])."""
    rng = np.random.default_rng(seed)
    a = np.full(n, mean, np.float32)
    k_low, k_high = int(low * n), int(high * n)
    a[:k_low] = 0.0
    a[k_low : k_low + k_high] = 1.0
    rest = slice(k_low + k_high, n)
    target = (mean * n - k_high) / max(n - k_low - k_high, 1)
    a[rest] = np.clip(rng.normal(target, 0.05, n - k_low - k_high), 0.01, 0.99)
    return a.reshape(16, 16, 16, 1)


def test_a_volume_like_the_training_data_has_no_reasons():
    x = _x()
    stats = domain.intensity_stats(x)
    assert CARD["domain"]["intensity"]["low_fraction"]["min"] <= stats["low_fraction"] <= 0.64
    assert domain.metadata_reasons(CARD, _vol(), x) == []


@pytest.mark.parametrize("vol, words", [
    (_vol(modality="MR"), "modality MR, trained on CT"),
    (_vol(shape=(64, 64, 64), spacing=(1, 1, 1)), "field of view 64 x 64 x 64 mm"),
    (_vol(shape=(32, 32, 24), spacing=(4, 4, 6)), "voxel spacing 4 x 4 x 6 mm"),
])
def test_geometry_and_modality_mismatches_are_named(vol, words):
    reasons = domain.metadata_reasons(CARD, vol, _x())
    assert any(words in r for r in reasons), reasons


def test_small_geometry_differences_are_tolerated_but_not_large_ones():
    # 20% larger field of view: inside the 30% tolerance; 60%: outside
    assert domain.metadata_reasons(CARD, _vol(shape=(154, 154, 115)), _x()) == []
    assert domain.metadata_reasons(CARD, _vol(shape=(205, 205, 154)), _x())
    # a volume without a modality (NIfTI) is not accused of the wrong one
    assert domain.metadata_reasons(CARD, _vol(modality=None), _x()) == []


def test_intensity_statistics_outside_the_training_range_are_named():
    reasons = domain.metadata_reasons(CARD, _vol(), _x(mean=0.6, low=0.05, high=0.3))
    assert any("intensity low fraction" in r for r in reasons)
    assert any("intensity high fraction" in r for r in reasons)


def test_a_card_without_a_domain_accepts_everything():
    card = {k: v for k, v in CARD.items() if k != "domain"}
    assert domain.metadata_reasons(card, _vol(modality="MR"), _x(mean=0.9)) == []
    assert domain.feature_score(card, np.zeros((2, 3))) is None
    check = domain.combine(domain.metadata_ratios(card, _vol(), _x()), None)
    assert check.in_domain and check.score == 0.0 and check.reasons == []


def _features(rng, n, shift=0.0, d=8):
    """Two classes in a correlated feature space (like a network's penultimate layer)."""
    y = rng.integers(0, 2, n)
    mix = np.linalg.cholesky(np.full((d, d), 0.6) + 0.4 * np.eye(d))
    f = rng.normal(size=(n, d)) @ mix.T + np.where(y[:, None] == 1, 2.0, -2.0) * np.eye(d)[0]
    # a shift across the correlation (a narrow direction of the training data)
    return f + shift * (np.eye(d)[1] - np.eye(d)[2]), y


def test_feature_threshold_lets_the_promised_share_of_new_in_domain_data_through():
    rng = np.random.default_rng(0)
    f_tr, y_tr = _features(rng, 600)
    f_val, _ = _features(rng, 200)
    ref = domain.fit_feature_reference(f_tr, y_tr, f_val)
    assert ref["threshold_quantile"] == domain.PASS_QUANTILE
    f_new, _ = _features(rng, 4000)
    passed = np.mean(domain.feature_score({"domain": {"features": ref}}, f_new) <= 1.0)
    assert 0.95 <= passed <= 0.995
    # shifted data fails: the distance grows with the shift, in any direction
    for shift in (4.0, -4.0):
        f_ood, _ = _features(rng, 200, shift=shift)
        assert np.mean(domain.feature_score({"domain": {"features": ref}}, f_ood) > 1.0) > 0.95


def test_mahalanobis_uses_the_covariance_not_euclidean_distance():
    ref = {"means": [[0.0, 0.0]], "precision": np.linalg.inv([[4.0, 0.0], [0.0, 0.25]]).tolist()}
    # 2 units along the wide axis is 1 sd; 1 unit along the narrow axis is 2 sd
    d = domain.mahalanobis(ref, [[2.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(d, [1.0, 2.0])


def test_combine_takes_the_largest_ratio_and_names_metadata_first():
    meta = ([(0.2, "fov fine"), (1.7, "field of view too large")], None)
    check = domain.combine(meta, 3.0)
    assert not check.in_domain and check.score == 3.0
    assert check.reasons[0] == "field of view too large" and check.reasons[1].startswith("the network's features")
    ok = domain.combine(([(0.2, "fine")], None), 0.9)
    assert ok.in_domain and ok.score == pytest.approx(0.9) and ok.reasons == []
    mod = domain.combine(([], "modality MR, trained on CT"), 0.5)
    assert not mod.in_domain and mod.reasons == ["modality MR, trained on CT"]
    assert mod.to_dict() == {"in_domain": False, "score": 0.5, "reasons": ["modality MR, trained on CT"]}


def test_a_nan_feature_score_is_out_of_domain():
    check = domain.combine(([], None), float("nan"))
    assert not check.in_domain and check.score == domain.NOT_FINITE


@given(lo=st.floats(0.3, 5.0), width=st.floats(1.0, 3.0), factor=st.floats(0.2, 5.0))
def test_geometry_ratio_is_at_most_one_exactly_within_the_tolerance(lo, width, factor):
    hi = lo * width
    dom = {"spacing_mm": {"min": [lo] * 3, "max": [hi] * 3}}
    v = (lo if factor < 1 else hi) * factor
    (ratio, why), = domain.geometry_ratios(dom, [v, (lo + hi) / 2, lo], None)
    within = lo / domain.SPACING_TOLERANCE <= v <= hi * domain.SPACING_TOLERANCE
    if abs(np.log(factor)) < 1e-9 or abs(abs(np.log(factor)) - np.log(domain.SPACING_TOLERANCE)) > 1e-9:
        assert (ratio <= 1.0) == within
    assert why.startswith("voxel spacing")


def test_the_precision_is_stored_as_its_upper_triangle_with_the_same_distances():
    """New cards store half of the symmetric precision; the distances are those of the full
    float32 matrix older cards hold (which still load: models/ holds such cards)."""
    import base64
    import json
    from pathlib import Path

    rng = np.random.default_rng(3)
    d = 40
    mix = rng.normal(size=(d, d)) * np.linspace(0.1, 3.0, d)  # correlated features of unequal scale
    f = rng.normal(size=(300, d)) @ mix + 2.0
    y = (rng.random(300) < 0.3).astype(int)
    f[y == 1, :5] += 4.0
    ref = domain.fit_feature_reference(f, y, f[:60])
    enc = ref["precision"]
    assert enc["layout"] == "upper" and enc["shape"] == [d, d]
    assert len(base64.b64decode(enc["base64"])) == 4 * d * (d + 1) // 2
    prec = domain.decode_matrix(enc)
    np.testing.assert_array_equal(prec, prec.T)
    old = {**ref, "precision": domain.encode_matrix(prec)}  # the full layout of earlier cards
    assert "layout" not in old["precision"]
    probe = np.r_[f[60:90], rng.normal(size=(10, d)) @ mix * 3]
    np.testing.assert_allclose(domain.mahalanobis(ref, probe), domain.mahalanobis(old, probe), rtol=1e-6)
    # a card from models/ (full float32 128 x 128): re-stored as a triangle, its distances hold
    card = json.loads((Path(__file__).parents[2] / "models" / "adrenal3d.json").read_text())
    shipped = card["domain"]["features"]
    full = domain.decode_matrix(shipped["precision"])
    compact = {**shipped, "precision": domain.encode_matrix(full, symmetric=True)}
    means = np.asarray(shipped["means"])
    probe = means[rng.integers(0, len(means), 50)] + rng.normal(size=(50, full.shape[0])) * np.abs(means).mean()
    np.testing.assert_allclose(domain.mahalanobis(compact, probe), domain.mahalanobis(shipped, probe), rtol=1e-4)
    assert len(json.dumps(compact["precision"])) < 0.52 * len(json.dumps(shipped["precision"]))


def test_a_damaged_triangle_is_refused():
    enc = domain.encode_matrix(np.eye(4), symmetric=True)
    with pytest.raises(ValueError, match="upper triangle of a 5 x 5"):
        domain.decode_matrix({**enc, "shape": [5, 5]})
    with pytest.raises(ValueError, match="layout"):
        domain.decode_matrix({**enc, "layout": "lower"})
    with pytest.raises(ValueError, match="square"):
        domain.encode_matrix(np.ones((2, 3)), symmetric=True)
