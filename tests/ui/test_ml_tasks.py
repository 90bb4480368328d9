"""Typed ML tasks through the ML controller and the real service: priority, supersede-cancel,
cancel of every kind, training a bundle."""

import threading

import pytest
from PySide6 import QtCore, QtWidgets

from vol3d_gui.core.phantom import lesion_phantom, phantom_study
from vol3d_gui.ml.tasks import Priority
from vol3d_gui.ui.ml_controller import MLController
from vol3d_gui.ui.ml_tasks import FunctionTask, GradcamTask

SMALL = (32, 32, 24)
DIRECT = QtCore.Qt.ConnectionType.DirectConnection  # runs in the worker thread, in emission order


@pytest.fixture
def ml(qtbot, tiny_bundle_path):
    ctl = MLController()
    with qtbot.waitSignal(ctl.modelLoaded, timeout=90000):
        ctl.load_model(tiny_bundle_path)
    yield ctl
    ctl.stop()


def _record(task):
    """Every outcome signal of a task, in order."""
    log = []
    task.result.connect(lambda r: log.append(("result", r)), DIRECT)
    task.failed.connect(lambda m: log.append(("failed", m)), DIRECT)
    task.cancelled.connect(lambda: log.append(("cancelled",)), DIRECT)
    return log


def _blocker(ml):
    """A training-priority task that holds the worker until released."""
    gate = threading.Event()
    task = ml.submit(FunctionTask("block", lambda ctx: gate.wait(60), priority=Priority.TRAINING))
    return task, gate


def test_an_on_screen_predict_overtakes_classify_all(qtbot, ml):
    study = phantom_study(n=4, seed=3, shape=SMALL)
    vol, _ = lesion_phantom(7, True, SMALL)
    blocker, gate = _blocker(ml)
    qtbot.waitUntil(lambda: blocker.state == "running", timeout=10000)
    order = []
    batch = ml.classify_all(study.items)
    batch.started.connect(lambda: order.append("classify_all"), DIRECT)
    pred = ml.predict(vol)
    pred.started.connect(lambda: order.append("predict"), DIRECT)
    QtWidgets.QApplication.processEvents()  # the controller releases both to the worker's queue
    with qtbot.waitSignal(batch.finished, timeout=60000):
        gate.set()
    assert order == ["predict", "classify_all"]

    # a running classify-all lets an on-screen predict in between two volumes
    log, first_done, go = [], threading.Event(), threading.Event()

    def on_item(payload):
        log.append(payload["item_id"])
        if len(log) == 1:
            first_done.set()
            go.wait(30)  # hold the batch here until the predict is queued

    batch = ml.classify_all(study.items)
    batch.itemResult.connect(on_item, DIRECT)
    qtbot.waitUntil(first_done.is_set, timeout=60000)
    pred = ml.predict(vol)
    pred.started.connect(lambda: log.append("predict"), DIRECT)
    outcome = _record(pred)
    QtWidgets.QApplication.processEvents()  # queued now, while the batch waits between volumes
    with qtbot.waitSignal(batch.finished, timeout=60000):
        go.set()
    ids = [it.id for it in study.items]
    assert log == [ids[0], "predict", *ids[1:]]
    assert outcome[0][0] == "result" and outcome[0][1]["volume"] is vol


