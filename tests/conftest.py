"""Shared fixtures. Tests that need ../shared/datasets skip with a clear reason without it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Quiet TensorFlow and keep its thread pools small: CI has 2 cores.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("VOL3D_DATASETS", REPO.parent / "shared" / "datasets"))


def dataset_path(name: str) -> Path:
    """Path of a MedMNIST file in ../shared/datasets, or skip the test saying why."""
    path = DATASETS / name
    if not path.is_file():
        pytest.skip(f"{name} not found in {DATASETS} (../shared/datasets is absent)")
    return path


@pytest.fixture
def adrenal28() -> Path:
    return dataset_path("adrenalmnist3d_28.npz")


@pytest.fixture
def adrenal64() -> Path:
    return dataset_path("adrenalmnist3d_64.npz")


@pytest.fixture
def vessel28() -> Path:
    return dataset_path("vesselmnist3d_28.npz")
