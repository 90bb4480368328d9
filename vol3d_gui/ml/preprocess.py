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


def resample_to_grid(data: np.ndarray, shape) -> np.ndarray:
    """Trilinear zoom of a 3-D array onto ``shape`` (float32), voxel edges aligned.

    The same samples as scipy.ndimage.zoom(order=1, grid_mode=True, mode="nearest"), computed
    separably: one axis at a time, two gathered planes and a lerp, the axis that shrinks most
    first. A linear zoom is a product of 1-D interpolations, so this is exact up to float32
    rounding (~1e-7 relative), and it costs 3-5x less than zoom's general spline path,
    which is most of what a predict spends outside the network."""
    shape = tuple(int(s) for s in shape)
    out = np.asarray(data)
    if out.ndim != 3:
        raise ValueError(f"expected a 3-D array, got shape {out.shape}")
    for ax in np.argsort([t / s for t, s in zip(shape, out.shape)], kind="stable"):
        n_src, n_out = out.shape[ax], shape[ax]
        if n_src == n_out:
            continue
        i0, i1, w = _linear_taps(n_src, n_out)
        a, b = _pick(out, i0, ax), _pick(out, i1, ax)
        step = np.subtract(b, a, dtype=np.float32)
        step *= w.reshape([-1 if k == ax else 1 for k in range(3)])
        step += a
        out = step
    return out.astype(np.float32, copy=False)


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
