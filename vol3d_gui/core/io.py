"""Reading and writing volumes: NIfTI, DICOM series, NRRD, MINC and MGZ, all to RAS+ Volumes.

Every failure a user can cause comes back as one typed error, VolumeReadError, whose
message names the file and the reason; nothing else escapes ``load_volume``.
"""

from __future__ import annotations

from pathlib import Path

from vol3d_gui.core.errors import VolumeReadError
from vol3d_gui.core.readers.budget import (
    check_budget,
    memory_budget,
    open_regular,
    set_memory_budget,
)
from vol3d_gui.core.readers.dicom import SeriesInfo, list_series, load_dicom, load_series
from vol3d_gui.core.readers.dicom.files import is_regular_file
from vol3d_gui.core.readers.minc_mgz import SUFFIXES as NIBABEL_SUFFIXES
from vol3d_gui.core.readers.minc_mgz import load_minc_mgz
from vol3d_gui.core.readers.nifti import load_nifti, save_nifti
from vol3d_gui.core.readers.nrrd import load_nrrd
from vol3d_gui.core.volume import Volume

__all__ = [
    "VOLUME_SUFFIXES",
    "SeriesInfo",
    "VolumeReadError",
    "check_budget",
    "is_volume_file",
    "list_series",
    "load_series",
    "load_series_volume",
    "load_volume",
    "memory_budget",
    "save_nifti",
    "set_memory_budget",
]

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", *NIBABEL_SUFFIXES)
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suf in (".nii.gz", *VOLUME_SUFFIXES, *DICOM_SUFFIXES):
        if name.endswith(suf):
            return suf
    return path.suffix.lower()


def is_volume_file(path) -> bool:
    """True for NIfTI, NRRD, MINC and MGZ files (DICOM files are read as series, by folder).

    Only regular files count: a FIFO or device named like a volume is never opened."""
    return _suffix(Path(path)) in VOLUME_SUFFIXES and is_regular_file(path)


def _looks_like_dicom(path: Path) -> bool:
    try:  # a FIFO or device must not be opened (it would block or never end)
        with open_regular(path) as fh:
            head = fh.read(132)
    except (OSError, VolumeReadError):
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def load_volume(path, *, series: str | None = None) -> Volume:
    """Load a NIfTI/NRRD/MINC/MGZ file, or a DICOM series (a folder or any file in it), as RAS+."""
    path = Path(path)
    if not path.exists():
        raise VolumeReadError(path, "no such file or folder")
    try:
        if path.is_dir():
            return load_dicom(path, series=series)
        if not is_regular_file(path):
            raise VolumeReadError(path, "not a regular file (a FIFO, device or socket is never read)")
        suf = _suffix(path)
        if suf in (".nii", ".nii.gz"):
            return load_nifti(path)
        if suf in (".nrrd", ".nhdr"):
            return load_nrrd(path)
        if suf in NIBABEL_SUFFIXES:
            return load_minc_mgz(path)
        if suf in DICOM_SUFFIXES or _looks_like_dicom(path):
            return load_dicom(path, series=series)
        raise VolumeReadError(path, f"unsupported file type {suf or '(no suffix)'!r}; expected NIfTI "
                                    "(.nii, .nii.gz), NRRD (.nrrd), MINC (.mnc), MGZ (.mgz) or DICOM")
    except VolumeReadError:
        raise
    except MemoryError as exc:
        raise VolumeReadError(path, "not enough memory to decode the volume") from exc
    except Exception as exc:  # a reader library failing on a malformed file
        raise VolumeReadError(path, f"could not read the file ({type(exc).__name__}: {exc})") from exc


def load_series_volume(info: SeriesInfo, folder=None) -> Volume:
    """Decode a DICOM series found by list_series, without reading its headers again."""
    path = Path(folder) if folder is not None else info.files[0].parent
    try:
        return load_series(info, path)
    except VolumeReadError:
        raise
    except MemoryError as exc:
        raise VolumeReadError(path, "not enough memory to decode the volume") from exc
    except Exception as exc:
        raise VolumeReadError(path, f"could not read the series ({type(exc).__name__}: {exc})") from exc

