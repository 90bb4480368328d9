"""DICOM via pydicom: classic and enhanced multi-frame series, compressed transfer syntaxes.

Compressed pixel data is decoded by pydicom's pylibjpeg plugins (pylibjpeg-libjpeg: JPEG
baseline/extended/lossless and JPEG-LS; pylibjpeg-openjpeg: JPEG 2000; pylibjpeg-rle:
RLE); deflate is inflated here with a limit (files.py). pylibjpeg over python-gdcm: the
plugins are small wheels that pydicom drives through its own decoder interface, each
plugin also encodes (tests build compressed objects with them), and they expose the
codestream's declared size before decoding, which the budget checks need.

``list_series`` scans one folder (each header read once); ``load_series`` decodes one of
the series it found; ``load_dicom`` does both for a path given on the command line.
"""

from __future__ import annotations

from pathlib import Path

from vol3d_gui.core.errors import VolumeReadError
from vol3d_gui.core.readers.dicom.assemble import load_series as _load_stack
from vol3d_gui.core.readers.dicom.files import is_regular_file, read_dicom
from vol3d_gui.core.readers.dicom.frames import SeriesInfo
from vol3d_gui.core.readers.dicom.mosaic import load_mosaic
from vol3d_gui.core.readers.dicom.scan import build_series, read_headers, scan_folder
from vol3d_gui.core.volume import Volume

__all__ = ["SeriesInfo", "list_series", "load_dicom", "load_series", "scan_folder"]


def list_series(folder) -> list[SeriesInfo]:
    """The DICOM series in one folder (not its subfolders), largest first; [] if none."""
    return scan_folder(folder)


def load_series(info: SeriesInfo, folder=None) -> Volume:
    """Decode one series found by list_series/scan_folder (no header is read again)."""
    folder = Path(folder) if folder is not None else info.files[0].parent
    if info.note == "Siemens mosaic":
        return load_mosaic(info)
    return _load_stack(info, folder)


def _choose(path: Path, found: list[SeriesInfo], series: str | None, hint_uid: str | None,
            hint_file: Path | None = None):
    if series is not None:
        for attr in ("key", "uid", "description"):
            matches = [s for s in found if getattr(s, attr) == series]
            if matches:
                return matches[0]
        names = "; ".join(f"{s.key} ({s})" for s in found)
        raise VolumeReadError(path, f"no series {series!r} here; available: {names}")
    if hint_file is not None:
        for s in found:  # the part of the series that holds the file given (a localiser, say)
            if hint_file in s.files:
                return s
    if hint_uid:
        for s in found:  # largest first: the main part of the file's series
            if s.uid == hint_uid:
                return s
    return found[0]


def load_dicom(path, *, series: str | None = None) -> Volume:
    """A DICOM series from a folder or any file of it; ``series`` is a key, UID or description."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    hint_uid = None
    if not path.is_dir():
        if not is_regular_file(path):
            raise VolumeReadError(path, "not a regular file (a FIFO, device or folder is never read)")
        try:
            hint_uid = str(read_dicom(path, header_only=True).SeriesInstanceUID)
        except VolumeReadError:
            raise
        except Exception as exc:
            raise VolumeReadError(path, f"not a readable DICOM file ({exc})") from exc
    headers = read_headers(folder)
    if not headers:
        try:
            has_files = any(f.is_file() for f in folder.iterdir())
        except OSError as exc:
            raise VolumeReadError(folder, f"cannot list the folder ({exc.strerror or exc})") from exc
        raise VolumeReadError(folder, "no DICOM files found in the folder" if has_files
                              else "the folder is empty")
    found, skipped = build_series(headers)
    if not found:
        reason = next(iter(skipped.values()), "no DICOM images found in the folder")
        raise VolumeReadError(next(iter(skipped), folder), reason)
    hint_file = None if path.is_dir() else path
    if hint_file is not None and series is None and hint_file in skipped:
        # the file asked for cannot be read: say why, rather than open other files of its series
        # (pydicom's test folder holds a 15-frame RT dose next to 1-frame copies of its first frame)
        raise VolumeReadError(hint_file, skipped[hint_file])
    return load_series(_choose(folder, found, series, hint_uid, hint_file), folder)
