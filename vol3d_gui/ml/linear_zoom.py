"""scipy.ndimage.zoom(order=1, grid_mode=True, mode="nearest")'s samples, one axis at a time.

A linear zoom is a product of 1-D interpolations, so it can run as one lerp per axis; each step
here is a few whole-array numpy operations (no Python loop over voxels). What makes it fast:

- For a shrinking axis the taps repeat: n_src / n_out = p / q in lowest terms, and output voxel
  k*q + j reads source voxels k*p + a_j and k*p + a_j + 1 with the same weight for every k. So
  each of the q phases is one strided view of the source (no gather copy), and the common
  factors need fewer operations still: 1/2 is (a + b) / 2, 1/3 a plain pick.
- Steps run in the array's own memory order (a scan from the readers is x-fastest, an F-ordered
  array): every step reads and writes rows that are contiguous in memory. Only the small result
  changes layout, by a tiled transposing copy (numpy's plain transposing copy walks the source
  a page per element).
- The axis that shrinks most goes first, so the later steps work on less.
"""

from __future__ import annotations

import functools
import math

import numpy as np

# phases of a periodic step, each a few numpy calls on 1/q of the output; beyond this, a gather
MAX_PERIOD = 8
# tile edge of the transposing copy: 8 float32 = half a cache line, 64 calls for a 64^3 grid
_TILE = 8


@functools.lru_cache(maxsize=256)
def linear_taps(n_src: int, n_out: int):
    """Source taps and weights of a linear zoom of one axis, as ndimage.zoom(order=1,
    grid_mode=True, mode="nearest") places them: output voxel i samples the source at
    (i + 0.5) * n_src / n_out - 0.5, clamped to the edge voxels."""
    c = np.clip((np.arange(n_out) + 0.5) * (n_src / n_out) - 0.5, 0.0, n_src - 1.0)
    i0 = np.minimum(np.floor(c).astype(np.intp), max(n_src - 2, 0))
    i1 = np.minimum(i0 + 1, n_src - 1)
    return i0, i1, (c - i0).astype(np.float32)


