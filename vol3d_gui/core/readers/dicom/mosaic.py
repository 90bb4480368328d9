"""Siemens mosaic: one file whose image is a grid of slices, unpacked by nibabel's nicom
(it reads the slice count and positions from the Siemens CSA header), or refused saying so."""

from __future__ import annotations

import warnings

import numpy as np

from vol3d_gui.core.errors import VolumeReadError
from vol3d_gui.core.readers.budget import check_nbytes
from vol3d_gui.core.readers.dicom.files import read_dicom
from vol3d_gui.core.readers.dicom.frames import SeriesInfo
from vol3d_gui.core.readers.nifti import reorient_to_ras
from vol3d_gui.core.volume import Volume

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def nicom_wrappers():
    with warnings.catch_warnings():  # nicom warns on import that it is experimental
        warnings.simplefilter("ignore")
        from nibabel.nicom import dicomwrappers
    return dicomwrappers


def load_mosaic(info: SeriesInfo) -> Volume:
    dicomwrappers = nicom_wrappers()

    path = info.files[0]
    header = info.headers[path]
    try:
        rows, cols = int(header.Rows), int(header.Columns)
        bits = int(header.BitsAllocated)
    except (AttributeError, TypeError, ValueError) as exc:
        raise VolumeReadError(path, "Siemens mosaic without a pixel description") from exc
    # the packed image, the unpacked slices and their float rescale
    check_nbytes(path, rows * cols * (max(bits // 8, 1) * 2 + 4), "unpacking the mosaic")
    try:
        ds = read_dicom(path, header_only=False, inflate_limit=rows * cols * 4 + (1 << 20))
        wrapper = dicomwrappers.wrapper_from_data(ds)
        if not getattr(wrapper, "is_mosaic", False):
            raise ValueError("nibabel finds no mosaic layout in the Siemens CSA header")
        data = np.asarray(wrapper.get_data())
        affine_lps = np.asarray(wrapper.affine, dtype=np.float64)
    except VolumeReadError:
        raise
    except Exception as exc:
        raise VolumeReadError(path, f"a Siemens mosaic that cannot be unpacked ({type(exc).__name__}: "
                                    f"{exc}); convert it with dcm2niix") from exc
    if data.ndim != 3:
        raise VolumeReadError(path, f"the unpacked mosaic has shape {data.shape}, not a 3-D volume")
    if (np.issubdtype(data.dtype, np.floating) and np.all(data == np.round(data))
            and data.min() >= -32768 and data.max() <= 32767):
        data = data.astype(np.int16)
    affine = _LPS_TO_RAS @ affine_lps  # nibabel's wrapper affine is in DICOM's LPS
    data, affine, orig = reorient_to_ras(data, affine)
    meta = {"format": "DICOM (Siemens mosaic)", "modality": info.modality,
            "series_description": info.description, "series_uid": info.uid, "series_key": info.key,
            "original_orientation": orig, "warnings": [], "notices": [], "filler_slices": [],
            "window_presets": []}
    return Volume(data, affine, name=info.description or path.name, source=str(path), meta=meta)
