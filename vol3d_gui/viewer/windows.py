"""The window a case opens with, and the presets offered for it.

The file's own window when it has one, CT presets for CT, robust percentiles of a sample of
the data otherwise (core.windowing). MR and other non-CT data never get a CT preset.
"""

from __future__ import annotations

from vol3d_gui.core.volume import Volume
from vol3d_gui.core.windowing import CT_PRESETS, Window, default_window


def initial_window(volume: Volume) -> Window:
    return default_window(volume)


def window_presets(volume: Volume) -> dict[str, Window]:
    """Named windows for the volume: the file's own (in order), then the CT presets (a reader
    may pick one for any volume; only the opening window is chosen by modality)."""
    presets: dict[str, Window] = {}
    names = list(volume.meta.get("window_preset_names") or [])  # the file's explanations
    for i, pair in enumerate(volume.meta.get("window_presets") or []):
        try:
            center, width = pair
            window = Window(float(center), float(width))
        except (TypeError, ValueError):
            continue
        name = str(names[i]) if i < len(names) and names[i] else f"file {i + 1}"
        presets[name if name not in presets and name not in CT_PRESETS else f"file: {name}"] = window
    presets.update(CT_PRESETS)
    return presets


def dragged_window(start: Window, dx: float, dy: float) -> Window:
    """Right-drag by (dx, dy) screen pixels: horizontal widens, vertical lowers the level,
    both scaled to the width the drag started from (a CT and a 0..1 map feel the same)."""
    scale = max(start.width, 1e-3) / 200.0
    return Window(start.center - dy * scale, max(start.width + dx * scale, start.width * 1e-3, 1e-6))
