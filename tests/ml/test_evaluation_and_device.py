import numpy as np
import pytest

from vol3d_gui.ml.device import configure_device
from vol3d_gui.ml.evaluation import binary_auc, evaluate_probs


def test_auc_by_hand():
    # positives score 0.8, 0.4; negatives 0.5, 0.1: 3 of 4 pairs ordered right
    assert binary_auc([1, 1, 0, 0], [0.8, 0.4, 0.5, 0.1]) == pytest.approx(0.75)
    assert binary_auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)  # ties count half


def test_evaluate_probs_binary_and_multiclass():
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    m = evaluate_probs([0, 1, 1, 0], p, ["a", "b"])
    assert m["accuracy"] == 0.5
    assert m["confusion_matrix"] == [[1, 1], [1, 1]]
    assert m["per_class_recall"] == {"a": 0.5, "b": 0.5}
    p3 = np.eye(3)[[0, 1, 2, 2]] * 0.9 + 0.1 / 3
    m3 = evaluate_probs([0, 1, 2, 2], p3)
    assert m3["auc"] == pytest.approx(1.0) and m3["accuracy"] == 1.0


class _FakeTF:
    """Stands in for tensorflow to exercise the GPU branch on a CPU-only machine."""

    def __init__(self):
        self.growth = []
        gpu = type("Dev", (), {"name": "/physical_device:GPU:0"})()
        tf = self

        class experimental:
            @staticmethod
            def set_memory_growth(dev, on):
                tf.growth.append((dev.name, on))

            @staticmethod
            def get_device_details(dev):
                return {"device_name": "Fake RTX"}

        class config:
            @staticmethod
            def list_physical_devices(kind):
                return [gpu] if kind == "GPU" else []

        config.experimental = experimental
        self.config = config


def test_gpu_path_enables_memory_growth_and_names_the_card():
    fake = _FakeTF()
    info = configure_device(tf=fake)
    assert fake.growth == [("/physical_device:GPU:0", True)]
    assert info.kind == "GPU" and "Fake RTX" in info.description


def test_cpu_path_and_mixed_precision_switch():
    import keras

    info = configure_device()
    assert info.kind == "CPU" and info.description.startswith("CPU")
    try:
        info = configure_device(mixed_precision=True)
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        assert "mixed precision" in info.description
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_multiclass_auc_is_the_mean_of_one_vs_rest_by_hand():
    y = [0, 1, 2, 0]
    p = np.array([[0.6, 0.3, 0.1],
                  [0.5, 0.4, 0.1],
                  [0.2, 0.3, 0.5],
                  [0.3, 0.5, 0.2]])
    # class 0 vs rest: positives 0.6, 0.3 against 0.5, 0.2 -> 3 of 4 pairs ordered right
    # class 1 vs rest: positive 0.4 against 0.3, 0.3, 0.5 -> 2 of 3
    # class 2 vs rest: positive 0.5 against 0.1, 0.1, 0.2 -> 3 of 3
    m = evaluate_probs(y, p, ["a", "b", "c"])
    assert m["auc"] == pytest.approx((0.75 + 2 / 3 + 1.0) / 3)
    # predictions 0, 0, 2, 1: one of two a's right, the b missed, the c right
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["per_class_recall"] == {"a": 0.5, "b": 0.0, "c": 1.0}
    assert m["confusion"] == [[1, 1, 0], [1, 0, 0], [0, 0, 1]]


def test_auc_of_a_single_class_is_nan_not_an_error():
    assert np.isnan(binary_auc([1, 1, 1], [0.2, 0.5, 0.9]))


def test_real_tensorflow_with_a_mocked_gpu_list_requests_memory_growth(monkeypatch):
    # the real tf module, its device listing patched: the code path a GPU machine runs
    import tensorflow as tf

    fake_gpu = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    requested = []
    real_list = tf.config.list_physical_devices
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: [fake_gpu] if kind == "GPU" else real_list(kind))
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth",
                        lambda dev, on: requested.append((dev.name, on)))
    monkeypatch.setattr(tf.config.experimental, "get_device_details",
                        lambda dev: {"device_name": "NVIDIA Test Card"})
    info = configure_device()
    assert requested == [("/physical_device:GPU:0", True)]
    assert info.description == "GPU: NVIDIA Test Card"
