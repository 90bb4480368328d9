import numpy as np
import pytest

from vol3d_gui.ml.calibration import calibrate_binary, fit_platt, fold_into_model, log_odds


def test_fit_platt_recovers_a_known_scaling():
    rng = np.random.default_rng(0)
    d = rng.normal(2.0, 2.0, 4000)  # a model that says "positive" far too often
    y = rng.random(4000) < 1 / (1 + np.exp(-(0.5 * d - 1.5)))
    a, b = fit_platt(d, y)
    assert a == pytest.approx(0.5, abs=0.08) and b == pytest.approx(-1.5, abs=0.2)


def test_fit_platt_refuses_one_class_and_a_backwards_model():
    with pytest.raises(ValueError, match="both classes"):
        fit_platt(np.arange(5.0), np.zeros(5))
    d = np.linspace(-3, 3, 200)
    with pytest.raises(ValueError, match="not positive"):
        fit_platt(d, d < 0)


def test_folding_keeps_the_ranking_and_fixes_the_threshold():
    import keras

    from vol3d_gui.ml.training import predict_arrays

    keras.utils.set_random_seed(1)
    inp = keras.Input((3,))
    out = keras.layers.Dense(2, activation="softmax", name="probabilities")(inp)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 3)).astype("float32")
    score = log_odds(predict_arrays(model, x))
    y = (score > np.percentile(score, 80)).astype(int)  # ranks perfectly, but only the top fifth are positive
    record = calibrate_binary(model, x, y, predict_arrays)
    after = predict_arrays(model, x)
    assert np.allclose(after.sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(np.argsort(log_odds(after)), np.argsort(score))
    assert record["val_log_loss_after"] < record["val_log_loss_before"]
    assert record["val_accuracy_after"] >= 0.95
    with pytest.raises(ValueError):
        fold_into_model(keras.Model(inp, keras.layers.Dense(3, name="probabilities")(inp)), 1.0, 0.0)
