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
from vol3d_gui.ml.linear_zoom import copy_tiled, memory_order, steps_cost, zoom_steps

# ndimage.zoom costs 60-80 ns an output voxel (8 taps through its spline code), the separable
# steps 1.4-3.5 ns a voxel they write (load ~5.8: 256x256x160 -> 48^3 steps 3.3 ms vs zoom 7.0 ms;
# 128x128x96 x-fastest -> 48^3 2.2 vs 5.7 ms; 512x512x300 -> 48^3 29 ms vs 9.0 ms, where the
# first step alone writes 7 million voxels)
_ZOOM_OVER_SEPARABLE = 20


def resample_to_grid(data: np.ndarray, shape) -> np.ndarray:
    """Trilinear zoom of a 3-D array onto ``shape`` (float32), voxel edges aligned: the samples
    of scipy.ndimage.zoom(order=1, grid_mode=True, mode="nearest"), by whichever of zoom and
    the separable steps writes less for this pair of shapes."""
    out, gain = _to_grid(data, shape)
    if gain != 1.0:
        np.multiply(out, np.float32(gain), out=out)
    return out


def _to_grid(data, shape, finite: bool = False, scale: float = 1.0, finish=None) -> tuple[np.ndarray, float]:
    """(arr, gain), a new C-contiguous float32 arr: arr * gain is ``scale`` times
    resample_to_grid's answer (the separable steps fold the factors where a product is made
    anyway and leave the rest to the caller's next pass). ``finish(arr, gain)``: that next pass,
    an elementwise map that settles the gain; given, it has run on arr (the separable steps run
    it part by part, while each part is in cache) and the gain returned is 1."""
    shape = tuple(int(s) for s in shape)
    arr = np.asarray(data)
    if arr.ndim != 3:
        raise ValueError(f"expected a 3-D array, got shape {arr.shape}")
    if arr.shape == shape:
        return _finished(np.array(arr, dtype=np.float32, order="C"), scale, finish)
    if steps_cost(arr, shape) < _ZOOM_OVER_SEPARABLE * int(np.prod(shape)):
        return zoom_steps(arr, shape, finite=finite, scale=scale, finish=finish)
    # zoom reads the native dtype (int16 CT, uint8) and writes float32: no float copy of a
    # 512x512x300 scan, and its cost is proportional to the small model grid. It runs on the
    # C-ordered view of the array (an x-fastest scan from the readers: 54 ms -> 13 ms for
    # 512x512x300 -> 48^3) and the small result changes layout afterwards.
    order = memory_order(arr)
    view, target = arr.transpose(order), tuple(shape[k] for k in order)
    out = ndimage.zoom(view, [t / s for t, s in zip(target, view.shape)], output=np.float32, order=1,
                       mode="nearest", grid_mode=True)
    if out.shape != target:  # zoom rounds; never let a one-voxel difference through
        out = out[: target[0], : target[1], : target[2]]
        out = np.pad(out, [(0, t - s) for t, s in zip(target, out.shape)], mode="edge")
    if order != (0, 1, 2):
        result = np.empty(shape, np.float32)
        copy_tiled(result, out.transpose(np.argsort(order)))
        out = result
    return _finished(out, scale, finish)


def _finished(out: np.ndarray, gain: float, finish) -> tuple[np.ndarray, float]:
    if finish is None:
        return out, gain
    finish(out, gain)
    return out, 1.0


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
    # normalise after the zoom: it touches the small grid only, and a linear zoom commutes
    # with the linear hu_window/scale maps, whose 1 / scale rides on the resampling's last
    # product; the clip to [0, 1] comes last, as it always has (clipping first would differ
    # wherever a sample mixes voxels from both sides of the window)
    data = np.asarray(data)
    integer = np.issubdtype(data.dtype, np.integer)
    window = _linear_map(spec)
    if window is None:
        return _minmax_inplace(_to_grid(data, shape, finite=integer)[0], not integer)[..., None]
    lo, scale = window
    offset = np.float32(lo / scale)

    def finish(part: np.ndarray, gain: float) -> None:  # x / scale - lo / scale, then the clip
        if gain != 1.0:
            np.multiply(part, np.float32(gain), out=part)
        np.subtract(part, offset, out=part)
        _finish(part, not integer)

    return _to_grid(data, shape, finite=integer, scale=1.0 / scale, finish=finish)[0][..., None]


def preprocess_volume(volume: Volume, shape, spec: dict) -> np.ndarray:
    return preprocess_array(volume.data, shape, spec)
