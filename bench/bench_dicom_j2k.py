"""Read a JPEG 2000 DICOM series against the same series uncompressed (both vol3d's reader).

The bench writes both series to a temporary folder itself: a CT phantom, one file per
slice, the J2K copy encoded losslessly by pylibjpeg-openjpeg through pydicom's
Dataset.compress. Encoding 300 slices of 512x512 takes minutes on two cores, so the default
is 60 slices; ``python -m bench dicom_j2k --full`` runs the 300-slice size of issue 12.
The headline is the ratio of the two read times (J2K decode cost over plain reading).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import interleaved, report
from vol3d_gui.core.io import list_series, load_volume
from vol3d_gui.core.phantom import lesion_phantom


def _write_series(folder: Path, hu: np.ndarray, spacing, compress: bool) -> None:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

    folder.mkdir(parents=True)
    series_uid, study_uid = generate_uid(), generate_uid()
    nx, ny, nz = hu.shape
    for k in range(nz):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"{k:04d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.Modality, ds.SeriesDescription = "CT", "bench phantom"
        ds.ImagePositionPatient = [0.0, 0.0, float(k * spacing[2])]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [spacing[1], spacing[0]]
        ds.Rows, ds.Columns = ny, nx
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = np.ascontiguousarray(hu[:, :, k].T).astype("<i2").tobytes()
        if compress:
            ds.compress(JPEG2000Lossless, generate_instance_uid=False)
        ds.save_as(folder / f"{k:04d}.dcm", enforce_file_format=True)


def main(repeat: int = 3) -> dict:
    n_slices = 300 if "--full" in sys.argv else 60
    vol, _ = lesion_phantom(0, True, shape=(512, 512, n_slices), spacing=(0.7, 0.7, 1.0))
    hu = np.asarray(vol.data, dtype=np.int16)
    with tempfile.TemporaryDirectory() as d:
        plain, j2k = Path(d) / "plain", Path(d) / "j2k"
        _write_series(plain, hu, (0.7, 0.7, 1.0), compress=False)
        t0 = time.perf_counter()
        _write_series(j2k, hu, (0.7, 0.7, 1.0), compress=True)
        encode_s = time.perf_counter() - t0
        np.testing.assert_array_equal(load_volume(j2k).data, load_volume(plain).data)
        t = interleaved({"uncompressed": lambda: load_volume(plain),
                         "jpeg2000": lambda: load_volume(j2k),
                         "list_j2k_folder": lambda: list_series(j2k)}, repeat=repeat)
        size = {name: sum(p.stat().st_size for p in f.iterdir()) / 2**20
                for name, f in (("uncompressed", plain), ("jpeg2000", j2k))}
        return report("dicom_j2k", {
            "series": f"512x512x{n_slices} int16 CT phantom, one file per slice",
            "size_mb": size, "encode_s": encode_s, **t,
            "ratio_jpeg2000_over_uncompressed": t["jpeg2000"]["median_s"] / t["uncompressed"]["median_s"],
            "listing_share_of_j2k_read": t["list_j2k_folder"]["median_s"] / t["jpeg2000"]["median_s"],
        })


if __name__ == "__main__":
    main()
