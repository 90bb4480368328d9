"""scipy.ndimage.zoom(order=1, grid_mode=True, mode="nearest")'s samples, one axis at a time.

A linear zoom is a product of 1-D interpolations, so it can run as one lerp per axis; each step
here is a few whole-array numpy operations (no Python loop over voxels). What makes it fast:

- For a shrinking axis the taps repeat: n_src / n_out = p / q in lowest terms, and output voxel
  k*q + j reads source voxels k*p + a_j and k*p + a_j + 1 with the same weight for every k.
  Whole factors (q = 1) are sums of strided views, several axes in one step (1/2: a + b, its
  1/2 owed to a later pass; 1/3: a plain pick). Along the contiguous axis any short period is
  one (N, p) @ (p, q) BLAS product, and along an outer axis with long rows behind it (a float
  intermediate) stacked (q, p) @ (p, row) products; elsewhere q <= 2 runs as q strided phases,
  and the rest gathers its two taps.
- Steps run in the array's own memory order (a scan from the readers is x-fastest, an F-ordered
  array): every step reads and writes whole rows. Only the small result changes layout, by a
  copy in slabs (numpy's plain transposing copy jumps a page per element).
- The axis that shrinks most goes first, so the later steps work on less.
- Constant factors (the halvings' 1/2, the caller's scale) ride on the BLAS weights or are
  handed back as a gain for the caller's next pass, never a pass of their own.
- A second thread takes half of each step (a BLAS product too, with one BLAS thread each), and
  half of the final change of layout: numpy's passes release the GIL, and one core does not use
  the memory's bandwidth (128x128x96 int16, the 2x2 box: 0.91 -> 0.50 ms). Each half is the
  same elementwise arithmetic on its own part of the output, so the answer is the same to the
  bit.
"""

from __future__ import annotations

import concurrent.futures
import functools
import math
import os
import threading

import numpy as np
from threadpoolctl import ThreadpoolController

# longest period q of a periodic step: along the contiguous axis one BLAS product takes any q up
# to this; elsewhere each of the q phases is three numpy passes over strided 1/q-th slices of the
# output, which beat two gathers only for q <= MAX_PHASES (200x200x120 -> 64^3, q = 8: 21 ms in
# phases, 3.7 ms with gathers)
MAX_PERIOD = 8
MAX_PHASES = 2
# a periodic step along an outer axis of a float32 intermediate runs as stacked (q, p) @ (p, row)
# BLAS products when each row behind the axis is at least this long (fewer, longer products:
# 96x64x64 -> 64^3 along axis 0, 0.12-0.16 ms against 0.34 ms in lerp phases); short rows would
# cost a BLAS call each
STACK_MIN_ROW = 1024
# slab width of the transposing copy, in float32 (64^3 x-fastest -> C in two halves, stop 25's
# machine: 8 -> 0.47 ms, 16 -> 0.37, 32 -> 0.34, one whole copy a half 0.35; the x-fastest
# preprocessing -0.1 ms from 8 to 32; stop 22's machine had 8 at 0.21 ms, 0.8 for a whole copy)
_TILE = 32
# output voxels under which handing half a step to the second thread costs more than it saves
# (a hand-over is ~30-50 us)
SPLIT_MIN = 1 << 16


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


def _in_halves(run, first: tuple, second: tuple):
    """run(*first) on the second thread while run(*second) runs here; the second's result."""
    future = _HALF.submit(run, *first)
    try:
        return run(*second)
    finally:
        future.result()  # never leave while the other half still writes the output


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
    with np.errstate(invalid="ignore"):  # inf - inf in a float scan: NaN, which the
        np.subtract(b, a, out=out, dtype=np.float32, casting="unsafe")  # normalisation maps to 0
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


