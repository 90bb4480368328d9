"""The DICOM series of a folder: every header read once, grouped and split into items."""

from __future__ import annotations

import struct
from collections import defaultdict
from pathlib import Path

from vol3d_gui.core.cooperate import checkpoint
from vol3d_gui.core.errors import VolumeReadError
from vol3d_gui.core.readers.dicom.files import is_regular_file, read_dicom
from vol3d_gui.core.readers.dicom.frames import (
    SeriesInfo,
    classic_frame,
    dimension_names,
    enhanced_frames,
    number_of_frames,
    split_series,
)


def _read_header(path: Path):
    """The header of one file, or None when it is not a DICOM image we can place."""
    from pydicom.errors import InvalidDicomError

    try:
        ds = read_dicom(path, header_only=True)
    except (InvalidDicomError, VolumeReadError, OSError, EOFError, ValueError, TypeError, KeyError,
            AttributeError, IndexError, OverflowError, NotImplementedError, struct.error):
        return None
    return ds if "SeriesInstanceUID" in ds else None


def read_headers(folder: Path) -> dict[Path, object]:
    """path -> header of every DICOM file directly in ``folder`` (one read per file)."""
    out = {}
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return out
    for f in entries:
        # stat before opening: a FIFO or device in the folder is never opened
        if f.name.startswith(".") or not is_regular_file(f):
            continue
        checkpoint()
        ds = _read_header(f)
        if ds is not None:
            out[f] = ds
    return out


def _is_mosaic(ds) -> bool:
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    return "MOSAIC" in image_type


def _mosaic_slices(ds) -> int:
    """Slices packed in a mosaic, from the Siemens CSA header (1 when it cannot be read)."""
    from vol3d_gui.core.readers.dicom.mosaic import nicom_wrappers

    try:
        return int(nicom_wrappers().wrapper_from_data(ds).n_mosaic)
    except Exception:
        return 1


def build_series(headers: dict[Path, object]) -> tuple[list[SeriesInfo], dict[Path, str]]:
    """Series from headers, largest first; and the files left out with the reason why."""
    by_uid: dict[str, list] = defaultdict(list)
    for path, ds in headers.items():
        by_uid[str(ds.SeriesInstanceUID)].append((path, ds))
    series: list[SeriesInfo] = []
    skipped: dict[Path, str] = {}
    for uid, members in by_uid.items():
        first = members[0][1]
        description = str(first.get("SeriesDescription", "") or "").strip()
        modality = str(first.get("Modality", "") or "")
        frames, mosaics = [], []
        dim_names: list[str] = []
        for path, ds in members:
            checkpoint()  # the first look at a fresh header converts its elements: pure Python
            try:
                if _is_mosaic(ds):
                    mosaics.append(path)
                elif number_of_frames(ds) > 1 or "PerFrameFunctionalGroupsSequence" in ds:
                    frames.extend(enhanced_frames(path, ds))
                    dim_names = dim_names or dimension_names(ds)
                else:
                    frames.append(classic_frame(path, ds))
            except VolumeReadError as exc:
                skipped[path] = exc.reason
        headers_here = dict(members)
        if frames:
            series.extend(split_series(uid, description, modality, frames, headers_here, dim_names))
        for n, path in enumerate(sorted(mosaics)):
            # a mosaic file is a whole volume by itself (nibabel's nicom unpacks it)
            key = uid if not frames and n == 0 else f"{uid}~m{n + 1}"
            series.append(SeriesInfo(uid, description, _mosaic_slices(headers_here[path]), modality,
                                     [path], key=key,
                                     note="Siemens mosaic", header=headers_here[path],
                                     headers={path: headers_here[path]}))
    series.sort(key=lambda s: (-s.n_slices, s.uid, s.key))
    return series, skipped


def scan_folder(folder) -> list[SeriesInfo]:
    """The DICOM series directly in one folder (not its subfolders), largest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return build_series(read_headers(folder))[0]
