"""Window/level: CT presets, a robust automatic window, the default window of a volume,
and mapping to display values."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_FLOAT_MAX = float(np.finfo(np.float64).max)
_FLOAT32_SAFE = 1e37  # beyond this a window or a voxel is mapped in float64 (float32 overflows)


@dataclass(frozen=True)
class Window:
    center: float
    width: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.center) and np.isfinite(self.width)):
            raise ValueError(f"window must be finite, got {self.center}/{self.width}")
        if self.width <= 0:
            object.__setattr__(self, "width", 1e-6)

    @property
    def low(self) -> float:
        return self.center - self.width / 2.0

    @property
    def high(self) -> float:
        return self.center + self.width / 2.0

    @classmethod
    def from_range(cls, low: float, high: float) -> Window:
        # halves first and a capped width: a float64 image spanning -1e308..1e308 overflows
        # low + high and high - low to inf
        width = min(float(high) - float(low), _FLOAT_MAX)
        return cls(float(low) / 2.0 + float(high) / 2.0, max(width, 1e-6))

    def __str__(self) -> str:
        return f"W {_readable(self.width)} / L {_readable(self.center)}"


def _readable(value: float) -> str:
    """4 significant digits, never an exponent for display-sized numbers: 12263.4 -> '12260',
    6883.12 -> '6883', 40.0 -> '40', 0.123456 -> '0.1235'."""
    if value == 0:
        return "0"
    magnitude = int(np.floor(np.log10(abs(value))))
    digits = 3 - magnitude  # decimals that keep 4 significant digits
    rounded = round(value, digits)
    if digits <= 0:
        return str(int(rounded))
    return f"{rounded:.{digits}f}".rstrip("0").rstrip(".")


# Standard CT presets (level / width in HU), as in DESIGN.md.
CT_PRESETS: dict[str, Window] = {
    "brain": Window(40, 80),
    "lung": Window(-600, 1500),
    "bone": Window(400, 1800),
    "abdomen": Window(40, 400),
}
CT_PRESETS["soft tissue"] = CT_PRESETS["abdomen"]


def auto_window(
    data: np.ndarray,
    percentiles: tuple[float, float] = (0.5, 99.5),
    max_samples: int = 200_000,
    seed: int = 0,
) -> Window:
    """Window spanning robust percentiles of a random subsample of finite voxels.

    Subsampling keeps this O(max_samples) on a 512x512x300 scan; NaN/Inf are ignored.
    """
    flat = sample_voxels(data, max_samples, seed).astype(np.float64, copy=False)
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return Window(0.5, 1.0)
    lo, hi = np.percentile(flat, percentiles)
    if hi <= lo:  # constant image or a binary mask dominated by one value
        lo, hi = float(flat.min()), float(flat.max())
        if hi <= lo:
            return Window(lo, 1.0)
    return Window.from_range(float(lo), float(hi))


def _float_type(data, window: Window):
    """float32 (fast) unless the data is 64-bit (a float64 of +-1e308 or a uint64 near 2**63
    becomes inf or loses every step in float32) or the window reaches beyond float32's range."""
    dtype = np.asarray(data).dtype
    if dtype.itemsize == 8 and dtype.kind in "iuf":
        return np.float64
    if max(abs(window.low), abs(window.high), window.width) > _FLOAT32_SAFE:
        return np.float64
    return np.float32


def sample_voxels(data, max_samples: int = 200_000, seed: int = 0) -> np.ndarray:
    """Up to max_samples voxels drawn at random positions, as a new 1-D array.

    Indexes each axis with its own random coordinates: reshape(-1) would copy a
    non-contiguous array (a reoriented view) whole, 300 MB for a 512x512x300 float32 scan.
    """
    arr = np.asarray(data)
    if arr.size <= max_samples:
        return np.array(arr, copy=True).reshape(-1)
    rng = np.random.default_rng(seed)
    coords = tuple(rng.integers(0, n, size=max_samples) for n in arr.shape)
    return arr[coords]


def _own_windows(meta: dict) -> list[Window]:
    """The file's windows: meta["window_presets"] as (center, width) pairs, else the single
    WindowCenter/WindowWidth of readers that record only those."""
    pairs = list(meta.get("window_presets") or ())
    if not pairs and "WindowCenter" in meta and "WindowWidth" in meta:
        pairs = [(meta["WindowCenter"], meta["WindowWidth"])]
    out = []
    for preset in pairs:
        try:
            center, width = preset
            w = Window(float(center), float(width))
        except (TypeError, ValueError):
            continue  # a malformed preset in a file is not a reason to fail the display
        if w.width > 1e-6:
            out.append(w)
    return out


def default_window(volume) -> Window:
    """The window a volume opens with.

    The file's own window first (DICOM Window Center/Width; the first of several, the
    others are presets in meta["window_presets"]); then the soft-tissue preset for CT,
    known from the modality only (a signed MR with negative values is not CT); otherwise
    robust percentiles of a sample of the voxels (never a copy of the volume).
    """
    meta = getattr(volume, "meta", {}) or {}
    own = _own_windows(meta)
    if own:
        return own[0]
    if str(meta.get("modality", "")).upper() == "CT":
        return CT_PRESETS["abdomen"]
    return auto_window(volume.data)


def apply_window(data: np.ndarray, window: Window, out_max: int = 255) -> np.ndarray:
    """Map values through a linear window to uint8 [0, out_max]. NaN maps to 0, +Inf to max."""
    ftype = _float_type(data, window)
    arr = np.asarray(data, dtype=ftype)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/Inf voxels and a vanishing width are mapped below
        scale = ftype(out_max / window.width)
        out = (arr - ftype(window.low)) * scale
    np.clip(out, 0, out_max, out=out)
    out = np.nan_to_num(out, nan=0.0, posinf=out_max, neginf=0.0)
    return out.astype(np.uint8)


def to_unit_range(data: np.ndarray, window: Window) -> np.ndarray:
    """Map through a window to float32 [0, 1] (NaN -> 0)."""
    ftype = _float_type(data, window)
    with np.errstate(invalid="ignore", over="ignore"):
        arr = (np.asarray(data, dtype=ftype) - ftype(window.low)) / ftype(window.width)
    np.clip(arr, 0.0, 1.0, out=arr)
    return np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=0.0)

