"""Everything a case needs before it can be shown, computed off the GUI thread.

Reading, the opening window (from a sample), the 3-D view's texture (block-mean downsampled
when the volume exceeds the texture budget, normalised to 16 bits, in GL's x-fastest order)
and the content hash the labels record. Each step checks a cancel flag; the GUI thread only
uploads and draws what this returns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from vol3d_gui.core.cooperate import ReadCancelled, cancellable
from vol3d_gui.core.volume import Volume
from vol3d_gui.core.windowing import Window
from vol3d_gui.viewer.windows import initial_window

# Bytes of 16-bit texture the 3-D view may take before it downsamples (slices stay full size).
TEXTURE_BUDGET = 64 << 20
DEFAULT_MAX_3D_TEXTURE = 2048


class Cancelled(Exception):
    """The reader asked to stop; nothing was changed."""


@dataclass
class DisplayGrid:
    """The 3-D view's texture: uint16 (z, y, x) C-order, ``affine`` of its voxel grid,
    ``value_range`` the volume values that map to 0 and 65535, ``factor`` the downsampling."""

    texture: np.ndarray
    affine: np.ndarray
    value_range: tuple[float, float]
    factor: int

    @property
    def shape(self) -> tuple[int, int, int]:
        z, y, x = self.texture.shape
        return x, y, z


def grid_factor(shape, max_size: int = DEFAULT_MAX_3D_TEXTURE, budget: int = TEXTURE_BUDGET) -> int:
    """The smallest integer downsampling factor that fits the texture size and budget."""
    shape = np.asarray(shape)
    f = 1
    while np.any(np.ceil(shape / f) > max_size) or np.prod(np.ceil(shape / f)) * 2 > budget:
        f += 1
    return f


def display_grid(volume: Volume, max_size: int = DEFAULT_MAX_3D_TEXTURE,
                 budget: int = TEXTURE_BUDGET) -> DisplayGrid:
    shape = np.asarray(volume.shape)
    f = grid_factor(shape, max_size, budget)
    data = volume.data
    affine = volume.affine
    if f > 1:
        crop = (shape // f) * f
        d = data[: crop[0], : crop[1], : crop[2]].astype(np.float32)
        data = d.reshape(crop[0] // f, f, crop[1] // f, f, crop[2] // f, f).mean(axis=(1, 3, 5))
        m = np.eye(4)
        m[:3, :3] *= f
        m[:3, 3] = (f - 1) / 2.0
        affine = volume.affine @ m
    data = np.asarray(data)
    if data.dtype.kind == "f":
        finite = data[np.isfinite(data)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    else:
        lo, hi = float(data.min()), float(data.max())
    if not hi > lo:  # a constant image; lo + 1.0 == lo beyond 2**53 (a uint64 near 2**63)
        hi = lo + max(1.0, abs(lo) * 1e-6)
    return DisplayGrid(to_u16_texture(data, lo, hi), affine, (lo, hi), f)


def to_u16_texture(data: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Values mapped linearly from [lo, hi] to [0, 65535] (NaN -> 0), x fastest (GL's order)."""
    # float32 unless the values are beyond its range (a float64 image of +-1e308 would become
    # inf and then NaN): then float64, on halves, because hi - lo itself overflows float64
    wide = max(abs(lo), abs(hi)) > 1e37
    ftype = np.float64 if wide else np.float32
    half = 0.5 if wide else 1.0
    scale = ftype(65535.0 / (hi * half - lo * half))
    out = np.empty(data.shape[::-1], np.uint16)
    for k in range(data.shape[2]):  # one slab at a time: no full-size float copy
        slab = data[:, :, k].astype(ftype)
        if wide:
            slab *= half
        slab -= ftype(lo * half)
        slab *= scale
        np.clip(slab, 0, 65535, out=slab)
        np.nan_to_num(slab, copy=False, nan=0.0)
        out[k] = slab.T
    return out


@dataclass
class PreparedCase:
    volume: Volume
    window: Window
    item: object = None
    mask: Volume | None = None
    grid: DisplayGrid | None = None
    timings: dict = field(default_factory=dict)


def prepare_case(load: Callable[[], Volume], *, item=None, load_mask: Callable | None = None,
                 max_texture: int | None = DEFAULT_MAX_3D_TEXTURE,
                 cancel: threading.Event | None = None,
                 progress: Callable[[str], None] | None = None) -> PreparedCase:
    """Read and prepare one case. ``max_texture`` None: no 3-D view to prepare for."""
    import time

    timings = {}

    def step(name: str, fn):
        if cancel is not None and cancel.is_set():
            raise Cancelled(name)
        if progress is not None:
            progress(name)
        t0 = time.perf_counter()
        try:
            with cancellable(cancel):
                out = fn()
        except ReadCancelled:
            raise Cancelled(name) from None
        timings[name] = time.perf_counter() - t0
        return out

    volume = step("reading", load)
    mask = step("reading the mask", load_mask) if load_mask is not None else None
    window = step("choosing the window", lambda: initial_window(volume))
    grid = (step("preparing the 3-D view", lambda: display_grid(volume, max_texture))
            if max_texture else None)
    step("hashing the image", volume.content_hash)  # cached on the volume: labels need it
    if cancel is not None and cancel.is_set():
        raise Cancelled("done")
    return PreparedCase(volume, window, item, mask, grid, timings)

