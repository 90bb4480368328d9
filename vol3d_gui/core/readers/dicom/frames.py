"""From DICOM headers to placed frames, and from frames to series.

A frame is one 2-D image placed in the patient: a classic single-frame file, or one frame
of an enhanced multi-frame object, whose geometry comes from its per-frame functional
groups with the shared ones as fallback (PS3.3 C.7.6.16). Frames of one SeriesInstanceUID
become one or more series: split by dimension index (echoes, phases, b-values), by
orientation and matrix (a localiser is its own item), and where positions jump (a stray
slice far from the stack is its own item, not a volume of filler).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vol3d_gui.core.errors import VolumeReadError

# A gap of up to this many slice steps is missing slices (filled, with a notice); a larger
# one splits the stack: 4 missing slices in a row still read as one volume.
MAX_GAP_SLOTS = 5
# Dimension index pointers that place a frame in space: they order a stack, not split it.
_SPATIAL_POINTERS = {0x00209057, 0x00200032, 0x00201041}  # InStackPosition, IPP, SliceLocation


@dataclass
class Frame:
    path: Path
    index: int | None  # frame number inside a multi-frame file; None for a classic slice
    iop: np.ndarray  # (6,) row then column direction cosines, LPS
    ipp: np.ndarray  # (3,) LPS position of the first pixel
    spacing: tuple[float, float]  # (row spacing, column spacing) in mm
    rows: int
    cols: int
    slope: float = 1.0
    intercept: float = 0.0
    dims: tuple = ()  # non-spatial dimension index values (echo, phase, ...)

    @property
    def normal(self) -> np.ndarray:
        n = np.cross(self.iop[:3], self.iop[3:])
        return n / np.linalg.norm(n)


@dataclass
class SeriesInfo:
    uid: str
    description: str
    n_slices: int
    modality: str
    files: list[Path] = field(default_factory=list, repr=False)
    key: str = ""  # what load_volume(series=...) and item ids use: the uid, or uid~N for a part
    note: str = ""  # why this is a part of a series (localiser, stray slice, echo 2, ...)
    frames: list[Frame] = field(default_factory=list, repr=False)
    header: object = field(default=None, repr=False)  # the first file's header (no pixels)
    headers: dict = field(default_factory=dict, repr=False)  # path -> header, read once

    def __post_init__(self) -> None:
        self.key = self.key or self.uid

    @property
    def spacing(self) -> tuple[float, float, float] | None:
        """(column, row, slice) spacing in mm, the slice one from positions; None if unknown."""
        if not self.frames:
            return None
        f0 = self.frames[0]
        pos = sorted(float(np.dot(f0.normal, f.ipp)) for f in self.frames)
        gaps = np.diff(pos)
        gaps = gaps[gaps > 1e-4]
        step = float(np.median(gaps)) if gaps.size else slice_thickness(self.header)
        return f0.spacing[1], f0.spacing[0], step

    def __str__(self) -> str:
        desc = self.description or "(no description)"
        note = f" ({self.note})" if self.note else ""
        return f"{desc}{note} [{self.modality}] {self.n_slices} slices"


def slice_thickness(ds) -> float:
    for key in ("SpacingBetweenSlices", "SliceThickness"):
        try:
            v = float(ds.get(key))
        except (TypeError, ValueError):
            continue
        if np.isfinite(v) and v > 0:
            return v
    return 1.0


def _floats(path, value, n: int, what: str) -> np.ndarray:
    try:
        arr = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise VolumeReadError(path, f"malformed {what}") from exc
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise VolumeReadError(path, f"malformed {what}")
    return arr


def _item(ds, seq: str, tag_owner: str):
    """The single item of a functional group sequence holding ``tag_owner``, or None."""
    try:
        items = ds.get(seq)
        return items[0] if items and tag_owner in items[0] else None
    except (TypeError, IndexError, AttributeError):
        return None


def _group(per_frame, shared, seq: str, keyword: str):
    for groups in (per_frame, shared):
        item = _item(groups, seq, keyword) if groups is not None else None
        if item is not None:
            return item.get(keyword)
    return None


def _check_orientation(path, iop: np.ndarray, spacing) -> None:
    n = np.cross(iop[:3], iop[3:])
    if (np.linalg.norm(n) < 1e-6 or abs(np.linalg.norm(iop[:3]) - 1) > 0.05
            or abs(np.linalg.norm(iop[3:]) - 1) > 0.05):
        raise VolumeReadError(path, "ImageOrientationPatient rows and columns are not unit "
                                    "vectors at an angle: cannot place the image")
    if min(spacing) <= 0:
        raise VolumeReadError(path, "malformed PixelSpacing (not positive)")


def _matrix(path, ds) -> tuple[int, int]:
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError) as exc:
        raise VolumeReadError(path, "no Rows/Columns: not an image") from exc
    if rows < 1 or cols < 1:
        raise VolumeReadError(path, f"image of {rows}x{cols} pixels")
    return rows, cols


def classic_frame(path: Path, ds) -> Frame:
    rows, cols = _matrix(path, ds)
    try:
        iop, ipp, ps = ds.ImageOrientationPatient, ds.ImagePositionPatient, ds.PixelSpacing
    except AttributeError as exc:
        raise VolumeReadError(path, "slice lacks ImageOrientationPatient / ImagePositionPatient / "
                                    "PixelSpacing: cannot place it in the patient") from exc
    iop = _floats(path, iop, 6, "ImageOrientationPatient")
    spacing = tuple(_floats(path, ps, 2, "PixelSpacing"))
    _check_orientation(path, iop, spacing)
    return Frame(path, None, iop, _floats(path, ipp, 3, "ImagePositionPatient"), spacing, rows, cols,
                 _number(ds.get("RescaleSlope"), 1.0), _number(ds.get("RescaleIntercept"), 0.0))


def _number(value, default: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return v if np.isfinite(v) else default


def number_of_frames(ds) -> int:
    try:
        return max(int(ds.get("NumberOfFrames", 1) or 1), 1)
    except (TypeError, ValueError):
        return 1


def enhanced_frames(path: Path, ds) -> list[Frame]:
    """The frames of an enhanced multi-frame object, placed by its functional groups."""
    rows, cols = _matrix(path, ds)
    n = number_of_frames(ds)
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    if len(per_frame) != n:
        raise VolumeReadError(path, f"{n} frames but {len(per_frame)} per-frame functional groups")
    pointers = [int(item.get("DimensionIndexPointer", 0) or 0)
                for item in ds.get("DimensionIndexSequence") or []]
    keep = [i for i, p in enumerate(pointers) if p not in _SPATIAL_POINTERS]
    frames = []
    for k, groups in enumerate(per_frame):
        iop = _group(groups, shared, "PlaneOrientationSequence", "ImageOrientationPatient")
        ipp = _group(groups, shared, "PlanePositionSequence", "ImagePositionPatient")
        ps = _group(groups, shared, "PixelMeasuresSequence", "PixelSpacing")
        if iop is None or ipp is None or ps is None:
            raise VolumeReadError(path, f"frame {k + 1} lacks plane position, orientation or pixel "
                                        "measures: cannot place it in the patient")
        iop = _floats(path, iop, 6, "ImageOrientationPatient")
        spacing = tuple(_floats(path, ps, 2, "PixelSpacing"))
        _check_orientation(path, iop, spacing)
        slope = _group(groups, shared, "PixelValueTransformationSequence", "RescaleSlope")
        inter = _group(groups, shared, "PixelValueTransformationSequence", "RescaleIntercept")
        index_values = _group(groups, None, "FrameContentSequence", "DimensionIndexValues")
        if index_values is not None and not isinstance(index_values, (list, tuple)):
            index_values = [index_values]
        try:
            values = [int(v) for v in index_values or ()]
        except (TypeError, ValueError):
            values = []
        dims = tuple(values[i] for i in keep if i < len(values))
        frames.append(Frame(path, k, iop, _floats(path, ipp, 3, "ImagePositionPatient"), spacing,
                            rows, cols, _number(slope, 1.0), _number(inter, 0.0), dims))
    return frames


def dimension_names(ds) -> list[str]:
    """Names of the non-spatial dimensions of an enhanced object (for item notes)."""
    from pydicom.datadict import keyword_for_tag

    names = []
    for item in ds.get("DimensionIndexSequence") or []:
        pointer = int(item.get("DimensionIndexPointer", 0) or 0)
        if pointer not in _SPATIAL_POINTERS:
            names.append(keyword_for_tag(pointer) or f"({pointer:08X})")
    return names


def _split_positions(frames: list[Frame]) -> list[list[Frame]]:
    """Sort one orientation's frames along the normal; split where the position jumps."""
    normal = frames[0].normal
    placed = sorted(frames, key=lambda f: float(np.dot(normal, f.ipp)))
    pos = np.array([float(np.dot(normal, f.ipp)) for f in placed])
    gaps = np.diff(pos)
    real = gaps[gaps > 1e-4]
    if real.size < 2:  # one or two positions: nothing to compare a jump against
        return [placed]
    step = float(np.median(real))
    parts, start = [], 0
    for i, gap in enumerate(gaps):
        if gap > MAX_GAP_SLOTS * step * (1 + 1e-3):
            parts.append(placed[start : i + 1])
            start = i + 1
    parts.append(placed[start:])
    return parts


