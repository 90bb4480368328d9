"""Fixtures for the ML tests (the tiny bundle lives in tests/conftest.py)."""

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(0)
