"""The cross-validated ensemble as one bundle (ml/ensemble.py, `vol3d train --folds`): folds,
the mean-logit merge, and that MC dropout, the feature pass, Platt folding and Grad-CAM keep
working on the merged model."""

import json

import numpy as np
import pytest

from vol3d_gui.ml.architecture import GRADCAM_LAYER, build_classifier
from vol3d_gui.ml.bundle import ModelBundle, load_bundle, save_bundle
from vol3d_gui.ml.ensemble import gradcam_layers, merge_members, stratified_folds

SHAPE = (16, 16, 12)  # not a cube: a transposed axis would show


def _member(seed: int, **options):
    """A small member with weights and BatchNorm statistics far from their initial values, so
    a layer copied to the wrong place (or not at all) changes the output."""
    import keras

    keras.utils.set_random_seed(seed)
    model = build_classifier(SHAPE, 2, **{"width": 4, "bn_momentum": 0.9, **options})
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([(w + rng.normal(0, 0.2, w.shape) ** 2 * (1 if "bn" in layer.name else 0)
                                + rng.normal(0, 0.05, w.shape) * (0 if "bn" in layer.name else 1))
                               .astype(np.float32) for w in ws])
    return model


def _logit(probs):
    p = np.asarray(probs, np.float64)
    return np.log(p[:, 1]) - np.log(p[:, 0])


@pytest.fixture(scope="module")
def members():
    return [_member(s) for s in (1, 2, 3)]


@pytest.fixture(scope="module")
def x():
    x = np.random.default_rng(7).random((5, *SHAPE, 1)).astype(np.float32)
    x[:, :8, :6, :5] += 1.5  # a bright corner block: maps that are not flat noise
    return x


def _bundle(model, layers):
    card = {"name": "cv", "class_names": ["a", "b"], "input_shape": list(SHAPE),
            "preprocessing": {"type": "scale", "divisor": 1.0}, "gradcam_layer": layers[0],
            "gradcam_layers": layers}
    return ModelBundle(model, card)


def test_folds_are_stratified_complete_and_reproducible():
    y = np.r_[np.zeros(83, int), np.ones(22, int)]
    folds = stratified_folds(y, 5, seed=0)
    assert sorted(np.unique(folds)) == [0, 1, 2, 3, 4]
    for c, n in ((0, 83), (1, 22)):
        per_fold = np.bincount(folds[y == c], minlength=5)
        assert per_fold.max() - per_fold.min() <= 1 and per_fold.sum() == n
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 1
    np.testing.assert_array_equal(folds, stratified_folds(y, 5, seed=0))
    assert not np.array_equal(folds, stratified_folds(y, 5, seed=1))
    with pytest.raises(ValueError):
        stratified_folds(y, 1)
    with pytest.raises(ValueError, match="fewer"):
        stratified_folds(np.r_[np.zeros(10, int), np.ones(3, int)], 5)


def test_merged_logits_are_the_members_mean(members, x):
    merged = merge_members(members)
    want = np.mean([_logit(m(x, training=False)) for m in members], axis=0)
    np.testing.assert_allclose(_logit(merged(x, training=False)), want, atol=2e-5)
    # each member's answer differs, so the mean is not trivially one of them
    assert np.ptp([_logit(m(x, training=False)) for m in members], axis=0).min() > 1e-3
    one = merge_members(members[:1])
    np.testing.assert_allclose(np.asarray(one(x, training=False)), np.asarray(members[0](x, training=False)),
                               atol=1e-6)


def test_merged_bundle_loads_in_safe_mode_and_keeps_the_head_contract(members, x, tmp_path):
    from vol3d_gui.ml.calibration import fold_into_model
    from vol3d_gui.ml.uncertainty import analyse, head_weights

    merged = merge_members(members)
    names = gradcam_layers(3, GRADCAM_LAYER)
    save_bundle(merged, _bundle(merged, names).card, tmp_path / "cv")
    bundle = load_bundle(tmp_path / "cv")  # safe_mode=True: no Lambda, no custom layer
    assert bundle.gradcam_layers == names
    assert not any(type(la).__name__ == "Lambda" for la in bundle.model.layers)
    np.testing.assert_allclose(bundle.forward(x), np.asarray(merged(x, training=False)), atol=1e-6)
    # MC dropout and the feature reference read the final Dense layer and the dropout before it
    kernel, bias, rate = head_weights(bundle.model)
    member_dim = members[0].get_layer("probabilities").get_weights()[0].shape[0]
    assert kernel.shape == (3 * member_dim, 2) and rate == pytest.approx(0.3)
    a = analyse(bundle, x)
    assert a.features.shape == (5, 3 * member_dim)
    np.testing.assert_allclose(a.probabilities, bundle.forward(x), atol=1e-5)
    # the features are the members' own penultimate features, side by side
    import keras

    f0 = keras.Model(members[1].inputs, members[1].get_layer("dropout").input)(x, training=False)
    np.testing.assert_allclose(a.features[:, member_dim : 2 * member_dim], np.asarray(f0), atol=1e-5)
    # Platt scaling folds into the one final layer: calibrated logit = a * mean logit + b
    before = _logit(bundle.forward(x))
    fold_into_model(bundle.model, 1.7, -0.4)
    bundle._forward = None
    np.testing.assert_allclose(_logit(bundle.forward(x)), 1.7 * before - 0.4, atol=1e-4)


