"""The main window as a user meets it: start-up, maximise, screenshots, settings, drops."""

import sys

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from tests.core.io_fixtures import marker_volume
from tests.ui.conftest import grab
from vol3d_gui.core.volume import Volume, centered_affine


def _vol():
    shape = (40, 48, 32)
    return Volume(marker_volume(shape), centered_affine(shape, (1.0, 0.8, 1.5)), name="marker")


def test_double_click_maximises_and_restores_a_view(window, qtbot):
    window.open_volume(_vol())
    coronal = window.slice_views["coronal"]
    target = coronal.input_target()
    centre = QtCore.QPoint(target.width() // 2, target.height() // 2)
    qtbot.mouseDClick(target, QtCore.Qt.MouseButton.LeftButton, pos=centre)
    qtbot.waitUntil(lambda: not window.slice_views["axial"].isVisible(), timeout=2000)
    assert coronal.isVisible() and not window.volume_view.isVisible()
    qtbot.mouseClick(coronal.max_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.slice_views["axial"].isVisible(), timeout=2000)


def test_export_view_writes_the_pixels_on_screen(window, tmp_path, qtbot):
    window.open_volume(_vol())
    view = window.slice_views["axial"]

    def settled():  # the opening's last layout and frames are in: two grabs agree
        first = grab(view)
        qtbot.wait(30)
        return np.array_equal(first, grab(view))

    qtbot.waitUntil(settled, timeout=5000)
    out = window.export_view("axial", tmp_path / "axial.png")
    img = QtGui.QImage(str(out))
    assert (img.width(), img.height()) == (view.width(), view.height())
    assert not list(tmp_path.glob(".*tmp*"))  # written via a temporary file, then renamed
    on_screen = grab(view)
    from tests.ui.conftest import qimage_rgb

    np.testing.assert_array_equal(qimage_rgb(img), on_screen)


def test_geometry_and_recent_files_survive_a_restart(qtbot, tmp_path):
    from vol3d_gui.ui.main_window import MainWindow

    first = MainWindow()
    qtbot.addWidget(first)
    first.show()
    first.resize(900, 700)
    first._add_recent(str(tmp_path / "a.nii.gz"))
    first.close()
    second = MainWindow()
    qtbot.addWidget(second)
    assert (second.width(), second.height()) == (900, 700)
    assert second.recent_files() == [str(tmp_path / "a.nii.gz")]
    assert [a.text() for a in second.recent_menu.actions()] == [str(tmp_path / "a.nii.gz")]
    second.close()


def test_dropping_a_file_opens_it(window, tmp_path):
    import nibabel as nib

    path = tmp_path / "dropped.nii.gz"
    nib.save(nib.Nifti1Image(marker_volume(), np.eye(4)), path)
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(path))])
    centre = window.rect().center()
    # Qt declares QDragEnterEvent with a QPoint and QDropEvent with a QPointF
    for cls, pos in ((QtGui.QDragEnterEvent, centre), (QtGui.QDropEvent, QtCore.QPointF(centre))):
        ev = cls(pos, QtCore.Qt.DropAction.CopyAction, mime,
                 QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier)
        QtWidgets.QApplication.sendEvent(window, ev)
        assert ev.isAccepted()
    window.io.wait()
    assert window.current_volume is not None and window.current_volume.shape == marker_volume().shape


def test_run_gui_demo_shows_the_window_before_loading(qtbot, monkeypatch):
    """`vol3d --demo`: the window is up before the study loads, TensorFlow is not imported
    for it, and the demo study's first item ends up on screen.

    Drives start_gui, the part of run_gui before app.exec(): a test must not run and quit
    the application's own loop, or every later nested event loop (qtbot.wait*) returns at once."""
    from vol3d_gui.ui import app as app_module
    from vol3d_gui.ui.main_window import MainWindow

    tf_before = "tensorflow" in sys.modules
    monkeypatch.setattr(MainWindow, "attach_model", lambda self, model=None: None)
    w = app_module.start_gui(demo=True)
    qtbot.addWidget(w)
    assert w.isVisible()
    assert w.study is None  # nothing loaded before the first paint
    if not tf_before:
        assert "tensorflow" not in sys.modules
    qtbot.waitUntil(lambda: w.current_volume is not None, timeout=30000)
    assert len(w.study) == 12 and w.worklist.current_id() == w.study[0].id
    assert w.current_item.name
    w.resize(1200, 900)
    axial = grab(w.slice_views["axial"]).astype(float).mean(axis=2)
    assert np.percentile(axial, 95) - np.percentile(axial, 5) > 40  # the phantom, not a blank view
    w.close()


def test_fit_undoes_zoom(window):
    window.open_volume(_vol())
    view = window.slice_views["axial"]
    before = view.view_range()
    view.zoom_by(2.0)
    assert view.view_range() != before
    view.reset_zoom()
    np.testing.assert_allclose(view.view_range(), before, atol=1e-6)


def test_a_cursor_move_repaints_the_readout_and_not_the_whole_status_bar(window, qtbot):
    """QStatusBar repaints itself whole on every layout request, and a label laid out in it
    asks for one on every new text: the readout's label is placed by hand instead, so a
    cursor move repaints that label alone, with the new voxel on it."""
    vol = _vol()
    window.open_volume(vol)
    qtbot.wait(200)  # the opening's own repaints (title, message) are done

    class Paints(QtCore.QObject):
        def __init__(self):
            super().__init__()
            self.seen = []

        def eventFilter(self, obj, ev):
            if ev.type() == QtCore.QEvent.Type.Paint:
                self.seen.append(obj)
            return False

    paints = Paints()
    bar = window.statusBar()
    for w in (bar, window.cursor_label.label):
        w.installEventFilter(paints)
    before = grab(window.cursor_label)
    for ijk in ([5, 6, 7], [20, 30, 10], [33, 40, 25]):
        window.set_cursor(vol.voxel_to_world(ijk))
        qtbot.wait(30)
        assert f"voxel ({ijk[0]}, {ijk[1]}, {ijk[2]})" in window.cursor_label.text()
    assert bar not in paints.seen
    assert window.cursor_label.label in paints.seen
    after = grab(window.cursor_label)
    assert before.shape == after.shape and not np.array_equal(before, after)  # the new text is on screen
