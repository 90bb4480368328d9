"""Paths of the files in resources/ (icon, .desktop, MIME info)."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtGui

RESOURCES = Path(__file__).resolve().parents[2] / "resources"


def app_icon() -> QtGui.QIcon:
    """The SVG icon plus its PNG rendering (used where Qt's SVG plug-in is missing)."""
    icon = QtGui.QIcon()
    for name in ("vol3d.svg", "vol3d.png"):
        path = RESOURCES / name
        if path.exists():
            icon.addFile(str(path))
    return icon
