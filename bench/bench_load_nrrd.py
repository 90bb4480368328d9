"""Load a 512x512x300 int16 NRRD (gzip and raw): vol3d's bounded decoder against pynrrd's read.

vol3d decodes NRRD data itself (the output buffer sized from the header, the inflater stopped
when it is full, see core/readers/nrrd.py); this measures what that costs or saves against
pynrrd, which inflates the whole stream first.
"""

import tempfile
from pathlib import Path

import nrrd
import numpy as np

from bench.common import interleaved, report
from vol3d_gui.core.io import load_volume
from vol3d_gui.core.phantom import lesion_phantom


def main(repeat: int = 5) -> dict:
    vol, _ = lesion_phantom(0, True, shape=(512, 512, 300), spacing=(0.7, 0.7, 1.0))
    header = {"space": "right-anterior-superior", "space directions": np.diag([0.7, 0.7, 1.0])}
    results = {}
    with tempfile.TemporaryDirectory() as d:
        for encoding in ("gzip", "raw"):
            path = Path(d) / f"ct-{encoding}.nrrd"
            nrrd.write(str(path), np.asarray(vol.data), {**header, "encoding": encoding}, index_order="F")

            def ours(path=path):
                return load_volume(path).data

            def pynrrd_read(path=path):
                return nrrd.read(str(path), index_order="F")[0]

            np.testing.assert_array_equal(ours(), pynrrd_read())
            t = interleaved({"vol3d": ours, "pynrrd": pynrrd_read}, repeat=repeat)
            results[encoding] = {"size_mb": path.stat().st_size / 2**20, **t,
                                 "ratio_vol3d_over_pynrrd": t["vol3d"]["median_s"] / t["pynrrd"]["median_s"]}
    return report("load_nrrd", {"file": "512x512x300 int16 .nrrd", **results})


if __name__ == "__main__":
    main()
