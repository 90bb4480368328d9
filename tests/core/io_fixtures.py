"""Writers for small test volumes: NIfTI with any orientation, DICOM series, NRRD."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import axcodes2ornt, ornt_transform

REPO_ROOT = Path(__file__).resolve().parents[2]
SHAPE = (20, 24, 16)  # asymmetric on purpose


def marker_volume(shape=SHAPE, dtype=np.int16) -> np.ndarray:
    """RAS+ array: background 0, a bright block at patient right-anterior-superior
    (high indices of every RAS axis), and a dimmer block at left-posterior-inferior."""
    data = np.zeros(shape, dtype)
    x, y, z = shape
    data[x - 5 : x - 2, y - 6 : y - 2, z - 4 : z - 1] = 1000
    data[1:3, 1:3, 1:3] = 300
    return data


def write_nifti_as(path: Path, data_ras: np.ndarray, affine_ras: np.ndarray, axcodes: str) -> nib.Nifti1Image:
    """Write RAS+ data re-stored in another axis order (e.g. 'LPS', 'LAS', 'SRA')."""
    img = nib.Nifti1Image(data_ras, affine_ras)
    ornt = ornt_transform(axcodes2ornt("RAS"), axcodes2ornt(tuple(axcodes)))
    out = img.as_reoriented(ornt)
    assert "".join(nib.aff2axcodes(out.affine)) == axcodes
    nib.save(out, path)
    return out


def write_dicom_series(folder: Path, hu: np.ndarray, *, spacing=(0.7, 0.8, 2.5), origin=(-80.0, -90.0, 30.0),
                       slope=1.0, intercept=-1024.0, series_uid=None, description="test series",
                       shuffle_seed=0, skip=(), modality="CT") -> list[Path]:
    """Write an axial series whose voxel (i, j, k) of ``hu`` (RAS+ order) is the patient point
    origin_ras + (i*sx, j*sy, k*sz); stored in DICOM's LPS with rows running anterior -> posterior.

    Files get shuffled names so that ordering by name would be wrong.
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid()
    nx, ny, nz = hu.shape
    sx, sy, sz = spacing
    # DICOM columns run along +x_LPS (patient left), rows along +y_LPS (posterior)
    stored = ((hu - intercept) / slope).round()
    rng = np.random.default_rng(shuffle_seed)
    names = rng.permutation(nz)
    paths = []
    for k in range(nz):
        if k in skip:
            continue
        # pixel[r, c]: c -> LPS x = -(RAS x): column c is RAS index i = nx-1-c; row r is RAS j = ny-1-r
        px = stored[::-1, ::-1, k].T.astype(np.uint16)
        ras_first = np.array([origin[0] + (nx - 1) * sx, origin[1] + (ny - 1) * sy, origin[2] + k * sz])
        lps_pos = [-ras_first[0], -ras_first[1], ras_first[2]]
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        # the series' own prefix: a sum of the UID's characters (the old prefix) collides for
        # about one pair of random UIDs in a hundred, and the second series overwrote the first's files
        path = folder / f"IM{hashlib.sha1(series_uid.encode()).hexdigest()[:10]}_{names[k]:04d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.Modality = modality
        ds.SeriesDescription = description
        ds.PatientName = "Anon^Test"
        ds.PatientID = "TEST-0001"
        ds.InstanceNumber = int(nz - k)  # reversed on purpose: must not drive the order
        ds.ImagePositionPatient = [f"{v:.4f}" for v in lps_pos]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [sy, sx]  # row spacing, column spacing
        ds.SliceThickness = 99.0  # deliberately wrong: spacing must come from positions
        ds.Rows, ds.Columns = px.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        ds.PixelData = px.tobytes()
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
