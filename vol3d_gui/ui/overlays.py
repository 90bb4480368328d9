"""Overlay layers: any Volume drawn over the slices in world space (masks, saliency, scans)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vol3d_gui.core.resample import sample_plane
from vol3d_gui.core.volume import Volume
from vol3d_gui.ui.colormaps import lut


@dataclass(eq=False)
class OverlayLayer:
    volume: Volume
    name: str
    colormap: str = "hot"
    opacity: float = 0.5
    threshold: float = 0.0
    visible: bool = True
    # value range mapped onto the colour map (None: from the data, once)
    vmin: float | None = None
    vmax: float | None = None
    order: int = field(default=-1)  # interpolation order; -1: nearest for labels, linear otherwise

    def __post_init__(self) -> None:
        data = self.volume.data
        if self.order < 0:
            self.order = 0 if data.dtype.kind in "biu" and data.max(initial=0) <= 255 else 1
        finite = data[np.isfinite(data)] if data.dtype.kind == "f" else data
        if self.vmin is None:
            self.vmin = float(finite.min()) if finite.size else 0.0
        if self.vmax is None:
            self.vmax = float(finite.max()) if finite.size else 1.0
        if self.vmax <= self.vmin:
            self.vmax = self.vmin + 1.0

    def rgba_plane(self, base: Volume, axis: int, index: int) -> np.ndarray | None:
        """RGBA (uint8) of this overlay over ``base``'s plane, or None when nothing shows."""
        if not self.visible or self.opacity <= 0:
            return None
        vals = sample_plane(self.volume, base, axis, index, order=self.order, cval=np.nan)
        shown = vals > self.threshold  # NaN (outside the overlay) compares False
        if self.order == 0 and self.vmax <= 1.0:
            shown &= vals > 0  # a binary mask: 0 is background whatever the threshold
        rows = np.flatnonzero(shown.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(shown.any(axis=0))
        box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        # colour only the bounding box of what shows (a lesion is a few percent of a plane)
        v, on = vals[box], shown[box]
        rgba = np.zeros((*vals.shape, 4), np.uint8)
        out = rgba[box]
        alpha = np.uint8(round(255 * self.opacity))
        if self.order == 0 and self.vmax <= 1.0:  # binary mask: one colour
            out[on] = (*lut(self.colormap)[-1], alpha)
            return rgba
        scale = np.float32(255.0 / (self.vmax - self.vmin))
        idx = np.where(on, v, np.float32(self.vmin))
        idx -= np.float32(self.vmin)
        idx *= scale
        np.clip(idx, 0, 255, out=idx)
        out[..., :3] = np.take(lut(self.colormap), idx.astype(np.uint8), axis=0)
        out[..., 3] = on * alpha
        return rgba
