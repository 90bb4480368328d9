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


_TINY_BUNDLE = """
import sys, keras
from vol3d_gui.ml.architecture import GRADCAM_LAYER, build_classifier
from vol3d_gui.ml.bundle import save_bundle
keras.utils.set_random_seed(0)
model = build_classifier((16, 16, 12), 2, width=4, name="tiny")
card = {"name": "tiny", "class_names": ["no lesion", "lesion"], "input_shape": [16, 16, 12],
        "preprocessing": {"type": "hu_window", "low": -200.0, "high": 250.0},
        "gradcam_layer": GRADCAM_LAYER}
save_bundle(model, card, sys.argv[1])
"""


@pytest.fixture(scope="session")
def tiny_bundle_path(tmp_path_factory):
    """A tiny bundle (16x16x12 input, width 4), built in a child process so that the GUI
    tests' process never loads TensorFlow (see vol3d_gui.ml.service for why)."""
    import subprocess
    import sys

    path = tmp_path_factory.mktemp("bundles") / "tiny.keras"
    subprocess.run([sys.executable, "-c", _TINY_BUNDLE, str(path)], check=True, cwd=REPO)
    return path


_exit_status: int | None = None


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    global _exit_status
    _exit_status = int(exitstatus)


def pytest_unconfigure(config):
    """After the GUI tests, leave without Python's final garbage collection: tearing down
    dozens of windows' PySide6/PyOpenGL wrappers at interpreter exit aborted the process
    ("bool_dealloc: deallocating True or False") after every test had passed, turning a green
    run red. The report is complete by now; only the exit status must survive."""
    import sys

    if "PySide6" in sys.modules and _exit_status is not None:
        decode = sys.modules.get("vol3d_gui.core.readers.dicom.decode")
        if decode is not None:  # os._exit runs no atexit: stop the decode workers here
            decode.shutdown_workers(wait=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status)
