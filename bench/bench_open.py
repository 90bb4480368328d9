"""Opening a real-size case in the real window: does the GUI thread stay free?

A 512x512x300 int16 .nii.gz and a 300-file 512x512 DICOM series (both written to a temp
folder by this bench) are opened with File > Open's code path while a 10 ms QTimer runs; the
gaps between its ticks are the event loop's waits. Reported: p99 and maximum gap from the
request until the case is on screen (slices drawn, 3-D texture uploaded), and the same after
it (the 3-D view's first frames), against the budget of 50 ms; the time to open; and the full
garbage collections during the open (each one a pause of the whole process).
A Cancel in the middle of a second open must leave the first case on screen.
With --compressed, a 60-file JPEG 2000 series too (its frames decode in worker processes).

Run under a display, e.g. xvfb-run -a -s "-screen 0 1600x1000x24 +extension GLX +render".
"""

import gc
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import report, write_dicom_series


def _write_cases(folder: Path, shape=(512, 512, 300), compressed: bool = False):
    import nibabel as nib

    from vol3d_gui.core.phantom import lesion_phantom

    vol, _ = lesion_phantom(0, True, shape=shape, spacing=(0.7, 0.7, 1.0))
    nii = folder / "ct.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(vol.data, np.int16), vol.affine), nii)
    dcm = folder / "series"
    write_dicom_series(dcm, np.asarray(vol.data, np.int16), (0.7, 0.7, 1.0))
    cases = [("nifti", nii), ("dicom", dcm)]
    if compressed:
        j2k = folder / "j2k"
        write_dicom_series(j2k, np.asarray(vol.data[:, :, :60], np.int16), (0.7, 0.7, 1.0), compress=True)
        cases.append(("dicom_j2k_60", j2k))
    return cases


class _Collections:
    """The garbage collector's pauses (each holds the GIL: the window waits them out)."""

    def __init__(self):
        self.pauses, self._t0 = [], 0.0
        gc.callbacks.append(self._on)

    def _on(self, phase, info):
        if phase == "start":
            self._t0 = time.perf_counter()
        elif info["generation"] == 2:
            self.pauses.append((time.perf_counter() - self._t0) * 1000)

    def take(self) -> list[float]:
        out, self.pauses = self.pauses, []
        return [round(p, 1) for p in out]


def _gaps_while(app, condition, timeout_s=120.0):
    from PySide6 import QtCore

    ticks = []
    timer = QtCore.QTimer()
    timer.setInterval(10)
    timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    t0 = time.perf_counter()
    while not condition() and time.perf_counter() - t0 < timeout_s:
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 5)
        time.sleep(0.001)
    elapsed = time.perf_counter() - t0
    timer.stop()
    gaps = np.diff(ticks) * 1000 if len(ticks) > 1 else np.array([elapsed * 1000])
    return elapsed, gaps


def main() -> dict:
    from vol3d_gui.ui.app import make_app

    app = make_app()
    # the app imports the readers in the background once its window is up (ui.app.start_gui):
    # the first open then pays no import, and neither does this measurement
    import vol3d_gui.core.io  # noqa: F401
    from vol3d_gui.ui.app import freeze_startup_objects
    from vol3d_gui.ui.main_window import MainWindow

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cases = _write_cases(Path(tmp), compressed="--compressed" in sys.argv)
        nii = cases[0][1]
        print(f"  (cases written in {time.perf_counter() - t0:.1f} s)", file=sys.stderr)
        w = MainWindow()
        w.resize(1400, 900)
        w.show()
        for _ in range(10):
            app.processEvents()
        freeze_startup_objects()  # as start_gui does once the readers are imported
        collections = _Collections()
        for label, path in cases:
            before = w.viewer.volume
            w.open_path(path, wait=False)
            collections.take()
            elapsed, gaps = _gaps_while(app, lambda b=before: w.viewer.volume is not b and not w.io.busy)
            full_gc_ms = collections.take()
            _, after = _gaps_while(app, lambda: False, timeout_s=1.5)  # the 3-D view's first frames
            results[label] = {"open_s": round(elapsed, 2), "ticks": len(gaps),
                              "gap_p99_ms": round(float(np.percentile(gaps, 99)), 1),
                              "gap_max_ms": round(float(gaps.max()), 1),
                              "after_gap_max_ms": round(float(after.max()), 1),
                              "full_collections_ms": full_gc_ms,
                              "shape": list(w.viewer.volume.shape)}
        shown = w.viewer.volume
        w.open_path(nii, wait=False)
        _gaps_while(app, lambda: False, timeout_s=0.3)
        w.io.cancel()
        _gaps_while(app, lambda: False, timeout_s=0.5)
        results["cancel_keeps_case"] = w.viewer.volume is shown and not w.io.busy
        w.close()
        w.io.shutdown()
    return report("open", results)


if __name__ == "__main__":
    main()
