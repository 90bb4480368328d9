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
