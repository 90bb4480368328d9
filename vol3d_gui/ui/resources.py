"""Paths of the files in resources/ (icon, .desktop, MIME info)."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtGui

RESOURCES = Path(__file__).resolve().parents[2] / "resources"


def app_icon() -> QtGui.QIcon:
    icon = RESOURCES / "vol3d.svg"
    return QtGui.QIcon(str(icon)) if icon.exists() else QtGui.QIcon()
