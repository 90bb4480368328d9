"""Fine-tuning: throughput against a plain model.fit, whether it helps where it should, and
how responsive the window stays while it runs.

1. throughput: vol3d's train_model (progress callback, stop polling, held-out scoring) vs a
   plain ``model.compile`` + ``model.fit`` on the same arrays and batch size, same process,
   whole runs from the same initial weights; volumes per second.
2. domain shift: the bundled phantom model on phantoms unlike its training data (lower lesion
   contrast; a low-dose scan's noise): accuracy on 200 new phantoms before and after
   fine-tuning on 40 labelled ones.
3. responsiveness: a QTimer ticking every 10 ms in the GUI process while the ML worker
   fine-tunes (in its service process); p99 and maximum gap between ticks.
"""

import time
from pathlib import Path

import numpy as np

from bench.common import interleaved, report

MODEL = Path(__file__).resolve().parents[1] / "models" / "phantom-lesion.keras"


def _throughput(n=64, batch=8, epochs=3, repeat=5):
    """Volumes per second of a whole fine-tuning run (compile, trace, fit) both ways, from the
    same initial weights, interleaved so machine drift hits both; best of ``repeat``."""
    import keras

    from vol3d_gui.ml.architecture import build_classifier
    from vol3d_gui.ml.training import train_model

    rng = np.random.default_rng(0)
    x = rng.random((n, 48, 48, 36, 1)).astype(np.float32)
    y = rng.integers(0, 2, n)
    base = build_classifier((48, 48, 36), 2, width=8, head="cam", stem_stride=2)
    weights = base.get_weights()

    def fresh():
        m = keras.models.clone_model(base)
        m.set_weights(weights)
        return m

    def ours():
        # what the GUI runs: per-batch progress, stop polling, held-out scoring each epoch
        train_model(fresh(), x, y, x[:8], y[:8], epochs=epochs, batch_size=batch, on_batch=lambda *a: None,
                    should_stop=lambda: False, monitor="loss", keep_initial=True)

    def plain():
        m = fresh()
        m.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"])
        m.fit(x, np.eye(2)[y], batch_size=batch, epochs=epochs, verbose=0)

    # one warm-up run each: TensorFlow's one-time start-up costs fall on neither side
    t = interleaved({"plain": plain, "ours": ours}, repeat=repeat, warmup=1)
    t_ours, t_plain = t["ours"]["best_s"], t["plain"]["best_s"]
    return {"n": n, "batch_size": batch, "epochs": epochs,
            "vol3d_volumes_per_s": n * epochs / t_ours, "plain_fit_volumes_per_s": n * epochs / t_plain,
            "throughput_ratio": t_plain / t_ours}


SHIFTS = {
    # lesions at 0.4x the contrast the model was trained on (20-32 HU instead of 50-80)
    "lower lesion contrast (0.4x)": {"contrast": 0.4},
    # a low-dose scan: 40 HU noise instead of 12 (lesions at full contrast, grainier)
    "low-dose noise (40 HU)": {"noise_hu": 40.0},
}


def _domain_shift(shift: dict, n_label=40, n_test=200, epochs=30, learning_rate=1e-4):
    """The bundled phantom model on phantoms unlike its training data: accuracy on ``n_test``
    new phantoms before and after fine-tuning on ``n_label`` labelled ones (the defaults of
    the GUI's dialog: a 25% stratified held-out part picks the epoch)."""
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
    vols = [lesion_phantom(int(s), bool(lab), **shift)[0] for s, lab in zip(seeds, labels)]
    test_x = np.stack([base.preprocess(v) for v in vols[n_label:]])
    before = evaluate_probs(labels[n_label:], predict_arrays(base.model, test_x), base.class_names)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        rep = finetune_bundle(base, vols[:n_label], labels[:n_label], out_dir=d, epochs=epochs,
                              learning_rate=learning_rate, held_out=0.25, augment=False)
        seconds = time.perf_counter() - t0
        new = load_bundle(rep["path"])
        after = evaluate_probs(labels[n_label:], predict_arrays(new.model, test_x), base.class_names)
    return {**shift, "n_labelled": n_label, "n_test": n_test, "epochs": epochs,
            "best_epoch": rep["card"]["finetune"]["best_epoch"], "finetune_seconds": seconds,
            "test_accuracy_before": before["accuracy"], "test_accuracy_after": after["accuracy"],
            "test_auc_before": before["auc"], "test_auc_after": after["auc"],
            "accuracy_gain_points": 100 * (after["accuracy"] - before["accuracy"])}


DOMAIN_SHIFT_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from bench.bench_finetune import _domain_shift, _throughput
from bench.bench_finetune import SHIFTS
print(json.dumps({"throughput": _throughput(),
                  "domain_shift": {name: _domain_shift(shift) for name, shift in SHIFTS.items()}}))
"""


def _responsiveness(seconds_max=240.0):
    """Timer gaps in a GUI process while the worker fine-tunes in its service process
    (40 volumes preprocessed on the worker thread, their model-grid tensors sent, 10 epochs)."""
    import tempfile
    from types import SimpleNamespace

    from PySide6 import QtCore

    from vol3d_gui.core.phantom import lesion_phantom
    from vol3d_gui.ui.app import make_app
    from vol3d_gui.ui.ml_controller import MLController

    class Receiver(QtCore.QObject):
        """Slots that live in the GUI thread, so the tasks' signals arrive queued there."""

        def __init__(self):
            super().__init__()
            self.loaded, self.done, self.ticks = [], [], []

        @QtCore.Slot()
        def on_tick(self):
            self.ticks.append(time.perf_counter())

        @QtCore.Slot(object)
        def on_loaded(self, bundle):
            self.loaded.append(bundle)

        @QtCore.Slot()
        def on_finished(self):
            self.done.append(True)

    app = make_app()
    ml = MLController()
    rx = Receiver()
    loaded = rx.loaded
    ml.modelLoaded.connect(rx.on_loaded)
    ml.load_model(str(MODEL))
    while not loaded:
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
    vols = [lesion_phantom(1000 + i, bool(i % 2), contrast=0.4)[0] for i in range(40)]
    items = [SimpleNamespace(load=lambda v=v: v) for v in vols]
    out_dir = tempfile.mkdtemp(prefix="vol3d-bench-ft-")
    task = ml.finetune(items, [i % 2 for i in range(40)], {"out_dir": out_dir, "epochs": 10})
    task.finished.connect(rx.on_finished)
    ticks = rx.ticks
    timer = QtCore.QTimer()
    timer.setInterval(10)
    timer.timeout.connect(rx.on_tick)
    timer.start()
    t0 = time.perf_counter()
    while not rx.done and time.perf_counter() - t0 < seconds_max:
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 5)
    timer.stop()
    ml.stop()
    import shutil

    shutil.rmtree(out_dir, ignore_errors=True)
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
