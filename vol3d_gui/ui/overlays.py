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
        shown = np.isfinite(vals) & (vals > self.threshold)
        if self.order == 0 and self.vmax <= 1.0:
            shown &= vals > 0  # a binary mask: 0 is background whatever the threshold
        if not shown.any():
            return None
        norm = np.clip((np.nan_to_num(vals) - self.vmin) / (self.vmax - self.vmin), 0.0, 1.0)
        rgba = np.zeros((*vals.shape, 4), np.uint8)
        rgba[..., :3] = lut(self.colormap)[(norm * 255).astype(np.uint8)]
        rgba[..., 3] = np.where(shown, int(round(255 * self.opacity)), 0).astype(np.uint8)
        return rgba
