"""World-space sampling of one plane of any Volume.

A slice view shows a plane of the base volume's voxel grid; an overlay (mask, saliency
map, second scan) lives on its own grid, placed by its own affine. To draw the overlay we
map the world coordinates of the plane's voxel centres into the overlay's voxel space and
interpolate there, for the plane on screen only: never the whole overlay at full size.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from vol3d_gui.core.volume import Volume

# slice axis -> the two in-plane array axes (display x, display y)
PLANE_AXES = {0: (1, 2), 1: (0, 2), 2: (0, 1)}


def plane_voxel_to_overlay(base: Volume, overlay: Volume) -> np.ndarray:
    """4x4 mapping base voxel indices to overlay voxel indices (both affines, one matrix)."""
    return np.linalg.inv(overlay.affine) @ base.affine


def sample_plane(overlay: Volume, base: Volume, axis: int, index: float, *, order: int = 1,
                 cval: float = 0.0) -> np.ndarray:
    """Values of ``overlay`` at the voxel centres of ``base``'s plane ``index`` along ``axis``.

    Returns a float32 array shaped like ``base``'s slice (its two in-plane axes in order).
    Points outside the overlay get ``cval``.
    """
    a, b = PLANE_AXES[axis]
    na, nb = base.shape[a], base.shape[b]
    m = plane_voxel_to_overlay(base, overlay)
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
    index = int(np.clip(index, 0, base.shape[axis] - 1))
    sl = [slice(None)] * 3
    sl[axis] = index
    return base.data[tuple(sl)]
