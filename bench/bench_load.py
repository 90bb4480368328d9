"""Load a 512x512x300 int16 .nii.gz: vol3d's load_volume against nibabel's own read."""

import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

from bench.common import interleaved, report
from vol3d_gui.core.io import load_volume
from vol3d_gui.core.phantom import lesion_phantom


def main(repeat: int = 5) -> dict:
    vol, _ = lesion_phantom(0, True, shape=(512, 512, 300), spacing=(0.7, 0.7, 1.0))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "ct.nii.gz"
        nib.save(nib.Nifti1Image(vol.data, vol.affine), path)

        def ours():
            return load_volume(path).data

        def nibabel_read():
            return np.asanyarray(nib.load(path).dataobj)

        assert ours().dtype == nibabel_read().dtype == np.int16
        np.testing.assert_array_equal(ours(), nibabel_read())
        t = interleaved({"vol3d": ours, "nibabel": nibabel_read}, repeat=repeat)
        try:
            import indexed_gzip  # noqa: F401
            igz = True
        except ImportError:
            igz = False
        return report("load", {
            "file": "512x512x300 int16 .nii.gz", "size_mb": path.stat().st_size / 2**20,
            "nibabel_uses_indexed_gzip": igz, **t,
            "ratio_vol3d_over_nibabel": t["vol3d"]["median_s"] / t["nibabel"]["median_s"],
        })


if __name__ == "__main__":
    main()
