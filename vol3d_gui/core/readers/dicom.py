"""DICOM series via pydicom.

Slices are ordered by their position along the slice normal (not by file name or
InstanceNumber), the spacing between slices comes from those positions (SliceThickness
is often wrong or means something else), RescaleSlope/Intercept give HU for CT, and the
patient-based LPS coordinates of DICOM are converted to RAS+.
"""

from __future__ import annotations

import contextlib
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vol3d_gui.core.errors import VolumeReadError
from vol3d_gui.core.readers.budget import check_budget
from vol3d_gui.core.readers.nifti import reorient_to_ras
from vol3d_gui.core.volume import Volume

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
# Relative spacing deviation tolerated before slices count as unevenly spaced.
_SPACING_TOL = 0.05


@dataclass
class SeriesInfo:
    uid: str
    description: str
    n_slices: int
    modality: str
    files: list[Path] = field(default_factory=list, repr=False)

    def __str__(self) -> str:
        desc = self.description or "(no description)"
        return f"{desc} [{self.modality}] {self.n_slices} slices"


def _read_headers(folder: Path) -> list[tuple[Path, object]]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    out = []
    for f in sorted(folder.iterdir()):
        if not f.is_file() or f.name.startswith("."):
            continue
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError,
                AttributeError, IndexError, OverflowError, struct.error):
            continue
        if "SeriesInstanceUID" not in ds:
            continue
        out.append((f, ds))
    return out


def _group(headers) -> dict[str, SeriesInfo]:
    series: dict[str, SeriesInfo] = {}
    for f, ds in headers:
        uid = str(ds.SeriesInstanceUID)
        info = series.get(uid)
        if info is None:
            info = series[uid] = SeriesInfo(uid, str(ds.get("SeriesDescription", "")).strip(), 0,
                                            str(ds.get("Modality", "")))
        info.files.append(f)
        info.n_slices += 1
    return series


