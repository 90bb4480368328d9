"""MINC-1/-2 (.mnc) and FreeSurfer MGH/MGZ (.mgh, .mgz) through nibabel.

nibabel parses the header and affine; the voxels are read from its array proxy only after
the shape has passed the budget (an .mgz inflates no more than the shape declares).
MINC-2 is HDF5, which nibabel reads with h5py.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import nibabel as nib
import numpy as np

from vol3d_gui.core.errors import VolumeReadError
from vol3d_gui.core.readers.budget import check_budget, check_shape
from vol3d_gui.core.readers.dicom.files import is_regular_file
from vol3d_gui.core.readers.nifti import reorient_to_ras
from vol3d_gui.core.volume import Volume

SUFFIXES = (".mnc", ".mgz", ".mgh")


def _display_dtype(data: np.ndarray, stored: np.dtype) -> np.ndarray:
    """nibabel scales MINC to float64: back to the stored integer type when nothing was
    lost, else float32 (the app never keeps float64 voxels)."""
    if data.dtype.kind == "f" and stored.kind in "iu":
        info = np.iinfo(stored)
        if np.all(np.isfinite(data)) and np.all(data == np.round(data)) and (
                data.size == 0 or (data.min() >= info.min and data.max() <= info.max)):
            return data.astype(stored)
    if data.dtype == np.float64:
        return data.astype(np.float32)
    return data


def load_minc_mgz(path) -> Volume:
    path = Path(path)
    if not is_regular_file(path):
        raise VolumeReadError(path, "not a regular file (a FIFO, device or folder is never read)")
    fmt = "MINC" if path.name.lower().endswith(".mnc") else "MGH/MGZ"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nibabel's MINC warnings on odd attributes
            img = nib.load(path)
            shape = check_shape(path, img.shape)
            stored = np.dtype(img.get_data_dtype()).newbyteorder("=")
            if len(shape) == 4 and fmt == "MINC":
                # nibabel keeps MINC's file order, time first, with a 3-D affine: ambiguous
                raise VolumeReadError(path, f"4-D MINC {shape} is not supported: extract one frame")
            check_budget(path, shape, np.float32 if stored.itemsize <= 4 else np.float64)
            proxy = img.dataobj
            data = np.asarray(proxy[..., 0] if len(shape) == 4 else proxy)
            affine = np.asarray(img.affine, dtype=np.float64)
    except VolumeReadError:
        raise
    except Exception as exc:
        raise VolumeReadError(path, f"not a readable {fmt} file ({type(exc).__name__}: {exc})") from exc
    if data.ndim != 3:
        raise VolumeReadError(path, f"not a 3-D volume: shape {data.shape}")
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise VolumeReadError(path, "the header's affine is singular or not finite")
    data = _display_dtype(data, stored)
    data, affine, orig = reorient_to_ras(data, affine)
    meta = {"format": fmt, "original_orientation": orig, "warnings": []}
    if len(shape) == 4 and shape[3] > 1:
        meta["warnings"].append(f"4-D series of {shape[3]} volumes: showing the first")
    name = path.name
    for suf in SUFFIXES:
        if name.lower().endswith(suf):
            name = name[: -len(suf)]
    return Volume(data, affine, name=name, source=str(path), meta=meta)
