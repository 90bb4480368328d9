"""Read a JPEG 2000 DICOM series against the same series uncompressed (both vol3d's reader).

The bench writes both series to a temporary folder itself: a CT phantom, one file per
slice, the J2K copy encoded losslessly by pylibjpeg-openjpeg through pydicom's
Dataset.compress. Encoding 300 slices of 512x512 takes minutes on two cores, so the default
is 60 slices; ``python -m bench dicom_j2k --full`` runs the 300-slice size of issue 12.
The headline is the ratio of the two read times (J2K decode cost over plain reading); the J2K
series is also read with its frames decoded in the reading thread (VOL3D_DECODE_WORKERS=0), the
way it was before the decode workers.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import interleaved, report, write_dicom_series
from vol3d_gui.core.io import list_series, load_volume
from vol3d_gui.core.phantom import lesion_phantom


def _in_this_thread(folder):
    os.environ["VOL3D_DECODE_WORKERS"] = "0"
    try:
        return load_volume(folder)
    finally:
        del os.environ["VOL3D_DECODE_WORKERS"]


def main(repeat: int = 3) -> dict:
    n_slices = 300 if "--full" in sys.argv else 60
    vol, _ = lesion_phantom(0, True, shape=(512, 512, n_slices), spacing=(0.7, 0.7, 1.0))
    hu = np.asarray(vol.data, dtype=np.int16)
    with tempfile.TemporaryDirectory() as d:
        plain, j2k = Path(d) / "plain", Path(d) / "j2k"
        write_dicom_series(plain, hu, (0.7, 0.7, 1.0), compress=False)
        t0 = time.perf_counter()
        write_dicom_series(j2k, hu, (0.7, 0.7, 1.0), compress=True)
        encode_s = time.perf_counter() - t0
        np.testing.assert_array_equal(load_volume(j2k).data, load_volume(plain).data)
        t = interleaved({"uncompressed": lambda: load_volume(plain),
                         "jpeg2000": lambda: load_volume(j2k),
                         "jpeg2000_decoded_in_this_thread": lambda: _in_this_thread(j2k),
                         "list_j2k_folder": lambda: list_series(j2k)}, repeat=repeat)
        size = {name: sum(p.stat().st_size for p in f.iterdir()) / 2**20
                for name, f in (("uncompressed", plain), ("jpeg2000", j2k))}
        return report("dicom_j2k", {
            "series": f"512x512x{n_slices} int16 CT phantom, one file per slice",
            "size_mb": size, "encode_s": encode_s, **t,
            "ratio_jpeg2000_over_uncompressed": t["jpeg2000"]["median_s"] / t["uncompressed"]["median_s"],
            "ratio_workers_over_this_thread": t["jpeg2000"]["median_s"]
            / t["jpeg2000_decoded_in_this_thread"]["median_s"],
            "listing_share_of_j2k_read": t["list_j2k_folder"]["median_s"] / t["jpeg2000"]["median_s"],
        })


if __name__ == "__main__":
    main()
