"""From the "next" key to the next case on screen with its prediction, in the real window.

A study of 512x512x300 int16 NIfTI cases (written to a temp folder by this bench) is opened
with the bundled phantom model; the reader looks at each case for ``--dwell`` seconds, then
steps. Timed: from the step (the key's action) until the next case's slices are drawn and the
model panel shows its prediction. With the read-ahead (the next case read, windowed, its 3-D
texture prepared, classified and explained while the reader looks at the current one) and
without it, in the same run.

Run under a display, e.g. xvfb-run -a -s "-screen 0 1600x1000x24 +extension GLX +render".
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import report

N_CASES = 6


def _write_study(folder: Path, n: int, shape=(512, 512, 300)) -> None:
    import nibabel as nib

    from vol3d_gui.core.phantom import lesion_phantom

    for i in range(n):
        vol, _ = lesion_phantom(100 + i, bool(i % 2), shape=shape, spacing=(0.7, 0.7, 1.0))
        nib.save(nib.Nifti1Image(np.asarray(vol.data, np.int16), vol.affine), folder / f"case{i + 1:02d}.nii.gz")


def _pump(app, seconds: float, until=None) -> float:
    from PySide6 import QtCore

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        if until is not None and until():
            break
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 5)
        time.sleep(0.001)
    return time.perf_counter() - t0


def _session(app, folder: Path, prefetch: bool, dwell: float) -> list[float]:
    from vol3d_gui.ui.main_window import MainWindow

    w = MainWindow()
    w.resize(1400, 900)
    w.show()
    w.io.prefetch_enabled = prefetch
    panel = w.attach_model()
    _pump(app, 120, lambda: panel.bundle is not None)
    w.open_path(folder, wait=False)
    _pump(app, 120, lambda: w.current_volume is not None and panel.answer is not None)
    times = []
    for _ in range(N_CASES - 1):
        _pump(app, dwell)  # the reader looks at the case
        current = w.current_item.id
        t0 = time.perf_counter()
        w.review_controller.step(1)

        def shown(current=current):
            ans = panel.answer
            return (w.current_item is not None and w.current_item.id != current and not w.io.busy
                    and ans is not None and ans.get("volume") is w.current_volume)

        _pump(app, 120, shown)
        app.processEvents()  # the slices' paint
        times.append((time.perf_counter() - t0) * 1000)
    w.close()
    return times


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    dwell = next((float(a.split("=", 1)[1]) for a in argv if a.startswith("--dwell=")), 4.0)
    from vol3d_gui.ui.app import make_app

    app = make_app()
    results = {"dwell_s": dwell, "cases": N_CASES, "shape": [512, 512, 300]}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        _write_study(Path(tmp), N_CASES)
        print(f"  (study written in {time.perf_counter() - t0:.1f} s)", file=sys.stderr)
        for label, prefetch in (("with_prefetch", True), ("without_prefetch", False)):
            ms = _session(app, Path(tmp), prefetch, dwell)
            results[label] = {"median_ms": round(statistics.median(ms), 1), "max_ms": round(max(ms), 1),
                              "each_ms": [round(t, 1) for t in ms]}
    results["target_median_ms"] = 150
    return report("next_case", results)


if __name__ == "__main__":
    main()