def list_series(folder) -> list[SeriesInfo]:
    """The DICOM series in one folder (not its subfolders), largest first; [] if none."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(_group(_read_headers(folder)).values(), key=lambda s: (-s.n_slices, s.uid))


def _choose(path: Path, series_map: dict[str, SeriesInfo], series: str | None, hint_uid: str | None):
    if not series_map:
        raise VolumeReadError(path, "no DICOM files found in the folder")
    if series is not None:
        matches = [s for s in series_map.values() if series in (s.uid, s.description)]
        if not matches:
            names = "; ".join(f"{s.uid} ({s})" for s in series_map.values())
            raise VolumeReadError(path, f"no series {series!r} here; available: {names}")
        return matches[0]
    if hint_uid and hint_uid in series_map:
        return series_map[hint_uid]
    return max(series_map.values(), key=lambda s: (s.n_slices, s.uid))


def _geometry(path: Path, ds):
    try:
        iop = np.asarray([float(v) for v in ds.ImageOrientationPatient], dtype=np.float64)
        ipp = np.asarray([float(v) for v in ds.ImagePositionPatient], dtype=np.float64)
        ps = [float(v) for v in ds.PixelSpacing]
    except (AttributeError, TypeError, ValueError) as exc:
        raise VolumeReadError(path, "slice lacks ImageOrientationPatient / ImagePositionPatient / "
                                    "PixelSpacing: cannot place it in the patient") from exc
    if iop.shape != (6,) or ipp.shape != (3,) or len(ps) != 2 or min(ps) <= 0:
        raise VolumeReadError(path, "malformed slice geometry")
    return iop, ipp, ps


def load_dicom(path, *, series: str | None = None) -> Volume:
    import pydicom

    path = Path(path)
    folder = path if path.is_dir() else path.parent
    hint_uid = None
    if path.is_file():
        try:
            hint_uid = str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)
        except Exception as exc:
            raise VolumeReadError(path, f"not a readable DICOM file ({exc})") from exc
    headers = _read_headers(folder)
    if not headers:
        has_files = any(f.is_file() for f in folder.iterdir())
        raise VolumeReadError(folder, "no DICOM files found in the folder" if has_files
                              else "the folder is empty")
    series_map = _group(headers)
    info = _choose(folder, series_map, series, hint_uid)
    by_file = dict(headers)
    slices = [(f, by_file[f]) for f in info.files]

    first = slices[0][1]
    if int(first.get("NumberOfFrames", 1) or 1) > 1:
        raise VolumeReadError(slices[0][0], "multi-frame (enhanced) DICOM is not supported yet")
    iop, _, ps = _geometry(slices[0][0], first)
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    if np.linalg.norm(normal) < 1e-6:
        raise VolumeReadError(slices[0][0], "ImageOrientationPatient rows and columns are parallel")
    normal /= np.linalg.norm(normal)

    placed = []
    for f, ds in slices:
        s_iop, s_ipp, s_ps = _geometry(f, ds)
        if not np.allclose(s_iop, iop, atol=1e-3) or not np.allclose(s_ps, ps, rtol=1e-3):
            raise VolumeReadError(f, "slices of the series differ in orientation or pixel spacing")
        placed.append((float(np.dot(normal, s_ipp)), s_ipp, f, ds))
    placed.sort(key=lambda t: t[0])
    warnings: list[str] = []
    dedup = [placed[0]]
    for p in placed[1:]:
        if abs(p[0] - dedup[-1][0]) < 1e-4:
            continue
        dedup.append(p)
    if len(dedup) < len(placed):
        warnings.append(f"{len(placed) - len(dedup)} duplicate slice position(s) ignored")
    placed = dedup
    if len(placed) < 2:
        raise VolumeReadError(folder, "the series has a single slice: a 2-D image, not a volume")

    pos = np.array([p[0] for p in placed])
    gaps = np.diff(pos)
    step = float(np.median(gaps))
    ratios = gaps / step
    slots = np.rint(ratios).astype(int)
    if np.any(slots < 1) or np.any(np.abs(ratios - slots) > _SPACING_TOL):
        raise VolumeReadError(
            folder, f"uneven slice spacing (gaps from {gaps.min():.3g} to {gaps.max():.3g} mm): "
                    "cannot build a regular volume")
    index = np.concatenate([[0], np.cumsum(slots)])
    n_total = int(index[-1]) + 1
    if n_total > len(placed):
        missing = n_total - len(placed)
        where = [f"{pos[i] + step:.1f}" for i in np.nonzero(slots > 1)[0]]
        warnings.append(f"{missing} missing slice(s) after position(s) {', '.join(where)} mm "
                        "along the normal: filled with the series minimum")

    rows, cols = int(first.Rows), int(first.Columns)
    check_budget(folder, (cols, rows, n_total), np.float32)

    pixels = []
    slopes, inters = [], []
    for _, _, f, _ in placed:
        ds = pydicom.dcmread(f)
        if "PixelData" not in ds:
            raise VolumeReadError(f, "the DICOM file has no pixel data")
        try:
            arr = ds.pixel_array
        except Exception as exc:
            raise VolumeReadError(f, f"cannot decode pixel data ({exc})") from exc
        if arr.shape != (rows, cols):
            raise VolumeReadError(f, f"slice is {arr.shape}, expected {(rows, cols)}")
        pixels.append(arr)
        slopes.append(float(ds.get("RescaleSlope", 1) or 1))
        inters.append(float(ds.get("RescaleIntercept", 0) or 0))

    stack = np.stack(pixels, axis=-1)  # (rows, cols, n)
    slopes_a, inters_a = np.asarray(slopes), np.asarray(inters)
    integral = np.all(slopes_a == 1) and np.all(inters_a == np.round(inters_a))
    if integral:
        lo = int(stack.min()) + int(inters_a.min())
        hi = int(stack.max()) + int(inters_a.max())
        out_dtype = np.int16 if lo >= -32768 and hi <= 32767 else np.int32
        vals = stack.astype(out_dtype) + inters_a.astype(out_dtype)
    else:
        vals = stack.astype(np.float32) * slopes_a.astype(np.float32) + inters_a.astype(np.float32)

    data = np.full((cols, rows, n_total), vals.min(), dtype=vals.dtype)
    data[:, :, index] = np.transpose(vals, (1, 0, 2))  # voxel (i=column, j=row, k=slice)

    ipp0 = placed[0][1]
    slice_vec = normal * step
    if len(placed) > 1:
        # follow the real positions (gantry tilt shears the stack), one step per slot
        slice_vec = (placed[-1][1] - ipp0) / (n_total - 1)
    lps = np.eye(4)
    lps[:3, 0] = row_dir * ps[1]
    lps[:3, 1] = col_dir * ps[0]
    lps[:3, 2] = slice_vec
    lps[:3, 3] = ipp0
    affine = _LPS_TO_RAS @ lps
    data, affine, orig = reorient_to_ras(data, affine)

    meta = {
        "format": "DICOM",
        "modality": info.modality,
        "series_description": info.description,
        "series_uid": info.uid,
        "n_files": len(placed),
        "original_orientation": orig,
        "warnings": warnings,
    }
    for key in ("WindowCenter", "WindowWidth"):
        if key in first:
            v = first.get(key)
            with contextlib.suppress(TypeError, ValueError):
                meta[key] = float(v[0] if hasattr(v, "__len__") and not isinstance(v, str) else v)
    name = info.description or folder.name
    return Volume(data, affine, name=name, source=str(folder), meta=meta)