@functools.lru_cache(maxsize=64)
def _weights(p: int, q: int, taps, gain: float) -> np.ndarray:
    """The (p, q) weights of a periodic step along the last (contiguous) axis of a C-contiguous
    float32 array, done as one (N, p) @ (p, q) product: BLAS reads each block of p voxels once
    (the strided lerps read every phase's taps apart); along an outer axis their transpose, in
    stacked (q, p) @ (p, row) products. ``gain`` is folded in. Only for finite data: a zero
    weight times inf or NaN would spread them to the neighbours."""
    w = np.zeros((p, q), np.float32)
    for j, (a, t) in enumerate(taps):
        w[a, j] += (1.0 - t) * gain
        if t:
            w[a + 1, j] += t * gain
    w.flags.writeable = False
    return w


_BLAS_LOCK = threading.Lock()


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()  # finds the loaded BLAS libraries once (~1 ms)


def zoom_axis(src: np.ndarray, ax: int, n_out: int, into: np.ndarray) -> None:
    """``into`` = src linearly zoomed to ``n_out`` along ``ax`` (all other axes as they are)."""
    n_src = src.shape[ax]
    per = periodic_taps(n_src, n_out)
    if per is not None and per[1] <= MAX_PHASES:
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


def memory_order(arr: np.ndarray) -> tuple[int, ...]:
    """Axes from the slowest-varying in memory to the fastest (C order: 0, 1, 2; F: 2, 1, 0)."""
    return tuple(sorted(range(arr.ndim), key=lambda k: -abs(arr.strides[k])))  # stable


def copy_tiled(dst: np.ndarray, src: np.ndarray, finish=None, gain: float = 1.0) -> None:
    """dst[...] = src for a C-contiguous ``dst`` and a ``src`` laid out otherwise, in slabs of
    _TILE along dst's contiguous axis: within a slab the reads of src's rows and the writes of
    dst's short runs both stay in cache (see _TILE). ``finish(part, gain)`` then runs on each
    part written (see zoom_steps)."""
    tiled = int(np.argmin([abs(s) for s in src.strides])) != dst.ndim - 1
    h = dst.shape[0] // 2
    if tiled and _HALF is not None and dst.size >= SPLIT_MIN and h > 0 and dst.ndim > 1:
        _in_halves(_copy_slabs, (dst[:h], src[:h], tiled, finish, gain), (dst[h:], src[h:], tiled, finish, gain))
    else:
        _copy_slabs(dst, src, tiled, finish, gain)


def _copy_slabs(dst: np.ndarray, src: np.ndarray, tiled: bool, finish, gain: float) -> None:
    if tiled:
        for k in range(0, dst.shape[-1], _TILE):
            np.copyto(dst[..., k:k + _TILE], src[..., k:k + _TILE])
    else:
        np.copyto(dst, src)
    if finish is not None:
        finish(dst, gain)


@functools.lru_cache(maxsize=64)
def _plan(src_shape: tuple, target: tuple, finite: bool) -> tuple:
    """The steps of the zoom of a C-ordered view, in order: ("box", {ax: (p, a, w)}),
    ("matmul", p, q, taps) along the last axis, ("stack", ax, p, q, taps) along an outer one,
    or ("axis", ax) (periodic lerp phases or a gather). The outer axes that shrink by whole
    factors (2, 3, 4 ...) go first, in one step; then the others, the one that shrinks most
    first, so the later steps work on less."""
    last, cur, steps = len(src_shape) - 1, list(src_shape), []
    whole = {ax: periodic_taps(cur[ax], target[ax]) for ax in range(last + 1)}
    # the contiguous axis joins only from a factor of 3 up: halving it apart from the others was
    # faster (x-fastest 128x128x96 -> 64^3: 0.41 ms vs 0.87 ms for the 2x2 box)
    whole = {ax: (t[0], *t[2][0]) for ax, t in whole.items()
             if t is not None and t[1] == 1 and (ax < last or t[0] > 2)}
    if whole:
        steps.append(("box", whole))
        cur = [target[k] if k in whole else n for k, n in enumerate(cur)]
    for ax in axis_order(cur, target):
        per = periodic_taps(cur[ax], target[ax])
        if per is not None and per[1] == 1:
            steps.append(("box", {ax: (per[0], *per[2][0])}))
        elif ax == last and per is not None and finite and steps:  # a float32 C intermediate
            steps.append(("matmul", *per))
        elif per is not None and finite and steps and math.prod(cur[ax + 1:]) >= STACK_MIN_ROW:
            steps.append(("stack", ax, *per))
        else:
            steps.append(("axis", ax))
        cur[ax] = target[ax]
    return tuple(steps)