def test_a_superseded_predict_is_cancelled_and_never_delivers(qtbot, ml):
    a_vol, _ = lesion_phantom(1, True, SMALL)
    b_vol, _ = lesion_phantom(2, False, SMALL)
    # queued: dropped at once
    blocker, gate = _blocker(ml)
    a = ml.predict(a_vol)
    a_log = _record(a)
    b = ml.predict(b_vol)
    b_log = _record(b)
    assert a.state == "cancelled" and a_log == [("cancelled",)]
    with qtbot.waitSignal(b.finished, timeout=60000):
        gate.set()
    assert a_log == [("cancelled",)]
    assert b_log[0][0] == "result" and b_log[0][1]["volume"] is b_vol

    # running: stopped, its answer never delivered
    hold, go = threading.Event(), threading.Event()
    a = ml.predict(a_vol)
    a_log = _record(a)
    a.started.connect(lambda: (hold.set(), go.wait(30)), DIRECT)
    qtbot.waitUntil(hold.is_set, timeout=30000)
    assert a.state == "running"
    b = ml.predict(b_vol)
    b_log = _record(b)
    with qtbot.waitSignal(b.finished, timeout=60000):
        go.set()
    qtbot.wait(50)
    assert a_log == [("cancelled",)] and a.state == "cancelled"
    assert b_log[0][0] == "result" and b_log[0][1]["volume"] is b_vol


def test_every_task_kind_cancels_while_queued(qtbot, ml, tiny_bundle_path, tmp_path):
    study = phantom_study(n=6, seed=4, shape=SMALL)
    vol, _ = lesion_phantom(3, True, SMALL)
    labels = [it.label for it in study.items]
    blocker, gate = _blocker(ml)
    tasks = [ml.load_model(tiny_bundle_path), ml.predict(vol), ml.gradcam(vol, 1, key="k"),
             ml.classify_all(study.items), ml.finetune(study.items, labels, {"out_dir": str(tmp_path), "epochs": 1}),
             ml.train(study.items, labels, ml.bundle.card, {"out_path": str(tmp_path / "new.keras"), "epochs": 1})]
    logs = [_record(t) for t in tasks]
    assert [t.kind for t in tasks] == ["load_model", "predict", "gradcam", "classify_all", "finetune", "train"]
    for t in tasks:
        t.cancel()
    assert all(t.state == "cancelled" for t in tasks) and logs == [[("cancelled",)]] * 6
    with qtbot.waitSignal(blocker.finished, timeout=10000):
        gate.set()
    qtbot.waitUntil(lambda: not ml.worker.busy, timeout=10000)
    qtbot.wait(50)
    assert logs == [[("cancelled",)]] * 6
    assert not list(tmp_path.iterdir())


def test_train_writes_a_new_bundle_and_cancel_writes_nothing(qtbot, ml, tmp_path):
    # read_card, not load_bundle: TensorFlow stays out of the GUI process
    from vol3d_gui.ml.bundle import read_card

    study = phantom_study(n=8, seed=5, shape=SMALL, spacing=(4.0, 4.0, 6.0))
    labels = [it.label for it in study.items]
    card = {"name": "fresh", "class_names": ["no lesion", "lesion"], "input_shape": [16, 16, 12],
            "preprocessing": {"type": "hu_window", "low": -200.0, "high": 250.0}}
    stages = []
    task = ml.train(study.items, labels, card, {"out_path": str(tmp_path / "fresh.keras"), "epochs": 2,
                                                "batch_size": 2, "width": 4})
    task.progress.connect(lambda p: stages.append((p.stage, p.epoch)), DIRECT)
    log = _record(task)
    with qtbot.waitSignal(task.finished, timeout=180000):
        pass
    assert log[0][0] == "result", log
    assert ("training", 2) in stages and stages[0] == ("preparing volumes", None)
    training = read_card(log[0][1]["path"])["training"]
    assert training["epochs_run"] == 2
    # trained as `vol3d train` trains by default (issue 15's defaults)
    from vol3d_gui.ml.training import DEFAULT_BN_MOMENTUM, DEFAULT_WEIGHT_DECAY

    assert (training["schedule"], training["ema"], training["class_weight"]) == ("cosine", True, "balanced")
    assert (training["weight_decay"], training["bn_momentum"]) == (DEFAULT_WEIGHT_DECAY, DEFAULT_BN_MOMENTUM)

    task = ml.train(study.items, labels, {**card, "name": "stopped"},
                    {"out_path": str(tmp_path / "stopped.keras"), "epochs": 50, "batch_size": 2, "width": 4})
    task.progress.connect(lambda p: task.cancel() if p.stage == "training" else None, DIRECT)
    log = _record(task)
    with qtbot.waitSignal(task.finished, timeout=180000):
        pass
    assert log == [("cancelled",)]
    assert not (tmp_path / "stopped.keras").exists()


