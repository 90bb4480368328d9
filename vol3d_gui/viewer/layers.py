"""Layers: the base image and everything drawn over it (masks, saliency, a second scan).

Every layer is a Volume placed in world space by its own affine, with validated display
properties that announce their changes. Overlays are sampled for the plane on screen only
(core.resample): never resampled whole to the base grid.
"""

from __future__ import annotations

import numpy as np
from psygnal import Signal

from vol3d_gui.core.resample import sample_plane
from vol3d_gui.core.volume import Volume
from vol3d_gui.viewer.colormaps import COLORMAPS, lut
from vol3d_gui.viewer.evented import Evented


def _finite_range(data: np.ndarray, max_samples: int = 1_000_000) -> tuple[float, float]:
    """(min, max) of the finite values; a strided sample of a large array (a range for a colour
    bar, not a statistic: a small map is read whole, a full-size scan by every k-th voxel)."""
    flat = data.reshape(-1) if data.flags.c_contiguous or data.flags.f_contiguous else None
    if flat is None or flat.size > max_samples:
        step = max(1, int(np.ceil((data.size / max_samples) ** (1 / 3))))
        flat = data[::step, ::step, ::step].reshape(-1)
    if flat.dtype.kind == "f":
        flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return 0.0, 1.0
    return float(flat.min()), float(flat.max())


class Layer(Evented):
    """Common properties; ``kind`` says how views draw it."""

    FIELDS = ("visible", "opacity", "colormap")
    kind = "layer"

    def __init__(self, volume: Volume, name: str, *, visible: bool = True, opacity: float = 1.0,
                 colormap: str = "grey"):
        super().__init__()
        if not isinstance(volume, Volume):
            raise TypeError(f"a layer shows a Volume, got {type(volume).__name__}")
        self.volume = volume
        self.name = str(name)
        self.visible = visible
        self.opacity = opacity
        self.colormap = colormap

    def _check_visible(self, v) -> bool:
        return bool(v)

    def _check_opacity(self, v) -> float:
        v = float(v)
        if not np.isfinite(v) or not 0.0 <= v <= 1.0:
            raise ValueError(f"opacity must be between 0 and 1, got {v}")
        return v

    def _check_colormap(self, v) -> str:
        if v not in COLORMAPS:
            raise ValueError(f"unknown colour map {v!r}; choose from {', '.join(COLORMAPS)}")
        return str(v)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.volume!r})"


class ImageLayer(Layer):
    """The base image: the volume the views' grids come from. Its window lives on the
    ViewerModel (one window/level for the reading session)."""

    kind = "image"


