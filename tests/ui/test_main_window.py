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
    centre = coronal.graphics.viewport().rect().center()
    qtbot.mouseDClick(coronal.graphics.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=centre)
    qtbot.waitUntil(lambda: not window.slice_views["axial"].isVisible(), timeout=2000)
    assert coronal.isVisible() and not window.volume_view.isVisible()
    qtbot.mouseClick(coronal.max_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.slice_views["axial"].isVisible(), timeout=2000)


def test_export_view_writes_the_pixels_on_screen(window, tmp_path):
    window.open_volume(_vol())
    out = window.export_view("axial", tmp_path / "axial.png")
    img = QtGui.QImage(str(out))
    view = window.slice_views["axial"]
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
    pos = QtCore.QPointF(window.rect().center())
    for cls in (QtGui.QDragEnterEvent, QtGui.QDropEvent):
        ev = cls(pos, QtCore.Qt.DropAction.CopyAction, mime,
                 QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier)
        QtWidgets.QApplication.sendEvent(window, ev)
        assert ev.isAccepted()
    assert window.current_volume is not None and window.current_volume.shape == marker_volume().shape


def test_run_gui_demo_shows_the_window_before_loading(qapp, monkeypatch):
    """`vol3d --demo`: the window is up before the study loads, TensorFlow is not imported
    for it, and the demo study's first item ends up on screen."""
    from vol3d_gui.ui import app as app_module
    from vol3d_gui.ui.main_window import MainWindow

    tf_before = "tensorflow" in sys.modules
    monkeypatch.setattr(MainWindow, "attach_model", lambda self, model=None: None)
    seen = {}
    real_show = MainWindow.show

    def show(self):
        seen["study_at_show"] = self.study
        seen["tf_at_show"] = "tensorflow" in sys.modules
        real_show(self)

    monkeypatch.setattr(MainWindow, "show", show)

    def check():
        wins = [w for w in QtWidgets.QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        if wins and wins[-1].current_volume is not None:
            w = wins[-1]
            seen["n"] = len(w.study)
            seen["row"] = w.worklist.current_row()
            seen["item"] = w.current_item
            w.close()
            w.deleteLater()
            qapp.quit()
        else:
            QtCore.QTimer.singleShot(50, check)

    QtCore.QTimer.singleShot(0, check)
    assert app_module.run_gui(demo=True) == 0
    assert seen["study_at_show"] is None  # nothing loaded before the first paint
    if not tf_before:
        assert seen["tf_at_show"] is False
    assert seen["n"] == 12 and seen["row"] == 0
    assert seen["item"].name


def test_fit_undoes_zoom(window):
    window.open_volume(_vol())
    view = window.slice_views["axial"]
    before = view.viewbox.viewRange()
    view.viewbox.scaleBy((0.5, 0.5))
    assert view.viewbox.viewRange() != before
    view.reset_zoom()
    np.testing.assert_allclose(view.viewbox.viewRange(), before, atol=1e-6)
