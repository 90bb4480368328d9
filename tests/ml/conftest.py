"""A tiny bundle built once per session (16^3 input, width 4) for the ML and GUI tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_bundle_path(tmp_path_factory):
    import keras

    from vol3d_gui.ml.architecture import GRADCAM_LAYER, build_classifier
    from vol3d_gui.ml.bundle import save_bundle

    keras.utils.set_random_seed(0)
    model = build_classifier((16, 16, 12), 2, width=4, name="tiny")
    path = tmp_path_factory.mktemp("bundles") / "tiny.keras"
    card = {"name": "tiny", "class_names": ["no lesion", "lesion"], "input_shape": [16, 16, 12],
            "preprocessing": {"type": "hu_window", "low": -200.0, "high": 250.0},
            "gradcam_layer": GRADCAM_LAYER}
    save_bundle(model, card, path)
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(0)