class OverlayLayer(Layer):
    FIELDS = ("visible", "opacity", "colormap", "threshold", "vmin", "vmax")
    kind = "overlay"

    def __init__(self, volume: Volume, name: str, *, colormap: str = "hot", opacity: float = 0.5,
                 threshold: float = 0.0, visible: bool = True, vmin: float | None = None,
                 vmax: float | None = None, order: int = -1):
        data = volume.data
        if order not in (-1, 0, 1):
            raise ValueError(f"interpolation order must be 0 or 1, got {order}")
        if order < 0:  # nearest for labels, linear otherwise
            order = 0 if data.dtype.kind in "biu" and data.max(initial=0) <= 255 else 1
        self.order = order
        lo, hi = _finite_range(data) if vmin is None or vmax is None else (vmin, vmax)
        object.__setattr__(self, "vmin", float(lo if vmin is None else vmin))
        object.__setattr__(self, "vmax", float(hi if vmax is None else vmax))
        if self.vmax <= self.vmin:
            object.__setattr__(self, "vmax", self.vmin + 1.0)
        super().__init__(volume, name, visible=visible, opacity=opacity, colormap=colormap)
        self.threshold = threshold

    def _check_threshold(self, v) -> float:
        v = float(v)
        if not np.isfinite(v):
            raise ValueError(f"threshold must be finite, got {v}")
        return v

    def _check_vmin(self, v) -> float:
        v = float(v)
        if not np.isfinite(v):
            raise ValueError(f"vmin must be finite, got {v}")
        return v

    _check_vmax = _check_vmin

    @property
    def is_binary_mask(self) -> bool:
        return self.order == 0 and self.vmax <= 1.0

    def rgba_plane(self, base: Volume, axis: int, index: int) -> np.ndarray | None:
        """RGBA (uint8) of this overlay over ``base``'s plane, or None when nothing shows."""
        if not self.visible or self.opacity <= 0:
            return None
        vals = sample_plane(self.volume, base, axis, index, order=self.order, cval=np.nan)
        shown = vals > self.threshold  # NaN (outside the overlay) compares False
        if self.is_binary_mask:
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
        if self.is_binary_mask:
            out[on] = (*lut(self.colormap)[-1], alpha)
            return rgba
        scale = np.float32(255.0 / (self.vmax - self.vmin))
        idx = np.where(on, v, np.float32(self.vmin))
        idx -= np.float32(self.vmin)
        idx *= scale
        np.clip(idx, 0, 255, out=idx)
        # one 4-byte lookup per pixel (colour and opacity packed), not three 1-byte ones
        # along an axis: a quarter of a slice view's overlay time for a full-plane map
        packed = np.empty((256, 4), np.uint8)
        packed[:, :3] = lut(self.colormap)
        packed[:, 3] = alpha
        rgba.view(np.uint32)[..., 0][box] = np.where(on, packed.view(np.uint32)[:, 0][idx.astype(np.uint8)], 0)
        return rgba

    def display_colour(self) -> tuple[float, float, float]:
        """One colour for views that draw the overlay flat (the 3-D view): the map's colour
        for a strong value (its top is near white for hot and inferno, and reads as bone)."""
        rgb = lut(self.colormap)[int(0.6 * 255)] / 255.0
        return tuple(float(c) for c in rgb)


class LayerList:
    """Ordered layers (drawn first to last) with events: ``inserted(layer)``,
    ``removed(layer)``, and ``changed(layer, field, value)`` when a layer's property changes."""

    inserted = Signal(object)
    removed = Signal(object)
    changed = Signal(object, str, object)

    def __init__(self) -> None:
        self._layers: list[Layer] = []
        self._relays: dict[int, object] = {}

    def __iter__(self):
        return iter(list(self._layers))

    def __len__(self) -> int:
        return len(self._layers)

    def __contains__(self, name) -> bool:
        return any(layer.name == name for layer in self._layers)

    def __getitem__(self, key) -> Layer:
        if isinstance(key, int):
            return self._layers[key]
        for layer in self._layers:
            if layer.name == key:
                return layer
        raise KeyError(key)

    def get(self, name, default=None):
        try:
            return self[name]
        except KeyError:
            return default

    def names(self) -> list[str]:
        return [layer.name for layer in self._layers]

    @property
    def overlays(self) -> list[OverlayLayer]:
        return [layer for layer in self._layers if isinstance(layer, OverlayLayer)]

    @property
    def base(self) -> ImageLayer | None:
        for layer in self._layers:
            if isinstance(layer, ImageLayer):
                return layer
        return None

    def append(self, layer: Layer) -> Layer:
        """Add a layer; one with the same name is replaced in place (a new saliency map
        takes the old one's position)."""
        old = self.get(layer.name)
        if old is not None:
            self._detach(old)
            self._layers[self._layers.index(old)] = layer
            self.removed.emit(old)
        else:
            self._layers.append(layer)
        self._attach(layer)
        self.inserted.emit(layer)
        return layer

    def remove(self, name: str) -> Layer | None:
        layer = self.get(name)
        if layer is None:
            return None
        self._layers.remove(layer)
        self._detach(layer)
        self.removed.emit(layer)
        return layer

    def clear(self) -> None:
        for layer in list(self._layers):
            self.remove(layer.name)

    def _attach(self, layer: Layer) -> None:
        def relay(info, layer=layer):
            self.changed.emit(layer, info.signal.name, info.args[0] if info.args else None)

        layer.events.connect(relay)
        self._relays[id(layer)] = relay

    def _detach(self, layer: Layer) -> None:
        relay = self._relays.pop(id(layer), None)
        if relay is not None:
            layer.events.disconnect(relay)
