"""GUI test fixtures: a real MainWindow under Xvfb (pytest-xvfb), settings in a temp dir,
and helpers that read what is drawn (pixels of a grabbed frame)."""

from __future__ import annotations

import numpy as np
import pytest

from vol3d_gui.ui.app import paint_native_windows_promptly, share_gl_contexts

share_gl_contexts()  # before pytest-qt creates the QApplication
paint_native_windows_promptly()  # as the app does


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("VOL3D_SETTINGS_DIR", str(tmp_path / "settings"))
    monkeypatch.setenv("VOL3D_MODELS_DIR", str(tmp_path / "user-models"))
    monkeypatch.setenv("VOL3D_LABELS_DB", str(tmp_path / "labels.db"))


@pytest.fixture(autouse=True)
def _no_leaked_threads(qapp):
    """Fail a test that leaves QThreads running (napari's conftest does the same)."""
    from PySide6 import QtCore

    before = {id(t) for t in qapp.findChildren(QtCore.QThread)}
    yield
    leaked = [t for t in qapp.findChildren(QtCore.QThread) if id(t) not in before and t.isRunning()]
    assert not leaked, f"test leaked running QThreads: {leaked}"


@pytest.fixture(autouse=True)
def _no_leaked_timers(monkeypatch, qapp):
    """Fail a test that leaves a QTimer running or a single-shot callback pending after its
    widgets are gone (napari's dangling_qtimers idea): such a timer fires into a deleted
    window in a later test, far from the cause."""
    import shiboken6
    from PySide6 import QtCore, QtWidgets

    started: list = []
    pending: list = []
    real_start, real_single = QtCore.QTimer.start, QtCore.QTimer.singleShot

    def start(self, *args):
        started.append(self)
        return real_start(self, *args)

    def single_shot(*args):
        if len(args) == 2 and callable(args[1]):
            msec, fn = args
            token = object()
            pending.append(token)

            def run():
                pending.remove(token)
                fn()

            return real_single(msec, run)
        return real_single(*args)

    monkeypatch.setattr(QtCore.QTimer, "start", start)
    monkeypatch.setattr(QtCore.QTimer, "singleShot", staticmethod(single_shot))
    yield
    QtWidgets.QApplication.processEvents()
    running = [t for t in started if shiboken6.isValid(t) and t.isActive()]
    for t in running:
        t.stop()
    assert not running, f"test left QTimers running: {[(t, t.parent()) for t in running]}"
    if pending:  # short single-shots may still be on their way: give them a moment
        deadline = QtCore.QDeadlineTimer(2000)
        while pending and not deadline.hasExpired():
            QtWidgets.QApplication.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
    assert not pending, f"test left {len(pending)} QTimer.singleShot callbacks pending"


@pytest.fixture
def window(qtbot):
    from vol3d_gui.ui.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1200, 900)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close()


def grab(widget) -> np.ndarray:
    """RGB pixels (H, W, 3) of what a widget draws now."""
    from PySide6 import QtGui, QtWidgets

    QtWidgets.QApplication.processEvents()
    img = widget.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    arr = np.frombuffer(img.constBits(), np.uint8, count=bpl * h).reshape(h, bpl)
    return arr[:, : w * 3].reshape(h, w, 3).copy()


def qimage_rgb(img) -> np.ndarray:
    from PySide6 import QtGui

    img = img.convertToFormat(QtGui.QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    arr = np.frombuffer(img.constBits(), np.uint8, count=bpl * h).reshape(h, bpl)
    return arr[:, : w * 3].reshape(h, w, 3).copy()
