"""Colour lookup tables (256 x 3 uint8) for overlays and the 3-D view's transfer function."""

from __future__ import annotations

import numpy as np


def _ramp(stops: list[tuple[float, tuple[int, int, int]]]) -> np.ndarray:
    x = np.linspace(0.0, 1.0, 256)
    pos = np.array([p for p, _ in stops])
    cols = np.array([c for _, c in stops], dtype=np.float64)
    return np.stack([np.interp(x, pos, cols[:, i]) for i in range(3)], axis=1).round().astype(np.uint8)


COLORMAPS: dict[str, np.ndarray] = {
    "grey": _ramp([(0, (0, 0, 0)), (1, (255, 255, 255))]),
    "hot": _ramp([(0, (80, 0, 0)), (0.35, (230, 20, 0)), (0.7, (255, 200, 0)), (1, (255, 255, 230))]),
    "jet": _ramp([(0, (0, 0, 160)), (0.25, (0, 120, 255)), (0.5, (40, 230, 120)),
                  (0.75, (255, 200, 0)), (1, (200, 0, 0))]),
    "inferno": _ramp([(0, (0, 0, 4)), (0.25, (87, 16, 110)), (0.5, (188, 55, 84)),
                      (0.75, (249, 142, 9)), (1, (252, 255, 164))]),
    "red": _ramp([(0, (255, 0, 0)), (1, (255, 0, 0))]),
    "green": _ramp([(0, (0, 220, 60)), (1, (0, 220, 60))]),
    "cyan": _ramp([(0, (0, 220, 255)), (1, (0, 220, 255))]),
    "bone": _ramp([(0, (0, 0, 0)), (0.4, (84, 84, 116)), (0.75, (167, 199, 199)), (1, (255, 255, 255))]),
}


def lut(name: str) -> np.ndarray:
    try:
        return COLORMAPS[name]
    except KeyError:
        raise ValueError(f"unknown colour map {name!r}; choose from {', '.join(COLORMAPS)}") from None


# (center, width, dtype) -> table; a handful of windows are in use at any time
_WINDOW_LUTS: dict[tuple, np.ndarray] = {}


def window_lut(window, dtype) -> np.ndarray | None:
    """uint8 table mapping every value of an 8- or 16-bit integer dtype through ``window``,
    indexed by the value's raw bits read as unsigned; None for other dtypes.

    Windowing a CT slice is then one gather per pixel, and changing the window rebuilds a
    65536-entry table, never touches the volume."""
    from vol3d_gui.core.windowing import apply_window

    dtype = np.dtype(dtype)
    if dtype.kind not in "iu" or dtype.itemsize > 2:
        return None
    key = (float(window.center), float(window.width), dtype.str)
    table = _WINDOW_LUTS.get(key)
    if table is None:
        unsigned = np.dtype(f"u{dtype.itemsize}")
        values = np.arange(1 << (8 * dtype.itemsize), dtype=np.int64).astype(unsigned).view(dtype)
        table = apply_window(values, window)
        if len(_WINDOW_LUTS) >= 16:
            _WINDOW_LUTS.pop(next(iter(_WINDOW_LUTS)))
        _WINDOW_LUTS[key] = table
    return table


def windowed(plane: np.ndarray, window) -> np.ndarray:
    """A 2-D plane of any dtype as uint8 grey levels through ``window`` (NaN -> black)."""
    from vol3d_gui.core.windowing import apply_window

    table = window_lut(window, plane.dtype)
    if table is None:
        return apply_window(plane, window)
    return np.take(table, plane.view(f"u{plane.dtype.itemsize}"))
