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


def _linear_taps(n_src: int, n_out: int):
    """Source taps and weights of a linear zoom of one axis, as ndimage.zoom(order=1,
    grid_mode=True, mode="nearest") places them: output voxel i samples the source at
    (i + 0.5) * n_src / n_out - 0.5, clamped to the edge voxels."""
    c = np.clip((np.arange(n_out) + 0.5) * (n_src / n_out) - 0.5, 0.0, n_src - 1.0)
    i0 = np.minimum(np.floor(c).astype(np.intp), max(n_src - 2, 0))
    i1 = np.minimum(i0 + 1, n_src - 1)
    return i0, i1, (c - i0).astype(np.float32)


def _pick(arr: np.ndarray, idx: np.ndarray, axis: int) -> np.ndarray:
    """arr's planes ``idx`` along ``axis``: a strided view when they are evenly spaced (an
    integer zoom factor), else a gathered copy."""
    step = int(idx[1] - idx[0]) if len(idx) > 1 else 1
    if step > 0 and np.array_equal(idx, idx[0] + step * np.arange(len(idx))):
        sl = [slice(None)] * arr.ndim
        sl[axis] = slice(int(idx[0]), int(idx[-1]) + 1, step)
        return arr[tuple(sl)]
    return np.take(arr, idx, axis=axis)


def _lerp_axis(src: np.ndarray, ax: int, n_out: int, into: np.ndarray) -> None:
    """``into`` = src linearly zoomed to ``n_out`` along ``ax`` (all other axes as they are)."""
    i0, i1, w = _linear_taps(src.shape[ax], n_out)
    a = _pick(src, i0, ax)
    np.subtract(_pick(src, i1, ax), a, out=into, dtype=np.float32)
    into *= w.reshape([-1 if k == ax else 1 for k in range(3)])
    into += a


def _axis_order(src_shape, shape) -> list[int]:
    """The axes that change, the one that shrinks most first (the next steps work on less)."""
    ratios = [t / n for t, n in zip(shape, src_shape)]
    return [int(k) for k in np.argsort(ratios, kind="stable") if src_shape[k] != shape[k]]


def separable_zoom(data: np.ndarray, shape) -> np.ndarray:
    """ndimage.zoom(order=1, grid_mode=True, mode="nearest")'s samples, one axis at a time:
    two planes (strided views for integer factors) and a lerp per axis. A linear zoom is a
    product of 1-D interpolations, so this is exact up to float32 rounding (~1e-7 relative)."""
    out = data
    for ax in _axis_order(data.shape, shape):
        src = out
        out = np.empty([shape[ax] if k == ax else n for k, n in enumerate(src.shape)], np.float32)
        _lerp_axis(src, ax, shape[ax], out)
    return out.astype(np.float32, copy=False)


def _separable_cost(src_shape, shape) -> int:
    """Voxels the separable zoom writes (its steps are bound by memory traffic)."""
    cur, total = list(src_shape), 0
    for ax in _axis_order(src_shape, shape):
        cur[ax] = shape[ax]
        total += int(np.prod(cur))
    return total


# ndimage.zoom costs ~35 ns an output voxel (8 taps through its spline code), the separable
# steps ~3 ns a voxel written (bench: 128x128x96 -> 64^3 1.3 ms vs 8.1 ms; 512x512x300 -> 48^3
# 26 ms vs 4.9 ms, where the first step alone writes 7 million voxels)
_ZOOM_OVER_SEPARABLE = 10


def resample_to_grid(data: np.ndarray, shape) -> np.ndarray:
    """Trilinear zoom of a 3-D array onto ``shape`` (float32), voxel edges aligned: the samples
    of scipy.ndimage.zoom(order=1, grid_mode=True, mode="nearest"), by whichever of zoom and
    the separable steps writes less for this pair of shapes."""
    shape = tuple(int(s) for s in shape)
    arr = np.asarray(data)
    if arr.ndim != 3:
        raise ValueError(f"expected a 3-D array, got shape {arr.shape}")
    if arr.shape == shape:
        return arr.astype(np.float32, copy=False)
    if _separable_cost(arr.shape, shape) < _ZOOM_OVER_SEPARABLE * int(np.prod(shape)):
        return separable_zoom(arr, shape)
    # zoom reads the native dtype (int16 CT, uint8) and writes float32: no float copy of a
    # 512x512x300 scan, and its cost is proportional to the small model grid
    out = ndimage.zoom(arr, [t / s for t, s in zip(shape, arr.shape)], output=np.float32, order=1,
                       mode="nearest", grid_mode=True)
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


def normalise(arr: np.ndarray, spec: dict, *, finite: bool = False) -> np.ndarray:
    """Intensity normalisation named by the card: hu_window, minmax or scale. ``finite``: the
    caller knows there is no NaN or inf (resampled from an integer scan), which saves passes."""
    arr = np.asarray(arr)
    maybe_nan = not (finite or np.issubdtype(arr.dtype, np.integer))
    arr = arr.astype(np.float32, copy=False)
    kind = spec.get("type", "minmax")
    if kind == "hu_window":
        lo, scale = float(spec["low"]), float(spec["high"]) - float(spec["low"])
    elif kind == "scale":
        lo, scale = 0.0, float(spec.get("divisor", 255.0))
    elif kind == "minmax":
        finite = arr[np.isfinite(arr)] if maybe_nan else arr
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        scale = hi - lo if hi > lo else 1.0
    else:
        raise ValueError(f"unknown preprocessing type {kind!r}")
    out = np.subtract(arr, np.float32(lo), dtype=np.float32)
    out /= np.float32(scale)
    if maybe_nan and not np.isfinite(out).all():  # float input: NaN and inf have a place too
        np.nan_to_num(out, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(out, 0.0, 1.0, out=out)


def preprocess_array(data: np.ndarray, shape, spec: dict) -> np.ndarray:
    """A raw 3-D array to the model's (D, H, W, 1) float32 input."""
    # normalise after the zoom: it touches the small grid only, and a linear zoom commutes
    # with the linear hu_window/scale maps (up to the clipping at the window's edges)
    finite = np.issubdtype(np.asarray(data).dtype, np.integer)
    return normalise(resample_to_grid(data, shape), spec, finite=finite)[..., None]


def preprocess_volume(volume: Volume, shape, spec: dict) -> np.ndarray:
    return preprocess_array(volume.data, shape, spec)
