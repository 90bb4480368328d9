"""The ViewerModel: the whole state of a reading session, without Qt (as napari's ViewerModel).

The study and current item, the Volume on screen, the cursor (RAS mm), window/level, the
display convention and one layer list (the base image and every overlay). Views observe
its events and draw what it says; controllers change it; nothing else keeps a copy. A test
of reading logic needs no display.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from psygnal import Signal

from vol3d_gui.core.volume import Volume
from vol3d_gui.core.windowing import CT_PRESETS, Window
from vol3d_gui.viewer.evented import Evented
from vol3d_gui.viewer.layers import ImageLayer, LayerList, OverlayLayer
from vol3d_gui.viewer.windows import initial_window, window_presets


@dataclass(frozen=True)
class Notice:
    """A message that matters for one case and stays until dismissed (missing slices, a 4-D
    file shown as its first volume, a downsampled 3-D view, a case outside the model's domain)."""

    key: str  # what it is about, e.g. "missing-slices", "3d-downsampled"
    text: str
    case: str | None = None  # the item id or volume name it belongs to


class ViewerModel(Evented):
    FIELDS = ("study", "item", "volume", "cursor", "window", "radiological", "notices")
    # the volume and item change together: one event, after both are set
    caseChanged = Signal(object, object)  # volume, item

    def __init__(self) -> None:
        super().__init__()
        self.layers = LayerList()
        self.study = None
        self.item = None
        self.volume: Volume | None = None
        self.cursor = np.zeros(3)
        self.window = Window(40, 400)
        self.radiological = True
        self.notices: tuple[Notice, ...] = ()
        self.saliency: Volume | None = None  # the Grad-CAM map on screen, in world space
        # (volume, viewer.prepare.DisplayGrid): the 3-D texture prepared with the case, off the GUI thread
        self.display_grid = None

    # --- validation ------------------------------------------------------------------------
    def _check_cursor(self, v) -> np.ndarray:
        v = np.array(v, dtype=np.float64).reshape(-1)
        if v.shape != (3,) or not np.all(np.isfinite(v)):
            raise ValueError(f"the cursor is a finite RAS point (3 numbers), got {v}")
        return v

    def _check_window(self, v) -> Window:
        if not isinstance(v, Window):
            raise ValueError(f"window must be a Window, got {type(v).__name__}")
        return v

    def _check_radiological(self, v) -> bool:
        return bool(v)

    def _check_notices(self, v) -> tuple:
        return tuple(v)

    # --- the case on screen ------------------------------------------------------------------
    def set_case(self, volume: Volume, item=None, *, window: Window | None = None,
                 cursor=None, mask: Volume | None = None, grid=None, mask_visible: bool = True) -> None:
        """Show a new volume (and the study item it came from). Overlays belong to the previous
        image and go; the window is the file's own, a CT preset or robust percentiles
        (``window`` when the caller computed it off the GUI thread)."""
        self.layers.clear()
        self.saliency = None
        self.display_grid = (volume, grid) if grid is not None else None
        # everything first, silently; then the events, volume first: an observer of the cursor
        # or the window then never sees a new value against the previous volume
        self._set_quietly(volume=volume, item=item,
                          window=window if window is not None else initial_window(volume),
                          notices=self._case_notices(volume, item),
                          cursor=cursor if cursor is not None else self.initial_cursor(volume, mask))
        self.layers.append(ImageLayer(volume, volume.name or "image"))
        if mask is not None:
            self.add_overlay(mask, "lesion mask", colormap="green", opacity=0.35, threshold=0.5,
                             visible=mask_visible)
        self.caseChanged.emit(volume, item)
        for name in ("volume", "item", "window", "cursor", "notices"):
            getattr(self.events, name).emit(getattr(self, name))

    def _set_quietly(self, **values) -> None:
        for name, value in values.items():
            check = getattr(self, f"_check_{name}", None)
            object.__setattr__(self, name, check(value) if check is not None else value)

    def clear_case(self) -> None:
        self.layers.clear()
        self.saliency = None
        self._set_quietly(volume=None, item=None, notices=())
        self.caseChanged.emit(None, None)
        for name in ("volume", "item", "notices"):
            getattr(self.events, name).emit(getattr(self, name))

    @staticmethod
    def initial_cursor(volume: Volume, mask: Volume | None = None) -> np.ndarray:
        """Where a reader starts: on an annotated finding when there is one, else the centre,
        moved off slices the reader filled in (missing from the series) when it lands on one."""
        if mask is not None:
            found = np.argwhere(np.asarray(mask.data) > 0.5)
            if len(found):
                return mask.voxel_to_world(found.mean(axis=0))
        ijk = (np.asarray(volume.shape) - 1) / 2.0
        filler = volume.meta.get("filler_slices")
        if filler:
            axis = int(volume.meta.get("slice_axis", 2))
            real = [k for k in range(volume.shape[axis]) if k not in set(filler)]
            if real:
                ijk[axis] = min(real, key=lambda k: abs(k - ijk[axis]))
        return volume.voxel_to_world(ijk)

    @staticmethod
    def _case_notices(volume: Volume, item) -> tuple[Notice, ...]:
        case = getattr(item, "id", None) or volume.name
        return tuple(Notice("reader", str(w), case) for w in volume.meta.get("warnings", []))

    # --- notices -----------------------------------------------------------------------------------
    def add_notice(self, key: str, text: str) -> None:
        case = getattr(self.item, "id", None) or (self.volume.name if self.volume is not None else None)
        kept = [n for n in self.notices if n.key != key]
        self.notices = (*kept, Notice(key, text, case))

    def dismiss_notice(self, key: str) -> None:
        self.notices = tuple(n for n in self.notices if n.key != key)

    # --- window / level ------------------------------------------------------------------------
    def presets(self) -> dict[str, Window]:
        """Window presets for the volume on screen: the file's own first, then CT's for CT."""
        return window_presets(self.volume) if self.volume is not None else dict(CT_PRESETS)

    def apply_preset(self, name: str) -> None:
        if name == "auto":
            if self.volume is not None:
                from vol3d_gui.core.windowing import auto_window

                self.window = auto_window(self.volume.data)
            return
        presets = self.presets()
        if name not in presets:
            raise ValueError(f"unknown window preset {name!r}; choose from {', '.join(presets)}")
        self.window = presets[name]

    # --- overlays -------------------------------------------------------------------------------------
    def add_overlay(self, volume: Volume, name: str, **props) -> OverlayLayer:
        return self.layers.append(OverlayLayer(volume, name, **props))

    def remove_overlay(self, name: str) -> None:
        self.layers.remove(name)

    def update_overlay(self, name: str, **changes) -> None:
        self.layers[name].update(**changes)

    @property
    def overlays(self) -> dict[str, OverlayLayer]:
        return {layer.name: layer for layer in self.layers.overlays}

    # --- readout --------------------------------------------------------------------------------------
    def readout(self, world=None) -> str:
        """Voxel index, RAS mm and value at a world point (the cursor by default)."""
        vol = self.volume
        world = self.cursor if world is None else world
        if vol is None or world is None:
            return ""
        x, y, z = np.asarray(world, dtype=np.float64)
        pos = f"RAS ({x:.1f}, {y:.1f}, {z:.1f}) mm"
        ident = " ".join(str(vol.meta[k]) for k in ("modality", "SeriesDescription", "series_description")
                         if vol.meta.get(k))
        ident = f"  [{ident}]" if ident else ""
        ijk = vol.nearest_voxel(world)
        if ijk is None:
            return f"{pos}  outside the volume{ident}"
        value = vol.data[ijk]
        vtxt = f"{value:.4g}" if np.issubdtype(type(value), np.floating) else f"{value}"
        return f"voxel ({ijk[0]}, {ijk[1]}, {ijk[2]})  {pos}  value {vtxt}{ident}"
