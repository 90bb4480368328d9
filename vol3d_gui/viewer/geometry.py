"""Plane geometry of the slice views and texture matrices of the 3-D view, without Qt.

A slice view's coordinates are millimetres along the volume's two in-plane array axes
(index x spacing), so a locked aspect ratio gives the true physical aspect for anisotropic
voxels; pixel centres sit at index x spacing, so the image rectangle starts half a voxel
before 0. Radiological display puts patient right on screen left (+x runs right to left);
the sagittal view always shows anterior on the left.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vol3d_gui.core.resample import PLANE_AXES
from vol3d_gui.core.volume import Volume

AXIS_OF = {"sagittal": 0, "coronal": 1, "axial": 2}
ORIENTATIONS = tuple(AXIS_OF)
# Screen letters (left, right, top, bottom) in radiological display; neurological swaps R/L.
_LETTERS = {
    "axial": ("R", "L", "A", "P"),
    "coronal": ("R", "L", "S", "I"),
    "sagittal": ("A", "P", "S", "I"),
}


def screen_letters(orientation: str, radiological: bool) -> tuple[str, str, str, str]:
    left, right, top, bottom = _LETTERS[orientation]
    if orientation != "sagittal" and not radiological:
        left, right = right, left
    return left, right, top, bottom


def invert_x(orientation: str, radiological: bool) -> bool:
    """Does screen x run against the view's x (toward R for axial/coronal, A for sagittal)?"""
    return True if orientation == "sagittal" else bool(radiological)


@dataclass(frozen=True)
class PlaneGeometry:
    """Where one orthogonal plane of ``volume`` sits on screen."""

    volume: Volume
    orientation: str

    @property
    def axis(self) -> int:
        return AXIS_OF[self.orientation]

    @property
    def in_plane_axes(self) -> tuple[int, int]:
        return PLANE_AXES[self.axis]

    @property
    def scale(self) -> tuple[float, float]:
        a, b = self.in_plane_axes
        sp = self.volume.spacing
        return float(sp[a]), float(sp[b])

    @property
    def n_slices(self) -> int:
        return self.volume.shape[self.axis]

    @property
    def rect(self) -> tuple[float, float, float, float]:
        """(x, y, width, height) of the image in view millimetres."""
        a, b = self.in_plane_axes
        sa, sb = self.scale
        return -sa / 2, -sb / 2, self.volume.shape[a] * sa, self.volume.shape[b] * sb

    def slice_index(self, world) -> int:
        """The slice through a world point, clamped to the volume."""
        ijk = self.volume.world_to_voxel(np.asarray(world, dtype=np.float64))
        # round() as np.rint (half to even), on plain numbers: every view, every cursor move
        return min(max(round(float(ijk[self.axis])), 0), self.volume.data.shape[self.axis] - 1)

    def to_view(self, world) -> tuple[float, float]:
        """View millimetres (x, y) of a world point projected onto this plane."""
        ijk = self.volume.world_to_voxel(np.asarray(world, dtype=np.float64))
        a, b = self.in_plane_axes
        sa, sb = self.scale
        return float(ijk[a] * sa), float(ijk[b] * sb)

    def to_world(self, x: float, y: float, index: float) -> np.ndarray:
        """World point of view position (x, y) on slice ``index``."""
        a, b = self.in_plane_axes
        sa, sb = self.scale
        ijk = np.zeros(3)
        ijk[a], ijk[b], ijk[self.axis] = x / sa, y / sb, index
        return self.volume.voxel_to_world(ijk)

    def stepped(self, world, step: int) -> np.ndarray:
        """The cursor moved ``step`` slices along this view's axis (clamped), in-plane unchanged."""
        ijk = self.volume.world_to_voxel(np.asarray(world, dtype=np.float64))
        ijk[self.axis] = np.clip(np.rint(ijk[self.axis]) + step, 0, self.n_slices - 1)
        return self.volume.voxel_to_world(ijk)


def texture_affine(grid_affine: np.ndarray, grid_shape) -> np.ndarray:
    """4x4 mapping 3-D texture coordinates [0, 1]^3 (voxel edges) to RAS mm."""
    tex = np.eye(4)
    tex[:3, :3] = np.diag(np.asarray(grid_shape, dtype=np.float64))
    tex[:3, 3] = -0.5
    return np.asarray(grid_affine, dtype=np.float64) @ tex


def overlay_texture_matrix(overlay: Volume, base_texture_affine: np.ndarray) -> np.ndarray:
    """4x4 from the base texture's coordinates to the overlay texture's coordinates: the
    shader samples an overlay on its own (coarse) grid, placed by its own affine."""
    shape = np.asarray(overlay.shape, dtype=np.float64)
    to_tex = np.eye(4)
    to_tex[:3, :3] = np.diag(1.0 / shape)
    to_tex[:3, 3] = 0.5 / shape
    return to_tex @ np.linalg.inv(overlay.affine) @ base_texture_affine