def _axes(step) -> tuple[int, ...]:
    return tuple(step[1]) if step[0] == "box" else (-1,) if step[0] == "matmul" else (step[1],)


def _run(steps, src: np.ndarray, target: tuple, into: np.ndarray, gain: float, finish=None) -> float:
    """Run ``steps`` from ``src`` to ``target`` (the last step writes ``into``) with the factor
    ``gain`` still owed; returns the factor owed at the end. ``finish(part, owed)``, when given,
    runs on each part of the last step's output right after that part is written, while it is
    still in its thread's cache, and settles what was owed (the end then owes 1)."""
    out, nd = src, src.ndim
    for i, step in enumerate(steps):
        axes = {a % nd for a in _axes(step)}
        shape = tuple(target[k] if k in axes else n for k, n in enumerate(out.shape))
        last = i == len(steps) - 1
        dst = into if last else np.empty(shape, np.float32)
        part = functools.partial(_part, step, target=target, gain=gain, finish=finish if last else None)
        halves = _halves(step, out, dst)
        if step[0] in ("matmul", "stack"):
            # one BLAS thread for each half: these products are too small to gain from BLAS's
            # own threads, and on a loaded machine a woken BLAS thread waits for a core
            # (200x200x120 -> 64^3 at load 4: 2.3 ms, 15 ms with OpenBLAS's two). The limit is
            # process-wide, hence the lock.
            with _BLAS_LOCK, _blas().limit(limits=1, user_api="blas"):
                gain = part(out, dst) if halves is None else _in_halves(part, halves[0], halves[1])
        else:
            gain = part(out, dst) if halves is None else _in_halves(part, halves[0], halves[1])
        out = dst
    return gain


def _part(step, src: np.ndarray, dst: np.ndarray, *, target: tuple, gain: float, finish) -> float:
    """One step from ``src`` into ``dst`` (the whole or a half) with ``gain`` owed before it;
    the factor owed after it (1 once ``finish`` has settled it)."""
    if step[0] == "matmul":
        _, p, q, taps = step
        np.matmul(src.reshape(-1, p), _weights(p, q, taps, gain), out=dst.reshape(-1, q))
        owed = 1.0
    elif step[0] == "stack":
        _, ax, p, q, taps = step
        blocks = math.prod(src.shape[:ax + 1]) // p
        np.matmul(_weights(p, q, taps, gain).T, src.reshape(blocks, p, -1), out=dst.reshape(blocks, q, -1))
        owed = 1.0
    else:
        owed = gain * _step(step, src, dst, target)
    if finish is None:
        return owed
    finish(dst, owed)
    return 1.0


def _step(step, src: np.ndarray, dst: np.ndarray, target: tuple) -> float:
    """A box or axis step from ``src`` into ``dst``; the factor it leaves owed."""
    if step[0] == "box":
        return box_step(src, step[1], dst)
    zoom_axis(src, step[1], target[step[1]], dst)
    return 1.0


