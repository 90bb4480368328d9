"""Fixtures for the ML tests (the tiny bundle lives in tests/conftest.py)."""

from pathlib import Path

import numpy as np
import pytest

PHANTOM_MODEL = Path(__file__).resolve().parents[2] / "models" / "phantom-lesion.keras"


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def phantom_bundle():
    """The bundled lesion model (skips where the checkout has no models/)."""
    from vol3d_gui.ml.bundle import load_bundle

    if not PHANTOM_MODEL.exists():
        pytest.skip("models/phantom-lesion is not in the tree (train it with the README's command)")
    return load_bundle(PHANTOM_MODEL)