def test_signals_connected_after_the_call_are_not_missed(qtbot, ml, tmp_path):
    """A task starts only once the GUI thread's event loop runs again (as a QNetworkReply
    emits nothing before its caller returns): connecting after the call is race-free."""
    import time

    task = ml.load_model(tmp_path / "missing.keras")
    time.sleep(1.0)  # ample for the worker to have failed it, were it already queued
    assert task.state == "queued"
    with qtbot.waitSignal(task.failed, timeout=30000) as failed:
        pass
    assert "missing.keras" in failed.args[0]


def test_predict_and_gradcam_of_one_case_share_one_resampling(monkeypatch):
    """The tensor is computed once per (model, volume): a second task of the same case reuses it,
    another case or another model computes its own."""
    from types import SimpleNamespace

    from vol3d_gui.ui import ml_tasks

    calls = []
    monkeypatch.setattr(ml_tasks, "model_input", lambda bundle, volume: calls.append(volume) or object())
    worker = SimpleNamespace(bundle=object(), last_input=None)
    task = FunctionTask("noop", lambda ctx: None)
    a, _ = lesion_phantom(0, True, shape=SMALL)
    b, _ = lesion_phantom(1, True, shape=SMALL)
    ctx = ml_tasks.TaskContext(worker, task)
    first = ctx.model_input(a)
    assert ml_tasks.TaskContext(worker, task).model_input(a) is first and calls == [a]
    ctx.model_input(b)
    assert calls == [a, b]
    worker.bundle = object()  # a new model (a fine-tuned version, say)
    ctx.model_input(b)
    assert calls == [a, b, b]


def test_work_asked_after_stop_is_cancelled_not_an_error(qtbot, tiny_bundle_path):
    """A result queued before the window closed may ask for the next step (the next case's
    Grad-CAM) after the worker stopped: that task is cancelled at once, nothing raises."""
    ctl = MLController()
    ctl.stop()
    vol, _ = lesion_phantom(0, True, shape=(16, 16, 12))
    task = ctl.ahead(GradcamTask(vol, 1))
    log = _record(task)
    qtbot.wait(50)
    assert task.done and task.state == "cancelled" and task.is_cancelled and log == []


def test_tasks_are_freed_on_the_gui_thread_never_the_workers(qtbot, ml):
    """A task is a QObject of the GUI thread; the worker held the last reference to most
    (9 of 10 were destroyed on its thread, one at a time as a reader works), which Qt does not
    allow. Done, or cancelled while queued, each is now freed where it lives."""
    where = []

    def submit(task):
        task.destroyed.connect(lambda *_: where.append(threading.current_thread() is threading.main_thread()),
                               DIRECT)
        return ml.submit(task)

    for i in range(4):  # one at a time: the worker waits for the next with the last in hand
        task = submit(FunctionTask("x", lambda ctx, i=i: i))
        qtbot.waitUntil(lambda task=task: task.done, timeout=20000)
        qtbot.wait(30)  # the GUI thread has had the task's last signals
        del task
    blocker, gate = _blocker(ml)
    for _ in range(2):  # cancelled while queued: the worker drops them from its queue
        task = submit(FunctionTask("x", lambda ctx: None))
        task.cancel()
        del task
    gate.set()
    qtbot.waitUntil(lambda b=blocker: b.done, timeout=20000)
    del blocker
    last = ml.submit(FunctionTask("last", lambda ctx: None))  # takes the worker past the others
    qtbot.waitUntil(lambda: last.done, timeout=20000)
    qtbot.waitUntil(lambda: len(where) == 6, timeout=20000)
    assert all(where), where
