"""Where the body is: a foreground mask of a volume, saliency restricted to it, and whether
the crosshair may jump to a saliency peak.

A Grad-CAM map lives on the network's coarse grid and knows nothing of anatomy: on a volume
the model was never trained for its peak lay in the air in a corner of the field of view, and
the crosshair followed it. Masking the map to the body before it is drawn, and moving the
crosshair only to a peak inside the body of an in-domain case, keeps the saliency honest.

The mask is computed on a strided copy of at most ``MAX_GRID`` voxels per axis (a 512x512x300
int16 scan becomes 64x64x60 without any full-resolution float copy): an Otsu threshold, the
largest connected component, holes filled in 3-D and slice by slice (lungs open at the edge
of the field of view are not enclosed in 3-D). Its affine places it in the volume's world
space like any overlay.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from vol3d_gui.core.volume import Volume

MAX_GRID = 64


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """The threshold maximising the between-class variance of ``values`` (Otsu 1979)."""
    v = np.asarray(values, np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 0.0)
    if hi <= lo:
        return lo
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    s0 = np.cumsum(hist * centres)
    m0 = s0 / np.maximum(w0, 1)
    m1 = (s0[-1] - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    between = between[:-1]
    # empty bins between two populations make a plateau of equal variance: take its middle,
    # not its first bin, which would hug the darker population
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))
    return float(edges[1:][best[len(best) // 2]])


def foreground_mask(volume: Volume, max_grid: int = MAX_GRID) -> Volume:
    """A uint8 mask (1 = body) on a strided grid of at most ``max_grid`` voxels per axis."""
    steps = [max(1, int(np.ceil(n / max_grid))) for n in volume.shape]
    small = np.asarray(volume.data[:: steps[0], :: steps[1], :: steps[2]], np.float32)
    # a light blur so that noise does not speckle the threshold
    small = ndimage.gaussian_filter(small, 0.7, mode="nearest")
    body = small > otsu_threshold(small)
    labels, n = ndimage.label(body)
    if n > 1:
        sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, n + 1))
        body = labels == (1 + int(np.argmax(sizes)))
    body = ndimage.binary_closing(body, iterations=1, border_value=0) | body
    body = ndimage.binary_fill_holes(body)
    for k in range(body.shape[2]):  # per axial slice: lungs open at the superior edge
        body[:, :, k] = ndimage.binary_fill_holes(body[:, :, k])
    affine = volume.affine @ np.diag([*map(float, steps), 1.0])
    return Volume(body.astype(np.uint8), affine, name="foreground", source=volume.source,
                  meta={"kind": "mask", "method": "otsu, largest component, holes filled", "steps": steps})


def sample_world(volume: Volume, world: np.ndarray, order: int = 1) -> np.ndarray:
    """Values of ``volume`` at world points (..., 3); 0 outside its grid."""
    ijk = volume.world_to_voxel(world)
    coords = np.moveaxis(ijk, -1, 0).reshape(3, -1)
    vals = ndimage.map_coordinates(np.asarray(volume.data, np.float32), coords, order=order,
                                   mode="constant", cval=0.0)
    return vals.reshape(ijk.shape[:-1])


def mask_saliency(saliency: Volume, mask: Volume) -> Volume:
    """The saliency map on the mask's grid (trilinear), zero outside the body and rescaled so
    that its peak inside the body is 1 (the viewer's half-peak threshold then applies to the
    body's evidence, not to a peak in the air)."""
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in mask.shape], indexing="ij"), axis=-1)
    cam = sample_world(saliency, mask.voxel_to_world(grid)) * (np.asarray(mask.data) > 0)
    top = float(cam.max())
    cam = (cam / top if top > 0 else cam).astype(np.float32)
    return Volume(cam, mask.affine.copy(), name=saliency.name, source=saliency.source,
                  meta={**saliency.meta, "masked_to": "foreground", "peak_before_mask": top})


def saliency_peak(saliency: Volume) -> np.ndarray | None:
    """World coordinates (RAS mm) of the map's maximum, or None for an empty map."""
    data = np.asarray(saliency.data)
    if not data.size or not float(data.max()) > 0:
        return None
    return saliency.voxel_to_world(np.unravel_index(int(np.argmax(data)), data.shape))


def inside(mask: Volume, world) -> bool:
    ijk = np.rint(mask.world_to_voxel(np.asarray(world, np.float64))).astype(int)
    if np.any(ijk < 0) or np.any(ijk >= np.asarray(mask.shape)):
        return False
    return bool(np.asarray(mask.data)[tuple(ijk)])


def crosshair_target(saliency: Volume, mask: Volume, in_domain: bool) -> np.ndarray | None:
    """Where the crosshair may jump: the saliency peak when the case is in the model's domain
    and the peak lies inside the body; otherwise None (the crosshair stays where it is)."""
    if not in_domain:
        return None
    peak = saliency_peak(saliency)
    if peak is None or not inside(mask, peak):
        return None
    return peak
