"""The viewer draws what the conventions say: checked on grabbed pixels of the real window,
with the GL slice views and with the CPU ones (the fallback), through the views' common API."""

import nibabel as nib
import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from tests.core.io_fixtures import marker_volume
from tests.ui.conftest import grab
from vol3d_gui.core.volume import Volume, centered_affine
from vol3d_gui.core.windowing import CT_PRESETS, Window


def _marker_vol():
    # anisotropic voxels on purpose
    return Volume(marker_volume((40, 48, 32)), centered_affine((40, 48, 32), (1.0, 0.8, 1.5)), name="marker")


@pytest.fixture(params=["gl", "cpu"])
def window(request, qtbot, monkeypatch):
    """The main window with GL slice views, then with the CPU ones (GL unavailable)."""
    from vol3d_gui.ui import gl_slice_view
    from vol3d_gui.ui.main_window import MainWindow

    monkeypatch.setattr(gl_slice_view, "_BACKEND", None)
    monkeypatch.setenv("VOL3D_SLICES", request.param)
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1200, 900)
    w.show()
    qtbot.waitExposed(w)
    if request.param == "gl" and w.slice_views["axial"].backend != "gl":
        pytest.skip(f"no GL slice views here: {gl_slice_view.slice_backend_notice()}")
    assert w.slice_views["axial"].backend == request.param
    yield w
    w.close()


def _white_centroid(view):
    px = grab(view.canvas)
    white = (px.min(axis=2) > 200)
    assert white.sum() > 20, "marker not drawn"
    ys, xs = np.nonzero(white)
    h, w = white.shape
    return xs.mean() / w, ys.mean() / h


def _show_marker(window):
    vol = _marker_vol()
    window.open_volume(vol)
    window.set_window(Window(500, 1000))
    block = np.argwhere(vol.data == 1000).mean(axis=0)
    window.set_cursor(vol.voxel_to_world(block))
    return vol


@pytest.mark.parametrize("radiological", [True, False])
def test_marker_on_the_conventional_screen_side(window, radiological):
    _show_marker(window)
    window.set_radiological(radiological)
    ax_x, ax_y = _white_centroid(window.slice_views["axial"])
    co_x, co_y = _white_centroid(window.slice_views["coronal"])
    sa_x, sa_y = _white_centroid(window.slice_views["sagittal"])
    # patient right is on screen left in radiological display, on screen right in neurological
    if radiological:
        assert ax_x < 0.5 and co_x < 0.5
    else:
        assert ax_x > 0.5 and co_x > 0.5
    assert ax_y < 0.5  # anterior at the top of the axial view
    assert co_y < 0.5 and sa_y < 0.5  # superior at the top
    assert sa_x < 0.5  # sagittal: anterior on the left, in both conventions
    letters = [lab.text() for lab in window.slice_views["axial"]._letters]
    assert letters == (["R", "L", "A", "P"] if radiological else ["L", "R", "A", "P"])


def test_click_moves_the_other_views_and_status_matches_value(window, qtbot):
    vol = _show_marker(window)
    axial = window.slice_views["axial"]
    target = vol.voxel_to_world([10, 30, window.slice_views["axial"].index])
    pos = axial.view_to_input(10 * vol.spacing[0], 30 * vol.spacing[1])
    qtbot.mouseClick(axial.input_target(), QtCore.Qt.MouseButton.LeftButton, pos=pos)
    qtbot.waitUntil(lambda: window.slice_views["sagittal"].index == 10, timeout=2000)
    assert window.slice_views["coronal"].index == 30
    np.testing.assert_allclose(window.cursor[:2], target[:2], atol=1.0)
    ijk = vol.nearest_voxel(window.cursor)
    text = window.cursor_label.text()
    assert f"voxel ({ijk[0]}, {ijk[1]}, {ijk[2]})" in text
    assert f"value {vol.value_at(window.cursor)}" in text


def test_wheel_and_page_keys_step_slices(window, qtbot):
    _show_marker(window)
    axial = window.slice_views["axial"]
    start = axial.index
    axial.setFocus()
    qtbot.keyClick(axial, QtCore.Qt.Key.Key_PageUp)
    assert axial.index == start + 1
    qtbot.keyClick(axial, QtCore.Qt.Key.Key_PageDown)
    qtbot.keyClick(axial, QtCore.Qt.Key.Key_PageDown)
    assert axial.index == start - 1


def test_window_level_changes_pixels_and_presets_apply(window):
    vol = Volume(np.linspace(-1000, 1000, 32 * 32 * 16).reshape(32, 32, 16).astype(np.int16),
                 centered_affine((32, 32, 16)))
    window.open_volume(vol)
    view = window.slice_views["axial"]
    window.set_window(Window(0, 2000))
    a = grab(view.canvas)
    window.set_window(Window(-800, 200))
    b = grab(view.canvas)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 10
    for name in ("brain", "lung", "bone", "abdomen"):
        window.apply_preset(name)
        assert window.window_level == CT_PRESETS[name]
        assert view.window == CT_PRESETS[name]
        assert f"W {CT_PRESETS[name].width:g} / L {CT_PRESETS[name].center:g}" == view.wl_label.text()


