"""File > Export: a PNG of one view or the window, and the saliency map as NIfTI.

Each file is written beside its target and moved into place, so a failed write never leaves
half a PNG or NIfTI where the user asked for one."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6 import QtWidgets

from vol3d_gui.core.errors import Vol3dError


def export_view(window, key: str, path) -> Path:
    """Save a PNG of one view ('axial', 'coronal', 'sagittal', '3d') or 'window'."""
    path = Path(path)
    if key == "window":
        image = window.grab().toImage()
    elif key == "3d" and getattr(window.volume_view, "available", False):
        image = window.volume_view.grab_frame()
    else:
        image = window.view_cell(key).grab().toImage()
    tmp = path.with_name(f".{path.name}.tmp.png")
    if not image.save(str(tmp), "PNG"):
        raise OSError(f"cannot write {path}")
    os.replace(tmp, path)
    return path


def export_saliency(viewer, path) -> Path:
    """Write the saliency map on screen as NIfTI, in the source volume's world space."""
    from vol3d_gui.core.io import save_nifti

    if viewer.saliency is None:
        raise Vol3dError("no saliency map to export: classify a volume with a model first")
    return save_nifti(viewer.saliency, path)


def export_view_dialog(window, key: str) -> None:
    path, _ = QtWidgets.QFileDialog.getSaveFileName(window, "Export screenshot", f"vol3d-{key}.png",
                                                    "PNG (*.png)")
    if path:
        try:
            export_view(window, key, path)
        except OSError as exc:
            window.show_error("Cannot export screenshot", exc)


def export_saliency_dialog(window) -> None:
    path, _ = QtWidgets.QFileDialog.getSaveFileName(window, "Export saliency", "saliency.nii.gz",
                                                    "NIfTI (*.nii.gz *.nii)")
    if path:
        try:
            export_saliency(window.viewer, path)
            window.statusBar().showMessage(f"Saliency written to {path}", 8000)
        except (Vol3dError, OSError) as exc:
            window.show_error("Cannot export saliency", exc)
