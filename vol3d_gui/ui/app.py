"""Start the GUI: the window is shown first, data and models load after the first paint."""

from __future__ import annotations

import os
import sys

from PySide6 import QtCore, QtGui, QtWidgets


def share_gl_contexts() -> None:
    """pyqtgraph caches GL shader programs per item class: every GL view must share one
    context group, or a second 3-D view (a second window) uses programs it cannot see."""
    QtCore.QCoreApplication.setAttribute(QtCore.Qt.ApplicationAttribute.AA_ShareOpenGLContexts)


def paint_native_windows_promptly() -> None:
    """A native GL window (the slice and 3-D views) paints when Qt's platform window answers
    its update request, which waits QT_QPA_UPDATE_IDLE_TIME ms (5 by default) to coalesce
    requests; widgets paint at the next turn of the event loop. With 0 the views follow a
    mouse move as soon as the events in hand are handled (still coalesced): measured in
    `bench napari`, a crosshair drag from 12.6 to 9.1 ms through the event loop, a scroll
    from 13.4 to 8.9 ms. Read once by Qt, at the first update request; a user's own value wins."""
    os.environ.setdefault("QT_QPA_UPDATE_IDLE_TIME", "0")


def make_app(argv=None) -> QtWidgets.QApplication:
    app = QtWidgets.QApplication.instance()
    if app is None:
        share_gl_contexts()
        paint_native_windows_promptly()
        QtGui.QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
            QtCore.Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QtWidgets.QApplication(list(argv or sys.argv[:1]))
    app.setApplicationName("vol3d")
    app.setOrganizationName("vol3d")
    app.setDesktopFileName("vol3d")
    from vol3d_gui.ui.resources import app_icon

    app.setWindowIcon(app_icon())
    return app


def run_gui(path=None, demo: bool = False, model=None) -> int:
    app = make_app()
    window = start_gui(path, demo=demo, model=model)  # noqa: F841  (kept alive by this frame)
    return app.exec()


def start_gui(path=None, demo: bool = False, model=None):
    """Show the main window now; open the data and the model from the event loop, after the
    first paint. Returns the window (the caller runs the event loop)."""
    from vol3d_gui.ui.main_window import MainWindow

    window = MainWindow()
    window.show()

    def load():
        if demo:
            from vol3d_gui.core.phantom import phantom_study

            window.open_study(phantom_study(n=12, seed=0), wait=False)
        elif path:
            window.open_path(path, wait=False)
        else:  # a plain start returns to where the reader left off
            window.restore_session()
        attach = getattr(window, "attach_model", None)
        if attach is not None:
            attach(model)

    QtCore.QTimer.singleShot(0, window, load)
    _warm_up()
    return window


def _warm_up() -> None:
    """Import the readers (nibabel, pydicom and its decoders: about a second) and compile the
    resampling onto the model grid (numba: about 1 s from its cache, 7 s the first time ever)
    in the background once the window is up, so that the first file the reader opens and its
    first prediction do not pay for them."""
    import threading

    def run():
        try:
            import vol3d_gui.core.io  # noqa: F401
        except Exception:  # a broken optional decoder is reported when a file needs it
            pass
        freeze_startup_objects()
        try:
            from vol3d_gui.ml.trilinear import warm_up

            warm_up()
        except Exception:  # the first prediction compiles it, and reports what fails
            pass

    threading.Thread(target=run, name="vol3d-warm-up", daemon=True).start()


def freeze_startup_objects() -> None:
    """Leave what start-up built (modules, classes, widgets: some 130,000 objects) out of every
    later garbage collection. A full collection walks every tracked object while it holds the
    GIL: about 100 ms here, a visible stall of the window each time reading a case (300 DICOM
    headers, say) triggers one. Frozen, a full collection walks only what came since (20 ms).
    What start-up built lives as long as the app, so nothing frozen would have been freed."""
    import gc

    gc.freeze()

