"""Features, probabilities and MC-dropout uncertainty from one compiled pass; the bundle's
trust API on a card with and without a recorded domain; cards updated without touching weights."""

import json
import shutil

import numpy as np
import pytest

from vol3d_gui.core.phantom import lesion_phantom
from vol3d_gui.ml.bundle import load_bundle, update_card
from vol3d_gui.ml.uncertainty import analyse, entropy_bits, head_weights, mc_dropout


@pytest.fixture(scope="module")
def tiny(tiny_bundle_path):
    return load_bundle(tiny_bundle_path)


def test_analyse_gives_the_bundles_probabilities_and_its_penultimate_features(tiny, rng):
    x = rng.random((5, *tiny.input_shape, 1)).astype(np.float32)
    a = analyse(tiny, x, batch_size=2)
    np.testing.assert_allclose(a.probabilities, tiny.forward(x), atol=1e-6)
    kernel, bias, rate = head_weights(tiny.model)
    assert a.features.shape == (5, kernel.shape[0]) and rate == pytest.approx(0.3)
    # the final layer applied to the features reproduces the probabilities: they are its input
    z = a.features @ kernel + bias
    p = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(p / p.sum(1, keepdims=True), a.probabilities, atol=1e-5)
    assert np.all((a.uncertainty >= 0) & (a.uncertainty <= 1.0 + 1e-9))


def test_mc_dropout_matches_keras_dropout_in_training_mode():
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    f = rng.random((3, 12)) * 2
    inp = keras.Input((12,))
    head = keras.layers.Dense(2, activation="softmax", name="probabilities")
    out = head(keras.layers.Dropout(0.3, name="dropout")(inp))
    model = keras.Model(inp, out)
    kernel, bias, rate = head_weights(model)
    ours, spread = mc_dropout(f, kernel, bias, rate, samples=4000)
    # Keras draws an independent mask per row: 3000 copies of the three rows in one call
    tiled = np.tile(f, (3000, 1)).astype("float32")
    theirs = np.asarray(model(tiled, training=True)).reshape(3000, 3, 2).mean(axis=0)
    np.testing.assert_allclose(ours, theirs, atol=0.02)
    assert np.all(spread > 0)
    # without dropout there is nothing to sample: the deterministic answer, no spread
    det, none = mc_dropout(f, kernel, bias, 0.0)
    np.testing.assert_allclose(det, np.asarray(model(f.astype("float32"), training=False)), atol=1e-5)
    assert not none.any()
    # the same volume gives the same answer every time it is shown
    np.testing.assert_array_equal(mc_dropout(f, kernel, bias, rate)[0], mc_dropout(f, kernel, bias, rate)[0])


def test_entropy_is_zero_when_certain_and_one_bit_for_a_coin_toss():
    np.testing.assert_allclose(entropy_bits(np.array([[1.0, 0.0], [0.5, 0.5]])), [0.0, 1.0], atol=1e-9)


def test_trust_api_on_a_card_without_a_domain(tiny):
    vol, _ = lesion_phantom(1, True, shape=(32, 32, 24))
    probs, unc, fscore = tiny.analyse_tensor(tiny.preprocess(vol))
    np.testing.assert_allclose(probs, tiny.predict(vol), atol=1e-6)
    assert fscore is None and 0 <= unc <= 1
    check = tiny.check_domain(vol)
    assert check.in_domain and check.reasons == [] and check.score == 0.0
    pred = tiny.predict_with_uncertainty(vol)
    assert pred.uncertainty == pytest.approx(unc)
    assert tiny.decide(probs) == int(np.argmax(probs))


def test_update_card_keeps_fields_and_never_touches_the_weights(tiny_bundle_path, tmp_path):
    keras_path = tmp_path / "copy.keras"
    shutil.copy(tiny_bundle_path, keras_path)
    shutil.copy(tiny_bundle_path.with_suffix(".json"), keras_path.with_suffix(".json"))
    before = keras_path.read_bytes()
    old = json.loads(keras_path.with_suffix(".json").read_text())
    update_card(keras_path, {"operating_point": {"threshold": 0.3}})
    card = json.loads(keras_path.with_suffix(".json").read_text())
    assert card == {**old, "operating_point": {"threshold": 0.3}}
    assert keras_path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.json", "copy.keras"]  # no temp left
    bundle = load_bundle(keras_path)
    assert bundle.decide([0.65, 0.35]) == 1


def test_assess_batch_matches_one_volume_at_a_time(tiny):
    vols = [lesion_phantom(s, s % 2 == 0, shape=(32, 32, 24))[0] for s in range(5)]
    batch = tiny.assess_batch([lambda v=v: v for v in vols], batch_size=2)
    assert len(batch) == 5
    for v, (pred, check) in zip(vols, batch):
        one, one_check = tiny.assess(v)
        np.testing.assert_allclose(pred.probabilities, one.probabilities, atol=1e-6)
        assert pred.uncertainty == pytest.approx(one.uncertainty, abs=1e-6)
        assert check == one_check
    calls = []
    stopped = tiny.assess_batch(vols, should_stop=lambda: len(calls) >= 3, progress=lambda d, n: calls.append(d))
    assert len(stopped) == 3 and calls == [1, 2, 3]


def test_assess_detail_is_assess_plus_the_spread_of_each_probability(tiny):
    vol, _ = lesion_phantom(2, True, shape=(32, 32, 24))
    detail = tiny.assess_detail(vol)
    pred, check = tiny.assess(vol)
    np.testing.assert_allclose(detail["probabilities"], pred.probabilities, atol=1e-6)
    assert detail["uncertainty"] == pytest.approx(pred.uncertainty, abs=1e-9)
    assert detail["domain"] == check.to_dict() and detail["class_index"] == tiny.decide(pred.probabilities)
    # two classes: both probabilities move together over the dropout samples
    assert detail["spread"].shape == (2,) and detail["spread"][0] == pytest.approx(detail["spread"][1])