def _halves(step, src: np.ndarray, dst: np.ndarray):
    """((src, dst), (src, dst)): the step's two halves along an outer axis, or None when it is
    not worth a second thread. A box step is cut along axis 0 (output k of an axis it shrinks
    by p reads source k*p + a, a < p: the halves read apart); an axis step along an axis it
    keeps."""
    if _HALF is None or dst.size < SPLIT_MIN:
        return None
    if step[0] == "box":
        cut, p = 0, step[1][0][0] if 0 in step[1] else 1
    elif step[0] == "matmul":  # along the last axis: whole rows of a C array
        cut, p = 0, 1
    elif step[0] == "stack" and step[1] == 0:  # whole blocks: q outputs from p sources
        _, _, p, q, _ = step
        h = dst.shape[0] // q // 2 * q
        if h == 0:
            return None
        return ((src[: h // q * p], dst[:h]), (src[h // q * p:], dst[h:]))
    elif step[0] == "stack":
        cut, p = 0, 1
    else:
        cut, p = (1 if step[1] == 0 else 0), 1
    h = dst.shape[cut] // 2
    if h == 0:
        return None
    lo, hi = slice(0, h), slice(h, None)
    return ((src[_along(cut, slice(0, h * p))], dst[_along(cut, lo)]),
            (src[_along(cut, slice(h * p, None))], dst[_along(cut, hi)]))


def steps_cost(data: np.ndarray, shape) -> int:
    """Voxels the separable steps would write for ``data`` (they are bound by memory traffic)."""
    order = memory_order(data)
    return _plan_cost(tuple(data.shape[k] for k in order), tuple(int(shape[k]) for k in order))


@functools.lru_cache(maxsize=64)
def _plan_cost(src_shape: tuple, target: tuple) -> int:
    cur, total = list(src_shape), 0
    for step in _plan(src_shape, target, False):
        for ax in _axes(step):
            cur[ax] = target[ax]
        total += int(np.prod(cur))
    return total


def zoom_steps(data: np.ndarray, shape, *, finite: bool = False, scale: float = 1.0,
               finish=None) -> tuple[np.ndarray, float]:
    """(arr, gain): arr * gain are ``scale`` times ndimage.zoom(order=1, grid_mode=True,
    mode="nearest")'s samples of ``data`` on ``shape``, arr C-contiguous float32. Constant
    factors ride on a BLAS step's weights when there is one; the rest (the gain) is left to the
    caller's next pass (the intensity normalisation) instead of costing one here. ``finite``: the
    data hold no NaN or inf (an integer scan), which allows the BLAS step. ``finish(part, gain)``:
    that next pass, an elementwise map that settles the gain, run on each part of the last step's
    output while the part is still in cache (the returned gain is then 1)."""
    shape = tuple(int(s) for s in shape)
    order = memory_order(data)
    # work on the view whose last axis is the contiguous one, so every step runs along rows
    view = data.transpose(order)
    target = tuple(shape[k] for k in order)
    steps = _plan(view.shape, target, bool(finite))
    direct = order == tuple(range(view.ndim))
    out = np.empty(shape if direct else target, np.float32)
    # the finishing pass rides on the last pass that writes the result: the last step's halves,
    # or the change of layout's (on the steps' strided halves it cost more than it saved)
    if steps:
        gain = _run(steps, view, target, out, scale, finish if direct else None)
    else:
        np.copyto(out, view, casting="unsafe")
        gain = scale
    if not direct:
        result = np.empty(shape, np.float32)
        copy_tiled(result, out.transpose(np.argsort(order)), finish, gain)
        return result, 1.0 if finish is not None else gain
    if finish is not None and not steps:
        finish(out, gain)
        gain = 1.0
    return out, gain


def separable_zoom(data: np.ndarray, shape, *, finite: bool = False) -> np.ndarray:
    """ndimage.zoom(order=1, grid_mode=True, mode="nearest")'s samples as a C-contiguous
    float32 array: exact up to float32 rounding (~1e-7 relative)."""
    out, gain = zoom_steps(data, shape, finite=finite)
    if gain != 1.0:
        np.multiply(out, np.float32(gain), out=out)
    return out
