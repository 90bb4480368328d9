"""The ML worker and the model panel in the real window."""

import time

import numpy as np
from PySide6 import QtCore, QtWidgets

from tests.ui.conftest import grab
from vol3d_gui.core.phantom import lesion_phantom, phantom_study
from vol3d_gui.ml.tasks import Progress
from vol3d_gui.ui.ml_tasks import FunctionTask
from vol3d_gui.ui.workers import MLWorker

SMALL = (48, 48, 36)


def test_worker_runs_tasks_in_order_and_reports(qtbot):
    worker = MLWorker()
    try:
        order, progress = [], []

        def job(n):
            def fn(ctx):
                ctx.progress(Progress(n, 3))
                return n
            return fn

        tasks = [FunctionTask("t", job(n)) for n in (1, 2, 3)]
        for t in tasks:
            t.result.connect(order.append)
            t.progress.connect(lambda p: progress.append((p.done, p.total)))
        with qtbot.waitSignal(tasks[-1].finished, timeout=30000):
            for t in tasks:
                worker.submit(t)
        assert order == [1, 2, 3] and progress == [(1, 3), (2, 3), (3, 3)]
        assert [t.state for t in tasks] == ["done"] * 3
        errors = []
        boom = FunctionTask("boom", lambda ctx: 1 / 0)
        boom.failed.connect(errors.append)
        with qtbot.waitSignal(boom.finished, timeout=5000):
            worker.submit(boom)
        assert errors and "ZeroDivisionError" in errors[0] and boom.state == "failed"
    finally:
        worker.stop()


def test_cancel_stops_a_running_task_within_one_step(qtbot):
    worker = MLWorker()
    try:
        steps = []

        def long_job(ctx):
            for i in range(1000):
                if ctx.should_stop():
                    return i
                steps.append(i)
                ctx.progress(Progress(i + 1, 1000))
                time.sleep(0.01)
            return 1000

        cancelled, results = [], []
        task = FunctionTask("long", long_job)
        task.cancelled.connect(lambda: cancelled.append(1))
        task.result.connect(results.append)
        worker.submit(task)
        qtbot.waitUntil(lambda: len(steps) >= 3, timeout=20000)
        with qtbot.waitSignal(task.finished, timeout=5000):
            task.cancel()
            n_at_cancel = len(steps)
        assert cancelled == [1] and results == [] and task.state == "cancelled"
        assert len(steps) <= n_at_cancel + 1
    finally:
        worker.stop()


def _window_with_model(qtbot, window, tiny_bundle_path):
    panel = window.attach_model(str(tiny_bundle_path))
    qtbot.waitUntil(lambda: panel.bundle is not None, timeout=60000)
    return panel


def test_probabilities_and_saliency_appear_after_opening_a_phantom(qtbot, window, tiny_bundle_path):
    panel = _window_with_model(qtbot, window, tiny_bundle_path)
    vol, _ = lesion_phantom(3, True, SMALL)
    window.open_volume(vol)
    qtbot.waitUntil(lambda: panel.probs is not None, timeout=30000)
    assert panel.probs.sum() == np.float64(1.0) or abs(panel.probs.sum() - 1) < 1e-5
    px = grab(panel.chart)
    bars = (np.abs(px[..., 0].astype(int) - 220) < 30) | (np.abs(px[..., 2].astype(int) - 200) < 30) & (px[..., 0] < 120)
    assert bars.sum() > 50, "no bars drawn"
    qtbot.waitUntil(lambda: "saliency" in window.overlays, timeout=30000)
    assert window.current_saliency is not None and window.current_saliency.meta["kind"] == "saliency"
    assert "Model runs on CPU" in window.device_label.text()


def test_bad_model_shows_a_dialog_and_keeps_the_previous(qtbot, window, tiny_bundle_path, tmp_path, monkeypatch):
    panel = _window_with_model(qtbot, window, tiny_bundle_path)
    good = panel.bundle
    shown = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "critical", lambda *a, **k: shown.append(a[2]))
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"garbage")
    (tmp_path / "broken.json").write_text(tiny_bundle_path.with_suffix(".json").read_text())
    panel.load_model(str(bad))
    qtbot.waitUntil(lambda: bool(shown), timeout=30000)
    assert "broken.keras" in shown[0]
    assert panel.bundle is good and panel.ml.bundle is good


def test_classify_all_fills_the_worklist_and_cancel_stops_it(qtbot, window, tiny_bundle_path):
    panel = _window_with_model(qtbot, window, tiny_bundle_path)
    study = phantom_study(n=6, seed=2, shape=SMALL)
    window.open_study(study)
    panel.classify_all()
    qtbot.waitUntil(lambda: panel._all_job is None, timeout=60000)
    assert len(window.worklist_state.predictions) == 6
    # again, cancelled as soon as the first volume is done: stops within one volume
    window.worklist_state.predictions.clear()
    done, at_cancel = [], []

    def cancel_after_first(p):
        done.append(p.done)
        if p.done == 1:
            panel.cancel_all()
            at_cancel.append(len(done))

    def on_submitted(task):  # before it is queued: no progress can be missed
        # direct: the cancel lands while the worker is between volumes, as a click would
        task.progress.connect(cancel_after_first, QtCore.Qt.ConnectionType.DirectConnection)

    panel.ml.submitted.connect(on_submitted)
    panel.classify_all()
    panel.ml.submitted.disconnect(on_submitted)
    qtbot.waitUntil(lambda: panel._all_job is None, timeout=30000)
    qtbot.wait(100)
    # at most the volume already in progress when Cancel was pressed finishes
    assert len(done) <= at_cancel[0] + 1
    assert len(window.worklist_state.predictions) == len(done) < 6


def test_a_single_slice_is_shown_but_not_classified(qtbot, window, tiny_bundle_path):
    from vol3d_gui.core.volume import Volume, isotropic_affine

    panel = _window_with_model(qtbot, window, tiny_bundle_path)
    submitted = []
    real = panel.worker.predict
    panel.worker.predict = lambda *a, **k: submitted.append(a) or real(*a, **k)
    one = Volume(np.arange(48 * 40, dtype=np.int16).reshape(48, 40, 1), isotropic_affine(),
                 name="one slice", meta={"single_slice": True})
    assert window.open_volume(one)
    assert window.viewer.volume is one
    assert "needs a volume" in panel.result_label.text()
    assert submitted == [] and panel.probs is None