def test_gradcam_of_one_member_is_todays_map(members, x):
    from vol3d_gui.ml.gradcam import gradcam_tensors

    plain = ModelBundle(members[0], {**_bundle(None, [GRADCAM_LAYER]).card})
    plain.card.pop("gradcam_layers")  # an old card: the single-name field only
    merged = _bundle(merge_members(members[:1]), gradcam_layers(1, GRADCAM_LAYER))
    for plus in (False, True):
        want, ci, _ = gradcam_tensors(plain, x, [1] * 5, plus=plus)
        got, _, _ = gradcam_tensors(merged, x, [1] * 5, plus=plus)
        assert want.max() > 0
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_gradcam_of_two_members_is_the_sum_of_their_maps(members, x):
    from vol3d_gui.ml.gradcam import gradcam_tensors

    model = merge_members([members[0], members[2]])  # both have evidence for class 1 here
    names = gradcam_layers(2, GRADCAM_LAYER)
    both = _bundle(model, names)
    each = [_bundle(model, [n]) for n in names]  # the same model, one member's layer at a time
    both_nonzero = 0
    for c in (0, 1):
        raw, _, _ = gradcam_tensors(both, x, [c] * 5, normalise=False)
        parts = [gradcam_tensors(b, x, [c] * 5, normalise=False)[0] for b in each]
        np.testing.assert_allclose(raw, parts[0] + parts[1], rtol=1e-5, atol=1e-7)
        total = parts[0] + parts[1]
        top = total.max(axis=(1, 2, 3), keepdims=True)
        shown, _, _ = gradcam_tensors(both, x, [c] * 5)
        np.testing.assert_allclose(shown, np.where(top > 0, total / np.where(top > 0, top, 1), 0), atol=1e-5)
        both_nonzero += int(min(p.max() for p in parts) > 0 and not np.allclose(parts[0], parts[1]))
    assert both_nonzero  # the sum was checked where both members contribute


def test_card_with_members_on_different_grids_is_refused(members, tmp_path):
    from vol3d_gui.ml.bundle import ModelError

    merged = merge_members(members[:2])
    card = _bundle(merged, [gradcam_layers(1, GRADCAM_LAYER)[0], "m1_conv1"]).card
    save_bundle(merged, card, tmp_path / "bad")
    with pytest.raises(ModelError, match="different grids"):
        load_bundle(tmp_path / "bad")
    card["gradcam_layers"] = "m0_gradcam_conv"
    (tmp_path / "bad.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="gradcam_layers must be a list"):
        load_bundle(tmp_path / "bad")


def test_members_of_different_networks_merge_to_their_mean(x, tmp_path):
    """`--fold-recipe`: the plain network, the erosion-profile head (a second path from the
    input, with a BatchNorm of its own), a ResNet and the cam head in one bundle, features of
    different widths side by side."""
    import keras

    from vol3d_gui.ml.calibration import fold_into_model
    from vol3d_gui.ml.uncertainty import analyse

    mixed = [_member(4), _member(5, shape_features=3), _member(6, arch="resnet", stem_stride=2, width=3),
             _member(7, head="cam", width=2)]
    merged = merge_members(mixed)
    logits = [_logit(m(x, training=False)) for m in mixed]
    assert np.ptp(logits, axis=0).min() > 1e-3
    np.testing.assert_allclose(_logit(merged(x, training=False)), np.mean(logits, axis=0), atol=2e-5)
    names = gradcam_layers(len(mixed), GRADCAM_LAYER)
    save_bundle(merged, _bundle(merged, names).card, tmp_path / "mixed")
    bundle = load_bundle(tmp_path / "mixed")  # safe mode, and one Grad-CAM grid for all four
    assert bundle.model.get_layer("m1_shape_bn").get_weights()[2].std() > 0  # its statistics were copied
    np.testing.assert_allclose(bundle.forward(x), np.asarray(merged(x, training=False)), atol=1e-6)
    dims = [m.get_layer("probabilities").get_weights()[0].shape[0] for m in mixed]
    assert len(set(dims)) > 1
    a = analyse(bundle, x)
    assert a.features.shape == (5, sum(dims))
    start = sum(dims[:2])
    f2 = keras.Model(mixed[2].inputs, mixed[2].get_layer("dropout").input)(x, training=False)
    np.testing.assert_allclose(a.features[:, start:start + dims[2]], np.asarray(f2), atol=1e-5)
    before = _logit(bundle.forward(x))
    fold_into_model(bundle.model, 0.8, 0.3)
    bundle._forward = None
    np.testing.assert_allclose(_logit(bundle.forward(x)), 0.8 * before + 0.3, atol=1e-4)
    from vol3d_gui.ml.gradcam import gradcam_tensors

    maps, _, _ = gradcam_tensors(bundle, x, [1] * 5)
    assert maps.shape == (5, 2, 2, 2) and maps.max() > 0
