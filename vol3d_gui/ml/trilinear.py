"""scipy.ndimage.zoom(order=1, grid_mode=True, mode="nearest")'s samples, with the intensity
window, in one compiled pass (numba) that reads the scan once and writes the model grid once.

Why compiled: a trilinear zoom is eight taps and seven lerps a voxel, which numpy can only run
as whole-array passes with a float intermediate between them, and ndimage.zoom runs through
its spline code (60-80 ns a voxel). Here, for each output row, the four source rows it reads are
mixed into one float row (a vectorised loop over contiguous memory), the row is interpolated
onto the output, windowed and clipped, and written. 128x128x96 int16 -> 64^3 with the window,
two threads: 0.53 ms C-ordered, 0.88 ms x-fastest, against 1.16 and 1.69 ms for the numpy steps
it replaced (bench predict; stop 26's machine).

- The loops run in the scan's own memory order (a scan from the readers is x-fastest, an
  F-ordered array): the source rows are always read along contiguous memory. Only the writes
  follow the output's layout; when its contiguous axis is the outer loop's, a block of 16
  outer rows is gathered first and written across, a cache line at a time.
- A second thread takes half of the outer axis; the kernel releases the GIL. Each half is the
  same arithmetic on its own part of the output, so the answer does not depend on the split.
- A tap of weight zero is left out, so a NaN or inf voxel reaches only the samples that
  interpolate it.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os

import numba
import numpy as np

# output voxels under which handing half the grid to the second thread costs more than it
# saves (a hand-over is ~30-50 us)
SPLIT_MIN = 1 << 16
# outer rows gathered before they are written across the output's contiguous axis
_BLOCK = 16
# the dtypes the kernel reads as they are; others (bool, float16, big-endian) are converted
_NATIVE = frozenset(np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                                           np.int64, np.uint64, np.float32, np.float64))


def _second_thread() -> concurrent.futures.ThreadPoolExecutor | None:
    """The second thread (started at its first task); None on one core."""
    if len(os.sched_getaffinity(0)) < 2:
        return None
    return concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="vol3d-zoom-half")


def _after_fork_in_child() -> None:
    # a forked child has no copy of the parent's thread, but its executor believes it has one
    # idle: a half handed to it would never run and the resampling would wait forever
    global _HALF
    _HALF = _second_thread()


_HALF = _second_thread()
os.register_at_fork(after_in_child=_after_fork_in_child)


@functools.lru_cache(maxsize=256)
def linear_taps(n_src: int, n_out: int):
    """Source taps and weights of a linear zoom of one axis, as ndimage.zoom(order=1,
    grid_mode=True, mode="nearest") places them: output voxel i samples the source at
    (i + 0.5) * n_src / n_out - 0.5, clamped to the edge voxels."""
    c = np.clip((np.arange(n_out) + 0.5) * (n_src / n_out) - 0.5, 0.0, n_src - 1.0)
    i0 = np.minimum(np.floor(c).astype(np.intp), max(n_src - 2, 0))
    i1 = np.minimum(i0 + 1, n_src - 1)
    w = (c - i0).astype(np.float32)
    for a in (i0, i1, w):
        a.flags.writeable = False
    return i0, i1, w


@functools.lru_cache(maxsize=256)
def _kernel_taps(n_src: int, n_out: int):
    """linear_taps with a weight of 1 (the clamped last voxel) as the next tap at weight 0:
    the same sample, and the kernel then needs only weight 0's test."""
    i0, i1, w = linear_taps(n_src, n_out)
    one = w == 1
    i0, w = np.where(one, i1, i0), np.where(one, np.float32(0), w)
    for a in (i0, w):
        a.flags.writeable = False
    return i0, i1, w


def memory_order(arr: np.ndarray) -> tuple[int, ...]:
    """Axes from the slowest-varying in memory to the fastest (C order: 0, 1, 2; F: 2, 1, 0)."""
    return tuple(sorted(range(arr.ndim), key=lambda k: -abs(arr.strides[k])))  # stable


@numba.njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _lerp(a, b, w):
    # the tap of weight 0 is left out (see _kernel_taps for weight 1): an inf there would make
    # 0 * inf = NaN; and not a + w * (b - a), where an inf tap gives inf - inf = NaN
    if w == 0:
        return a
    return (np.float32(1.0) - w) * a + w * b


@numba.njit(nogil=True, cache=True, boundscheck=False)
def _mixed_row(v, pa, qa, wa, pb, qb, wb, t):
    """t = the four source rows v[pa|qa, pb|qb, :] mixed bilinearly (float32)."""
    r00, r01, r10, r11 = v[pa, pb], v[pa, qb], v[qa, pb], v[qa, qb]
    for c in range(t.shape[0]):
        x0 = _lerp(np.float32(r00[c]), np.float32(r01[c]), wb)
        x1 = _lerp(np.float32(r10[c]), np.float32(r11[c]), wb)
        t[c] = _lerp(x0, x1, wa)


