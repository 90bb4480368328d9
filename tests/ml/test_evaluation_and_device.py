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
