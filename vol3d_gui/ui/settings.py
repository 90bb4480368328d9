"""Where the GUI keeps its settings and finds its data: one place, so no module imports the
window to reach them. Environment variables override each path (the tests use them)."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6 import QtCore

REPO_MODELS = Path(__file__).resolve().parents[2] / "models"


def app_settings() -> QtCore.QSettings:
    """Settings in $VOL3D_SETTINGS_DIR when set (tests), else the user's Qt settings."""
    folder = os.environ.get("VOL3D_SETTINGS_DIR")
    if folder:
        return QtCore.QSettings(str(Path(folder) / "vol3d.ini"), QtCore.QSettings.Format.IniFormat)
    return QtCore.QSettings("vol3d", "vol3d")


def labels_db_path() -> Path:
    env = os.environ.get("VOL3D_LABELS_DB")
    if env:
        return Path(env)
    from vol3d_gui.store.labels import default_store_path

    return default_store_path()


def user_models_dir() -> Path:
    env = os.environ.get("VOL3D_MODELS_DIR")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("vol3d")) / "models"


def model_dirs() -> list[Path]:
    return [REPO_MODELS, user_models_dir()]
