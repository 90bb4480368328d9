"""World-space sampling of one plane of any Volume.

A slice view shows a plane of the base volume's voxel grid; an overlay (mask, saliency
map, second scan) lives on its own grid, placed by its own affine. To draw the overlay we
map the world coordinates of the plane's voxel centres into the overlay's voxel space and
interpolate there, for the plane on screen only: never the whole overlay at full size.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from vol3d_gui.core.volume import Volume, inverse_of

# slice axis -> the two in-plane array axes (display x, display y)
PLANE_AXES = {0: (1, 2), 1: (0, 2), 2: (0, 1)}


def plane_voxel_to_overlay(base: Volume, overlay: Volume) -> np.ndarray:
    """4x4 mapping base voxel indices to overlay voxel indices (both affines, one matrix)."""
    return inverse_of(overlay.affine) @ base.affine


def sample_plane(overlay: Volume, base: Volume, axis: int, index: float, *, order: int = 1,
                 cval: float = 0.0) -> np.ndarray:
    """Values of ``overlay`` at the voxel centres of ``base``'s plane ``index`` along ``axis``.

    Returns a float32 array shaped like ``base``'s slice (its two in-plane axes in order).
    Points more than half a voxel outside the overlay's grid get ``cval``. ``order`` 0 is
    nearest neighbour (masks, labels), 1 trilinear (saliency, scans).
    """
    if order not in (0, 1):
        raise ValueError(f"order must be 0 or 1, got {order}")
    m = plane_voxel_to_overlay(base, overlay)
    owner = aligned_axes(m)
    if owner is not None:
        return _sample_aligned(overlay, base, axis, index, m, owner, order, cval)
    return _sample_general(overlay, base, axis, index, m, order, cval)


def aligned_axes(m: np.ndarray, tol: float = 1e-9) -> list[int] | None:
    """For each base axis, the one overlay axis a step along it moves, or None when the
    grids are oblique to each other. Masks and Grad-CAM maps share the base's axes (up to
    scale, flips and axis order), so this is the usual case."""
    owner = []
    for j in range(3):
        col = np.abs(m[:3, j])
        big = col > tol * max(col.max(), 1e-300)
        if big.sum() != 1:
            return None
        owner.append(int(np.argmax(big)))
    return owner if len(set(owner)) == 3 else None


def _linear_taps(c: np.ndarray, n: int):
    """Indices and weights of 1-D linear interpolation at ``c`` on a grid of ``n`` samples,
    clamped as map_coordinates(mode='nearest') does; ``inside``: within half a voxel."""
    inside = (c >= -0.5) & (c <= n - 0.5)
    cc = np.clip(c, 0, n - 1)
    i0 = np.minimum(np.floor(cc).astype(np.intp), max(n - 2, 0))
    w = (cc - i0).astype(np.float32)
    return i0, np.minimum(i0 + 1, n - 1), w, inside


def _as_slice(idx: np.ndarray) -> slice | None:
    """``idx`` as a slice when it is a run of consecutive increasing indices, else None."""
    if idx.size == 0 or idx[-1] - idx[0] != idx.size - 1 or (idx.size > 1 and np.any(np.diff(idx) != 1)):
        return None
    return slice(int(idx[0]), int(idx[-1]) + 1)


def cut_axis_plane(data: np.ndarray, m: np.ndarray, owner: list[int], axis: int, index: float,
                   order: int) -> np.ndarray | None:
    """The plane of an axis-aligned overlay (``owner`` = aligned_axes(m)) that base plane
    ``index`` along ``axis`` cuts: its two other axes in increasing order, read at the
    nearest overlay plane (order 0: a view, no copy) or interpolated between the two around
    it (order 1, float32). None when the base plane misses the overlay's grid (by more than
    half a voxel). The in-plane sampling is left to the caller (a shader, or _sample_aligned)."""
    rc = owner[axis]
    n = data.shape[rc]
    cc = m[rc, axis] * float(index) + m[rc, 3]
    if order == 0:
        ic = int(np.rint(cc))
        return np.take(data, ic, axis=rc) if 0 <= ic < n else None
    c0, c1, wc, inside = _linear_taps(np.array([cc]), n)
    if not inside[0]:
        return None
    p = np.take(data, int(c0[0]), axis=rc).astype(np.float32)
    if wc[0] > 0:
        p = p * (1 - wc[0]) + np.take(data, int(c1[0]), axis=rc).astype(np.float32) * wc[0]
    return p


def _sample_aligned(overlay, base, axis, index, m, owner, order, cval) -> np.ndarray:
    """Separable sampling for axis-aligned grids: one or two overlay planes are read and
    interpolated along each in-plane axis with 1-D index/weight vectors. A few passes over
    the output plane instead of a 3 x N coordinate array through map_coordinates."""
    a, b = PLANE_AXES[axis]
    na, nb = base.shape[a], base.shape[b]
    ra, rb = owner[a], owner[b]
    oshape = overlay.shape
    ca = m[ra, a] * np.arange(na, dtype=np.float64) + m[ra, 3]
    cb = m[rb, b] * np.arange(nb, dtype=np.float64) + m[rb, 3]
    out = np.full((na, nb), cval, np.float32)
    p = cut_axis_plane(overlay.data, m, owner, axis, index, order)
    if p is None:
        return out
    if ra > rb:  # the plane's axes are the overlay's in increasing order -> (ra, rb)
        p = p.T

    if order == 0:
        ia, ib = np.rint(ca).astype(np.intp), np.rint(cb).astype(np.intp)
        va, vb = (ia >= 0) & (ia < oshape[ra]), (ib >= 0) & (ib < oshape[rb])
        if not va.any() or not vb.any():
            return out
        src_a, src_b = _as_slice(ia[va]), _as_slice(ib[vb])
        dst_a, dst_b = _as_slice(np.flatnonzero(va)), _as_slice(np.flatnonzero(vb))
        if None not in (src_a, src_b, dst_a, dst_b):
            # same spacing, no flip (a mask on its own image's grid): one block copy instead
            # of two fancy-indexed copies of the plane
            out[dst_a, dst_b] = p[src_a, src_b]
            return out
        rows = np.take(p, ia[va], axis=0)
        out[np.ix_(va, vb)] = np.take(rows, ib[vb], axis=1)
        return out

    ia0, ia1, wa, va = _linear_taps(ca, oshape[ra])
    ib0, ib1, wb, vb = _linear_taps(cb, oshape[rb])
    if not va.any() or not vb.any():
        return out
    ia0, ia1, wa = ia0[va], ia1[va], wa[va]
    ib0, ib1, wb = ib0[vb], ib1[vb], wb[vb]
    rows = np.take(p, ia0, axis=0) * (1 - wa[:, None]) + np.take(p, ia1, axis=0) * wa[:, None]
    res = np.take(rows, ib0, axis=1) * (1 - wb[None, :]) + np.take(rows, ib1, axis=1) * wb[None, :]
    dst_a, dst_b = _as_slice(np.flatnonzero(va)), _as_slice(np.flatnonzero(vb))
    if dst_a is not None and dst_b is not None:
        out[dst_a, dst_b] = res
    else:
        out[np.ix_(va, vb)] = res
    return out


def _sample_general(overlay, base, axis, index, m, order, cval) -> np.ndarray:
    """Any affine (oblique grids): world points of the plane through map_coordinates."""
    a, b = PLANE_AXES[axis]
    na, nb = base.shape[a], base.shape[b]
    # overlay coords = M[:3,:3] @ (u e_a + v e_b + index e_axis) + M[:3,3], built separably
    ua = m[:3, a][:, None] * np.arange(na, dtype=np.float64)[None, :]  # (3, na)
    vb = m[:3, b][:, None] * np.arange(nb, dtype=np.float64)[None, :]  # (3, nb)
    off = m[:3, axis] * float(index) + m[:3, 3]
    coords = ua[:, :, None] + vb[:, None, :] + off[:, None, None]  # (3, na, nb)

    # Cheap rejection: the plane misses the overlay entirely (common for small masks).
    lo = coords.reshape(3, -1).min(axis=1)
    hi = coords.reshape(3, -1).max(axis=1)
    shape = np.asarray(overlay.shape)
    if np.any(hi < -0.5) or np.any(lo > shape - 0.5):
        return np.full((na, nb), cval, np.float32)

    data = overlay.data
    if data.dtype not in (np.float32, np.float64, np.uint8, np.int16, np.uint16, np.int32):
        data = data.astype(np.float32)
    if order == 0:
        idx = np.rint(coords).astype(np.int64)
        inside = np.all((idx >= 0) & (idx < shape[:, None, None]), axis=0)
        out = np.full((na, nb), cval, np.float32)
        out[inside] = data[idx[0][inside], idx[1][inside], idx[2][inside]]
        return out
    # edge voxels are half a voxel wide: clamp within +-0.5 voxel of the grid, outside = cval
    inside = np.all((coords >= -0.5) & (coords <= shape[:, None, None] - 0.5), axis=0)
    clipped = np.clip(coords, 0, (shape - 1)[:, None, None])
    out = ndimage.map_coordinates(data, clipped, order=order, mode="nearest", prefilter=False,
                                  output=np.float32)
    out[~inside] = cval
    return out


def base_slice(base: Volume, axis: int, index: int) -> np.ndarray:
    """The base volume's own plane (a view, no copy), in-plane axes in PLANE_AXES order."""
    index = min(max(int(index), 0), base.data.shape[axis] - 1)  # plain ints: every cursor move
    sl = [slice(None)] * 3
    sl[axis] = index
    return base.data[tuple(sl)]
