"""Preprocessing from a model card: one function for training, prediction and Grad-CAM.

Resampling is by shape, not in physical space: the volume's whole array is zoomed onto
the model's grid (scipy.ndimage.zoom with grid_mode=True, so voxel *edges* of the two grids
coincide). The bundled models are trained on MedMNIST cubes (already resampled to a fixed
field of view) and on phantoms with a fixed field of view, so "the whole scan onto the
model grid" is what the networks have seen; a physical-space resampling would need a
fixed field of view in mm that these datasets do not define. ``grid_affine`` gives the
exact placement of the model grid in the source volume's world space, which is what lets
a Grad-CAM map be drawn over the scan as a Volume of its own.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from vol3d_gui.core.volume import Volume


def resample_to_grid(data: np.ndarray, shape) -> np.ndarray:
    """Trilinear zoom of a 3-D array onto ``shape`` (float32), voxel edges aligned."""
    shape = tuple(int(s) for s in shape)
    arr = np.asarray(data)
    if arr.ndim != 3:
        raise ValueError(f"expected a 3-D array, got shape {arr.shape}")
    if arr.shape == shape:
        return arr.astype(np.float32, copy=False)
    factors = [t / s for t, s in zip(shape, arr.shape)]
    # zoom reads the native dtype (int16 CT, uint8) and writes float32: no float copy of a
    # 512x512x300 scan, and the cost is proportional to the small model grid
    out = ndimage.zoom(arr, factors, output=np.float32, order=1, mode="nearest", grid_mode=True)
    if out.shape != shape:  # zoom rounds; never let a one-voxel difference through
        out = out[: shape[0], : shape[1], : shape[2]]
        out = np.pad(out, [(0, t - s) for t, s in zip(shape, out.shape)], mode="edge")
    return out


def grid_affine(volume: Volume, shape) -> np.ndarray:
    """Affine of the model grid (voxel -> the volume's RAS+ mm): model voxel i sits at
    source voxel (i + 0.5) * n_src / n_model - 0.5 along each axis."""
    s = np.asarray(volume.shape, dtype=np.float64) / np.asarray(shape, dtype=np.float64)
    m = np.eye(4)
    m[:3, :3] = np.diag(s)
    m[:3, 3] = 0.5 * s - 0.5
    return volume.affine @ m


def normalise(arr: np.ndarray, spec: dict) -> np.ndarray:
    """Intensity normalisation named by the card: hu_window, minmax or scale."""
    arr = np.asarray(arr, dtype=np.float32)
    kind = spec.get("type", "minmax")
    if kind == "hu_window":
        lo, hi = float(spec["low"]), float(spec["high"])
        out = (arr - lo) / (hi - lo)
    elif kind == "scale":
        out = arr / float(spec.get("divisor", 255.0))
    elif kind == "minmax":
        finite = arr[np.isfinite(arr)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        out = (arr - lo) / (hi - lo if hi > lo else 1.0)
    else:
        raise ValueError(f"unknown preprocessing type {kind!r}")
    out = np.nan_to_num(out, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(out, 0.0, 1.0, out=out)


def preprocess_array(data: np.ndarray, shape, spec: dict) -> np.ndarray:
    """A raw 3-D array to the model's (D, H, W, 1) float32 input."""
    # normalise after the zoom: it touches the small grid only, and a linear zoom commutes
    # with the linear hu_window/scale maps (up to the clipping at the window's edges)
    return normalise(resample_to_grid(data, shape), spec)[..., None]


def preprocess_volume(volume: Volume, shape, spec: dict) -> np.ndarray:
    return preprocess_array(volume.data, shape, spec)
