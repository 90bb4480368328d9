"""Fine-tuning: throughput against a plain model.fit, whether it helps where it should, and
how responsive the window stays while it runs.

1. throughput: vol3d's train_model (progress callback, stop polling, val AUC tracking) vs a
   plain ``model.fit`` on the same arrays and batch size, same process; volumes per second.
2. domain shift: the bundled phantom model on phantoms whose lesions have 0.4x the contrast it
   was trained on: held-out accuracy before and after fine-tuning on 40 labelled items.
3. responsiveness: a QTimer ticking every 10 ms in the GUI process while the ML worker
   fine-tunes (in its service process); p99 and maximum gap between ticks.
"""

import time
from pathlib import Path

import numpy as np

from bench.common import report

MODEL = Path(__file__).resolve().parents[1] / "models" / "phantom-lesion.keras"


def _throughput(n=48, batch=8, epochs=2):
    import keras

    from vol3d_gui.ml.architecture import build_classifier
    from vol3d_gui.ml.training import train_model

    rng = np.random.default_rng(0)
    x = rng.random((n, 48, 48, 36, 1)).astype(np.float32)
    y = rng.integers(0, 2, n)
    xv, yv = x[:8], y[:8]
    m1 = build_classifier((48, 48, 36), 2, width=8)
    m2 = keras.models.clone_model(m1)
    train_model(m1, x[:8], y[:8], epochs=1, batch_size=batch)  # warm both graphs up
    m2.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"])
    m2.fit(x[:8], np.eye(2)[y[:8]], batch_size=batch, epochs=1, verbose=0)
    t0 = time.perf_counter()
    train_model(m1, x, y, xv, yv, epochs=epochs, batch_size=batch, on_batch=lambda *a: None,
                should_stop=lambda: False)
    ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    m2.fit(x, np.eye(2)[y], batch_size=batch, epochs=epochs, verbose=0)
    plain = time.perf_counter() - t0
    return {"vol3d_volumes_per_s": n * epochs / ours, "plain_fit_volumes_per_s": n * epochs / plain,
            "throughput_ratio": plain / ours}


def _domain_shift(n_label=40, n_test=60, contrast=0.4, epochs=15):
    import tempfile

    from vol3d_gui.core.phantom import lesion_phantom
    from vol3d_gui.ml.bundle import load_bundle
    from vol3d_gui.ml.evaluation import evaluate_probs
    from vol3d_gui.ml.finetune import finetune_bundle
    from vol3d_gui.ml.training import predict_arrays

    base = load_bundle(MODEL)
    rng = np.random.default_rng(42)
    seeds = rng.integers(0, 2**31 - 1, n_label + n_test)
    labels = np.array([i % 2 for i in range(n_label + n_test)])
    vols = [lesion_phantom(int(s), bool(lab), contrast=contrast)[0] for s, lab in zip(seeds, labels)]
    test_x = np.stack([base.preprocess(v) for v in vols[n_label:]])
    before = evaluate_probs(labels[n_label:], predict_arrays(base.model, test_x), base.class_names)
    with tempfile.TemporaryDirectory() as d:
        rep = finetune_bundle(base, vols[:n_label], labels[:n_label], out_dir=d, epochs=epochs,
                              learning_rate=3e-4, held_out=0.25)
        new = load_bundle(rep["path"])
        after = evaluate_probs(labels[n_label:], predict_arrays(new.model, test_x), base.class_names)
    return {"contrast": contrast, "n_labelled": n_label, "n_test": n_test, "epochs": epochs,
            "test_accuracy_before": before["accuracy"], "test_accuracy_after": after["accuracy"],
            "test_auc_before": before["auc"], "test_auc_after": after["auc"],
            "accuracy_gain_points": 100 * (after["accuracy"] - before["accuracy"])}


DOMAIN_SHIFT_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from bench.bench_finetune import _domain_shift, _throughput
print(json.dumps({"throughput": _throughput(), "domain_shift": _domain_shift()}))
"""


def _responsiveness(seconds_max=240.0):
    """Timer gaps in a GUI process while the worker fine-tunes in its service process."""
    from PySide6 import QtCore

    from vol3d_gui.core.phantom import lesion_phantom
    from vol3d_gui.ui.app import make_app
    from vol3d_gui.ui.workers import MLWorker

    class Receiver(QtCore.QObject):
        """Slots that live in the GUI thread, so the worker's signals arrive queued there."""

        def __init__(self):
            super().__init__()
            self.loaded, self.done, self.ticks = [], [], []

        @QtCore.Slot()
        def on_tick(self):
            self.ticks.append(time.perf_counter())

        @QtCore.Slot(object)
        def on_loaded(self, bundle):
            self.loaded.append(bundle)

        @QtCore.Slot(int)
        def on_finished(self, job_id):
            self.done.append(job_id)

    app = make_app()
    worker = MLWorker()
    rx = Receiver()
    loaded = rx.loaded
    worker.modelLoaded.connect(rx.on_loaded)
    worker.load_model(str(MODEL))
    while not loaded:
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
    vols = [lesion_phantom(1000 + i, bool(i % 2), contrast=0.4)[0] for i in range(16)]
    job = worker.submit("finetune", lambda ctx: ctx.call(
        "call", module="vol3d_gui.ml.finetune", function="run_in_service",
        kwargs={"volumes": vols, "labels": [i % 2 for i in range(16)], "out_dir": "/tmp/vol3d-bench-ft",
                "epochs": 3}))
    worker.finished.connect(rx.on_finished)
    ticks = rx.ticks
    timer = QtCore.QTimer()
    timer.setInterval(10)
    timer.timeout.connect(rx.on_tick)
    timer.start()
    t0 = time.perf_counter()
    while job not in rx.done and time.perf_counter() - t0 < seconds_max:
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 5)
    timer.stop()
    worker.stop()
    import shutil

    shutil.rmtree("/tmp/vol3d-bench-ft", ignore_errors=True)
    gaps = np.diff(ticks) * 1e3
    return {"timer_ticks": len(ticks), "gap_p99_ms": float(np.percentile(gaps, 99)),
            "gap_max_ms": float(gaps.max()), "finetune_seconds": time.perf_counter() - t0}


def main() -> dict:
    import json
    import subprocess
    import sys

    if not MODEL.exists():
        raise SystemExit("bench_finetune needs models/phantom-lesion.keras")
    root = str(Path(__file__).resolve().parents[1])
    # TensorFlow work in a child process: this process runs Qt for the responsiveness part
    out = subprocess.run([sys.executable, "-c", DOMAIN_SHIFT_SCRIPT, root], capture_output=True, text=True,
                         check=True, cwd=root)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["responsiveness"] = _responsiveness()
    return report("finetune", res)


if __name__ == "__main__":
    main()