@functools.lru_cache(maxsize=256)
def periodic_taps(n_src: int, n_out: int) -> tuple[int, int, tuple[tuple[int, float], ...]] | None:
    """(p, q, ((a_j, w_j) for j < q)) when the axis shrinks with a period of at most MAX_PERIOD
    outputs: output k*q + j = (1 - w_j) * src[k*p + a_j] + w_j * src[k*p + a_j + 1]. Exact
    rational arithmetic: sample (2j + 1) p / 2q - 1/2 (a_j + 1 < p whenever p > q, so every phase
    stays inside its block of p source voxels)."""
    if n_out >= n_src:
        return None
    g = math.gcd(n_src, n_out)
    p, q = n_src // g, n_out // g
    if q > MAX_PERIOD:
        return None
    taps = []
    for j in range(q):
        num, den = (2 * j + 1) * p - q, 2 * q
        taps.append((num // den, (num % den) / den))
    return p, q, tuple(taps)


def _along(ax: int, sl) -> tuple:
    return (slice(None),) * ax + (sl,)


def _lerp(a: np.ndarray, b: np.ndarray | None, w, out: np.ndarray) -> None:
    """out = a + w * (b - a), float32, for a scalar w (0 takes one pass) or an array that
    broadcasts along the axis."""
    if b is None or (np.isscalar(w) and w == 0.0):
        np.copyto(out, a, casting="unsafe")
        return
    np.subtract(b, a, out=out, dtype=np.float32, casting="unsafe")
    np.multiply(out, np.float32(w) if np.isscalar(w) else w, out=out)
    np.add(out, a, out=out, casting="unsafe")


def box_step(src: np.ndarray, taps: dict[int, tuple[int, int, float]], into: np.ndarray) -> float:
    """Several axes that shrink by whole factors, in one pass per tap: axis ``ax`` with
    (p, a, w) keeps source voxels k*p + a (w == 0) or the sum of k*p + a and k*p + a + 1
    (w == 1/2). Returns the factor the sums still owe (1/2 per summed axis): it is applied
    once, at the end, instead of a multiplication pass here."""
    views = [src]
    for ax, (p, a, w) in taps.items():
        sl = [slice(a, None, p)] + ([slice(a + 1, None, p)] if w else [])
        views = [v[_along(ax, s)] for v in views for s in sl]
    if len(views) == 1:
        np.copyto(into, views[0], casting="unsafe")
    else:
        np.add(views[0], views[1], out=into, dtype=np.float32, casting="unsafe")
    for v in views[2:]:
        np.add(into, v, out=into, casting="unsafe")
    return 0.5 ** sum(1 for _, _, w in taps.values() if w)


def matmul_step(src: np.ndarray, p: int, q: int, taps, gain: float, into: np.ndarray) -> None:
    """A periodic step along the last (contiguous) axis of a C-contiguous float32 array as one
    (N, p) @ (p, q) product: BLAS reads each block of p voxels once (the strided lerps read
    every phase's taps apart). ``gain`` is folded into the weights. Only for finite data: a
    zero weight times inf or NaN would spread them to the neighbours."""
    w = np.zeros((p, q), np.float32)
    for j, (a, t) in enumerate(taps):
        w[a, j] += (1.0 - t) * gain
        if t:
            w[a + 1, j] += t * gain
    np.matmul(src.reshape(-1, p), w, out=into.reshape(-1, q))


def zoom_axis(src: np.ndarray, ax: int, n_out: int, into: np.ndarray) -> None:
    """``into`` = src linearly zoomed to ``n_out`` along ``ax`` (all other axes as they are)."""
    n_src = src.shape[ax]
    per = periodic_taps(n_src, n_out)
    if per is not None:
        p, q, taps = per
        for j, (a, w) in enumerate(taps):
            b = src[_along(ax, slice(a + 1, None, p))] if w else None
            _lerp(src[_along(ax, slice(a, None, p))], b, w, into[_along(ax, slice(j, None, q))])
        return
    i0, i1, w = linear_taps(n_src, n_out)
    _lerp(_pick(src, i0, ax), _pick(src, i1, ax), w.reshape([-1 if k == ax else 1 for k in range(src.ndim)]),
          into)


def _pick(arr: np.ndarray, idx: np.ndarray, axis: int) -> np.ndarray:
    """arr's planes ``idx`` along ``axis``: a strided view when they are evenly spaced (an
    integer zoom factor), else a gathered copy."""
    step = int(idx[1] - idx[0]) if len(idx) > 1 else 1
    if step > 0 and np.array_equal(idx, idx[0] + step * np.arange(len(idx))):
        return arr[_along(axis, slice(int(idx[0]), int(idx[-1]) + 1, step))]
    return np.take(arr, idx, axis=axis)


def axis_order(src_shape, shape) -> list[int]:
    """The axes that change, the one that shrinks most first (the next steps work on less)."""
    ratios = [t / n for t, n in zip(shape, src_shape)]
    return [int(k) for k in np.argsort(ratios, kind="stable") if src_shape[k] != shape[k]]


def steps_cost(src_shape, shape) -> int:
    """Voxels the separable steps write (they are bound by memory traffic)."""
    cur, total = list(src_shape), 0
    for ax in axis_order(src_shape, shape):
        cur[ax] = shape[ax]
        total += int(np.prod(cur))
    return total


def _memory_order(arr: np.ndarray) -> tuple[int, ...]:
    """Axes from the slowest-varying in memory to the fastest (C order: 0, 1, 2; F: 2, 1, 0)."""
    return tuple(int(k) for k in np.argsort([-abs(s) for s in arr.strides], kind="stable"))


def copy_tiled(dst: np.ndarray, src: np.ndarray) -> None:
    """dst[...] = src for a C-contiguous ``dst`` and a ``src`` laid out otherwise, in tiles over
    the two axes that are contiguous in each, so both sides stay in cache."""
    fast_dst, fast_src = dst.ndim - 1, int(np.argmin([abs(s) for s in src.strides]))
    if fast_dst == fast_src:
        np.copyto(dst, src)
        return
    for i in range(0, dst.shape[fast_src], _TILE):
        for k in range(0, dst.shape[fast_dst], _TILE):
            sl = [slice(None)] * dst.ndim
            sl[fast_src], sl[fast_dst] = slice(i, i + _TILE), slice(k, k + _TILE)
            np.copyto(dst[tuple(sl)], src[tuple(sl)])


def zoom_steps(data: np.ndarray, shape, *, finite: bool = False) -> tuple[np.ndarray, float]:
    """(arr, gain): arr * gain are ndimage.zoom(order=1, grid_mode=True, mode="nearest")'s
    samples of ``data`` on ``shape``, arr C-contiguous float32. The gain is left to the caller's
    next pass (the intensity normalisation) instead of costing one here. ``finite``: the data
    hold no NaN or inf (an integer scan), which allows the BLAS step."""
    shape = tuple(int(s) for s in shape)
    order = _memory_order(data)
    # work on the view whose last axis is the contiguous one, so every step runs along rows
    out = data.transpose(order)
    target = tuple(shape[k] for k in order)
    last = out.ndim - 1
    gain = 1.0
    whole = {ax: periodic_taps(out.shape[ax], target[ax]) for ax in range(last)}
    whole = {ax: (t[0], *t[2][0]) for ax, t in whole.items() if t is not None and t[1] == 1}
    if whole:  # the outer axes that shrink by whole factors (2, 3, 4 ...) first, in one step
        src = out
        out = np.empty(tuple(target[k] if k in whole else n for k, n in enumerate(src.shape)), np.float32)
        gain = box_step(src, whole, out)
    for ax in axis_order(out.shape, target):
        src = out
        out = np.empty(src.shape[:ax] + (target[ax],) + src.shape[ax + 1:], np.float32)
        per = periodic_taps(src.shape[ax], target[ax])
        if per is not None and per[1] == 1:
            gain *= box_step(src, {ax: (per[0], *per[2][0])}, out)
        elif (ax == last and per is not None and per[1] > 1 and finite and src.dtype == np.float32
                and src.flags.c_contiguous):
            matmul_step(src, *per, gain, out)
            gain = 1.0
        else:
            zoom_axis(src, ax, target[ax], out)
    if out is data or order != tuple(range(out.ndim)) or out.dtype != np.float32:
        result = np.empty(shape, np.float32)
        copy_tiled(result, out.transpose(np.argsort(order)))
        out = result
    return out, gain


def separable_zoom(data: np.ndarray, shape, *, finite: bool = False) -> np.ndarray:
    """ndimage.zoom(order=1, grid_mode=True, mode="nearest")'s samples as a C-contiguous
    float32 array: exact up to float32 rounding (~1e-7 relative)."""
    out, gain = zoom_steps(data, shape, finite=finite)
    if gain != 1.0:
        np.multiply(out, np.float32(gain), out=out)
    return out
