"""Preprocessing from a model card: one function for training, prediction and Grad-CAM.

Resampling is by shape, not in physical space: the volume's whole array is zoomed onto
the model's grid (linearly, the samples of scipy.ndimage.zoom with grid_mode=True: voxel
*edges* of the two grids coincide). The bundled models are trained on MedMNIST cubes (already resampled to a fixed
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
from vol3d_gui.ml.trilinear import zoom_window

# what a card's "preprocessing" may name (ml.bundle refuses others when it loads the card)
PREPROCESSING_TYPES = frozenset({"hu_window", "scale", "minmax", "mask_depth"})


def resample_to_grid(data: np.ndarray, shape) -> np.ndarray:
    """Trilinear zoom of a 3-D array onto ``shape`` (float32), voxel edges aligned: the samples
    of scipy.ndimage.zoom(order=1, grid_mode=True, mode="nearest")."""
    return zoom_window(data, shape)


def grid_affine(volume: Volume, shape) -> np.ndarray:
    """Affine of the model grid (voxel -> the volume's RAS+ mm): model voxel i sits at
    source voxel (i + 0.5) * n_src / n_model - 0.5 along each axis."""
    s = np.asarray(volume.shape, dtype=np.float64) / np.asarray(shape, dtype=np.float64)
    m = np.eye(4)
    m[:3, :3] = np.diag(s)
    m[:3, 3] = 0.5 * s - 0.5
    return volume.affine @ m


def normalise(arr: np.ndarray, spec: dict, *, finite: bool = False) -> np.ndarray:
    """Intensity normalisation named by the card: hu_window, minmax or scale. ``finite``: the
    caller knows there is no NaN or inf (resampled from an integer scan), which saves passes."""
    arr = np.asarray(arr)
    maybe_nan = not (finite or np.issubdtype(arr.dtype, np.integer))
    out = np.array(arr, dtype=np.float32)
    window = _linear_map(spec)
    if window is None:
        return _minmax_inplace(out, maybe_nan)
    lo, scale = window
    np.subtract(out, np.float32(lo), out=out)
    np.divide(out, np.float32(scale), out=out)
    return _finish(out, maybe_nan)


def _linear_map(spec: dict) -> tuple[float, float] | None:
    """(lo, scale) of the specs that map x -> (x - lo) / scale; None for minmax."""
    kind = spec.get("type", "minmax")
    if kind == "mask_depth":
        raise ValueError("mask_depth is not an intensity map: it needs the whole grid (preprocess_array)")
    if kind == "hu_window":
        return float(spec["low"]), float(spec["high"]) - float(spec["low"])
    if kind == "scale":
        return 0.0, float(spec.get("divisor", 255.0))
    if kind == "minmax":
        return None
    raise ValueError(f"unknown preprocessing type {kind!r}")


def _minmax_inplace(out: np.ndarray, maybe_nan: bool) -> np.ndarray:
    """(x - min) / (max - min) over the finite values: the same for any positive multiple of
    x, so the resampling's gain does not matter here."""
    finite = out[np.isfinite(out)] if maybe_nan else out
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    np.subtract(out, np.float32(lo), out=out)
    np.divide(out, np.float32(hi - lo if hi > lo else 1.0), out=out)
    return _finish(out, maybe_nan)


def _finish(out: np.ndarray, maybe_nan: bool) -> np.ndarray:
    if maybe_nan and not np.isfinite(out).all():  # float input: NaN and inf have a place too
        np.nan_to_num(out, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(out, 0.0, 1.0, out=out)


def preprocess_array(data: np.ndarray, shape, spec: dict) -> np.ndarray:
    """A raw 3-D array to the model's (D, H, W, 1) float32 input."""
    # the window runs inside the resampling, on the small grid: a linear zoom commutes with the
    # linear hu_window/scale maps; the clip to [0, 1] comes last, as it always has (clipping
    # first would differ wherever a sample mixes voxels from both sides of the window)
    data = np.asarray(data)
    if spec.get("type") == "mask_depth":
        return mask_depth(data, shape, spec)[..., None]
    window = _linear_map(spec)
    if window is None:
        return _minmax_inplace(zoom_window(data, shape), not np.issubdtype(data.dtype, np.integer))[..., None]
    lo, scale = window
    return zoom_window(data, shape, gain=1.0 / scale, offset=lo / scale, clip=True)[..., None]


def mask_depth(data: np.ndarray, shape, spec: dict) -> np.ndarray:
    """A binary mask (a segmentation, as AdrenalMNIST3D's cubes are) as each voxel's Euclidean
    distance to the mask's edge, on the model grid: the mask is resampled onto the grid (its
    share of each grid voxel), taken where it covers at least half, and the distance transform
    (in grid voxels, 0 outside) divided by ``spec["scale"]`` and clipped to [0, 1]. A network
    sees the thickness of every part of the shape in one voxel's value, where from the mask it
    would have to find it over a receptive field. The transform runs on the small grid, so its
    cost does not grow with the scan (a 48^3 grid: 15-30 ms, in scipy's code, which holds the
    GIL: no shipped bundle uses this)."""
    share = zoom_window(data, shape, gain=1.0 / float(spec.get("divisor", 255.0)))
    depth = ndimage.distance_transform_edt(share >= 0.5).astype(np.float32)
    np.multiply(depth, np.float32(1.0 / float(spec["scale"])), out=depth)
    return np.clip(depth, 0.0, 1.0, out=depth)


def preprocess_volume(volume: Volume, shape, spec: dict) -> np.ndarray:
    return preprocess_array(volume.data, shape, spec)