def _same_grid(a: Frame, b: Frame) -> bool:
    """Same orientation (within 1e-3, scanners round differently), pixel spacing and matrix."""
    return (np.allclose(a.iop, b.iop, atol=1e-3) and np.allclose(a.spacing, b.spacing, rtol=1e-3)
            and (a.rows, a.cols) == (b.rows, b.cols))


def _group_frames(frames: list[Frame]) -> dict[tuple, list[Frame]]:
    """Frames grouped by dimension index values and grid; a group's first frame is its reference
    (tolerances, not rounding: rounding would split 0.99949 from 0.99951)."""
    groups: dict[tuple, list[Frame]] = defaultdict(list)
    refs: list[tuple[tuple, Frame]] = []
    for f in frames:
        for key, ref in refs:
            if key[1] == f.dims and _same_grid(ref, f):
                groups[key].append(f)
                break
        else:
            key = (len(refs), f.dims)
            refs.append((key, f))
            groups[key].append(f)
    return groups


def split_series(uid: str, description: str, modality: str, frames: list[Frame], headers: dict,
                 dim_names: list[str]) -> list[SeriesInfo]:
    """One SeriesInstanceUID's frames as one or more series, the largest keeping the uid."""
    groups = _group_frames(frames)
    parts: list[tuple[list[Frame], str]] = []
    by_dims = {key[-1] for key in groups}
    for key, members in groups.items():
        dims_note = ""
        if len(by_dims) > 1 and key[-1]:
            dims_note = ", ".join(f"{n} {v}" for n, v in zip(dim_names or ["index"] * len(key[-1]),
                                                               key[-1]))
        pieces = _split_positions(members)
        for piece in pieces:
            parts.append((piece, dims_note))
    parts.sort(key=lambda p: (-len(p[0]), str(p[0][0].path), p[0][0].index or 0))
    biggest = len(parts[0][0])
    out = []
    for n, (piece, dims_note) in enumerate(parts):
        notes = [dims_note] if dims_note else []
        if n and not dims_note:
            notes.append("localiser or other orientation" if not _same_grid(piece[0], parts[0][0][0]) else
                         f"{len(piece)} slice(s) apart from the main stack of {biggest}")
        files = list(dict.fromkeys(f.path for f in piece))
        out.append(SeriesInfo(uid, description, len(piece), modality, files,
                              key=uid if n == 0 else f"{uid}~{n + 1}", note="; ".join(notes),
                              frames=piece, header=headers[files[0]],
                              headers={p: headers[p] for p in files}))
    return out