@numba.njit(nogil=True, cache=True, boundscheck=False)
def _sample(t, c0, c1, cw, k, gain, offset, clip):
    """Output sample k of a mixed row, times ``gain`` minus ``offset``; clipped to [0, 1] (NaN
    to 0) when ``clip``."""
    x = _lerp(t[c0[k]], t[c1[k]], cw[k]) * gain - offset
    if clip:
        if x != x:
            return np.float32(0.0)
        return min(max(x, np.float32(0.0)), np.float32(1.0))
    return x


@numba.njit(nogil=True, cache=True, boundscheck=False)
def _zoom_rows(v, o, a0, a1, aw, b0, b1, bw, c0, c1, cw, gain, offset, clip, across, i_lo, i_hi):
    """o[i_lo:i_hi] from v, both in v's memory order (o may be strided). ``across``: o's
    contiguous axis is its first, so rows are gathered in blocks and written across."""
    nj, nk = o.shape[1], o.shape[2]
    t = np.empty(v.shape[2], np.float32)
    if not across:
        for i in range(i_lo, i_hi):
            for j in range(nj):
                _mixed_row(v, a0[i], a1[i], aw[i], b0[j], b1[j], bw[j], t)
                for k in range(nk):
                    o[i, j, k] = _sample(t, c0, c1, cw, k, gain, offset, clip)
        return
    buf = np.empty((nk, _BLOCK), np.float32)
    for ib in range(i_lo, i_hi, _BLOCK):
        ie = min(ib + _BLOCK, i_hi)
        for j in range(nj):
            for i in range(ib, ie):
                _mixed_row(v, a0[i], a1[i], aw[i], b0[j], b1[j], bw[j], t)
                for k in range(nk):
                    buf[k, i - ib] = _sample(t, c0, c1, cw, k, gain, offset, clip)
            for k in range(nk):
                for i in range(ib, ie):
                    o[i, j, k] = buf[k, i - ib]


def zoom_window(data: np.ndarray, shape, *, gain: float = 1.0, offset: float = 0.0,
                clip: bool = False) -> np.ndarray:
    """ndimage.zoom(order=1, grid_mode=True, mode="nearest")'s samples of the 3-D ``data`` on
    ``shape``, times ``gain`` minus ``offset`` and, with ``clip``, clipped to [0, 1] with NaN
    as 0: a new C-contiguous float32 array (float32 arithmetic, ~1e-7 relative)."""
    shape = tuple(int(s) for s in shape)
    arr = np.asarray(data)
    if arr.ndim != 3 or len(shape) != 3:
        raise ValueError(f"expected a 3-D array and a 3-D grid, got {arr.shape} -> {shape}")
    if min(shape) < 1 or arr.size == 0:
        raise ValueError(f"cannot resample {arr.shape} onto {shape}")
    if arr.dtype not in _NATIVE:  # a big-endian file's values in their own type; bool, float16 as float32
        native = arr.dtype.newbyteorder("=")
        arr = arr.astype(native if native in _NATIVE else np.float32)
    order = memory_order(arr)
    view = arr.transpose(order)
    target = tuple(shape[k] for k in order)
    out = np.empty(shape, np.float32)
    o = out.transpose(order)
    taps = [a for n, m in zip(view.shape, target) for a in _kernel_taps(n, m)]
    across = bool(np.argmin(np.abs(o.strides)) == 0) and target[0] > 1
    args = (*taps, np.float32(gain), np.float32(offset), bool(clip), across)
    n = target[0]
    h = n // 2
    if _HALF is not None and out.size >= SPLIT_MIN and h > 0:
        future = _HALF.submit(_zoom_rows, view, o, *args, 0, h)
        try:
            _zoom_rows(view, o, *args, h, n)
        finally:
            future.result()  # never leave while the other half still writes the output
    else:
        _zoom_rows(view, o, *args, 0, n)
    return out


def warm_up() -> None:
    """Compile the kernel (or load it from numba's on-disk cache) for the scans the readers
    give: int16, uint8 and float32, C-ordered and x-fastest. The first compile of all six
    takes about 7 s, a load from the cache about 1 s with numba's import; done in the
    background at start-up, the first prediction does not wait for it."""
    for dtype in (np.int16, np.uint8, np.float32):
        small = np.zeros((4, 4, 4), dtype)
        for data in (small, np.asfortranarray(small)):
            zoom_window(data, (2, 2, 2), gain=1.0, offset=0.0, clip=True)