@pytest.mark.parametrize("coarse", [False, True])
def test_overlay_drawn_exactly_where_the_mask_is(window, coarse):
    shape, spacing = (40, 40, 20), (1.0, 1.0, 2.0)
    vol = Volume(np.zeros(shape, np.int16), centered_affine(shape, spacing))
    lo, hi = np.array([8, 20, 6]), np.array([16, 32, 14])  # block in base voxels, exclusive hi
    if coarse:  # a mask on a grid twice as coarse, same field of view
        mshape = (20, 20, 10)
        mask = np.zeros(mshape, np.uint8)
        mask[lo[0] // 2 : hi[0] // 2, lo[1] // 2 : hi[1] // 2, lo[2] // 2 : hi[2] // 2] = 1
        mvol = Volume(mask, centered_affine(mshape, (2.0, 2.0, 4.0)))
    else:
        mask = np.zeros(shape, np.uint8)
        mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = 1
        mvol = Volume(mask, vol.affine)
    window.open_volume(vol)
    window.set_window(Window(500, 100))  # background black
    window.add_overlay(mvol, "mask", colormap="red", opacity=1.0, threshold=0.5)
    window.set_cursor(vol.voxel_to_world((lo + hi) / 2 - 0.5))
    axial = window.slice_views["axial"]
    px = grab(axial.canvas)
    red = (px[..., 0] > 200) & (px[..., 1] < 60) & (px[..., 2] < 60)
    ys, xs = np.nonzero(red)
    assert red.sum() > 50
    # expected screen box of the block's outer voxel edges
    def screen(i, j):
        p = axial.view_to_input(i * spacing[0], j * spacing[1])
        return p.x(), p.y()
    x0, y0 = screen(lo[0] - 0.5, lo[1] - 0.5)
    x1, y1 = screen(hi[0] - 0.5, hi[1] - 0.5)
    tol = 3 + (2 if coarse else 0)
    assert abs(xs.min() - min(x0, x1)) <= tol and abs(xs.max() - max(x0, x1)) <= tol
    assert abs(ys.min() - min(y0, y1)) <= tol and abs(ys.max() - max(y0, y1)) <= tol
    # toggled off: no red left
    window.update_overlay("mask", visible=False)
    px = grab(axial.canvas)
    assert not ((px[..., 0] > 200) & (px[..., 1] < 60)).any()


def test_bad_file_shows_a_dialog_and_keeps_the_volume(window, tmp_path, monkeypatch):
    good = _marker_vol()
    window.open_volume(good)
    shown = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "critical", lambda *a, **k: shown.append(a[2]))
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b broken")
    assert window.open_volume(bad) is False
    assert shown and "broken.nii.gz" in shown[0]
    assert window.current_volume is good


def test_open_file_from_disk_and_recent_list(window, tmp_path):
    path = tmp_path / "m.nii.gz"
    nib.save(nib.Nifti1Image(marker_volume(), np.eye(4)), path)
    assert window.open_path(path)
    assert window.current_volume.shape == marker_volume().shape
    assert window.recent_files()[0] == str(path)


def test_demo_study_loads_items_with_lesion_masks(window):
    from vol3d_gui.core.phantom import phantom_study

    study = phantom_study(n=4, seed=0, shape=(48, 48, 32))
    window.open_study(study)
    assert window.worklist.table_model.rowCount() == 4
    row = next(i for i, it in enumerate(study) if it.label == 1)
    window.worklist.table.setCurrentIndex(window.worklist.table_model.index(row, 0))  # a click
    window.io.wait()
    assert window.current_item is study[row]
    assert window.worklist.current_id() == study[row].id
    assert "lesion mask" in window.overlays


def test_maximise_and_restore(window):
    window.toggle_maximise("coronal")
    assert not window.slice_views["axial"].isVisible() and window.slice_views["coronal"].isVisible()
    window.toggle_maximise("coronal")
    assert window.slice_views["axial"].isVisible()


def test_colour_bar_shows_the_overlays_map_range_and_threshold(window):
    shape = (20, 20, 10)
    vol = Volume(np.zeros(shape, np.int16), centered_affine(shape, (1.0, 1.0, 2.0)))
    window.open_volume(vol)
    ramp = np.broadcast_to(np.linspace(0, 1, 20, dtype=np.float32)[:, None, None], shape).copy()
    window.add_overlay(Volume(ramp, vol.affine), "map", colormap="hot", threshold=0.5, vmin=0.0, vmax=1.0)
    window.overlay_panel.combo.setCurrentText("map")
    bar = window.overlay_panel.colour_bar
    row = grab(bar)[bar.BAR_HEIGHT // 2 + 2].astype(int)
    w = bar.width()
    left, right = row[8 : w // 2 - 8], row[w // 2 + 8 : w - 8]
    # below the threshold: grey and hatched, no colour; above it: hot, rising to near white
    assert (np.abs(left[:, 0] - left[:, 2]) < 30).all()
    assert (right[:, 0] - right[:, 2] > 60).mean() > 0.8 and right[-1].min() > 200
    window.overlay_panel.cmap.setCurrentText("jet")  # the reader picks another map: the bar follows
    row = grab(bar)[bar.BAR_HEIGHT // 2 + 2].astype(int)
    assert row[w - 8, 0] > 150 and row[w - 8, 1] < 60  # jet ends in dark red
