"""The ray-marched 3-D view draws under Mesa llvmpipe: checked on its framebuffer pixels."""

import numpy as np
import pytest

from tests.ui.conftest import qimage_rgb
from vol3d_gui.core.volume import Volume, centered_affine
from vol3d_gui.core.windowing import Window
from vol3d_gui.ui.volume_view import VolumeView
from vol3d_gui.viewer.model import ViewerModel
from vol3d_gui.viewer.prepare import display_grid


def _sphere(shape=(48, 40, 32), spacing=(1.0, 1.2, 1.5)):
    aff = centered_affine(shape, spacing)
    vol = Volume(np.zeros(shape, np.int16), aff)
    ijk = np.indices(shape).reshape(3, -1).T
    xyz = vol.voxel_to_world(ijk)
    r = np.linalg.norm(xyz, axis=1).reshape(shape)
    data = np.where(r < 18, 400, 0).astype(np.int16)
    data[r < 8] = 900
    return Volume(data, aff)


@pytest.fixture
def view(qtbot):
    v = VolumeView(ViewerModel())
    qtbot.addWidget(v)
    v.resize(320, 320)
    v.show()
    qtbot.waitExposed(v)
    if not v.available:
        pytest.skip(f"no GL here: {v.status_text}")
    v.model.set_case(_sphere(), window=Window(450, 900))
    return v


def _frame(view, qtbot):
    qtbot.wait(50)
    return qimage_rgb(view.grab_frame()).astype(int)


def test_each_mode_draws_and_modes_differ(view, qtbot):
    frames = {}
    for mode in ("mip", "translucent", "iso"):
        view.set_mode(mode)
        f = _frame(view, qtbot)
        lit = (f.max(axis=2) > 40).mean()
        assert 0.01 < lit < 0.9, f"{mode}: {lit:.2%} of pixels lit"
        frames[mode] = f
    assert np.abs(frames["mip"] - frames["translucent"]).mean() > 2
    assert np.abs(frames["mip"] - frames["iso"]).mean() > 2


def test_window_change_changes_pixels_without_reupload(view, qtbot):
    a = _frame(view, qtbot)
    uploads = view.item.upload_count
    view.model.window = Window(800, 300)
    view.set_colormap("hot")
    b = _frame(view, qtbot)
    assert np.abs(a - b).mean() > 2
    assert view.item.upload_count == uploads == 1


def test_overlay_colour_appears_where_the_overlay_is(view, qtbot):
    view.set_mode("mip")
    base = _frame(view, qtbot)
    # a coarse overlay on its own grid, covering the +x (patient right) half only
    ov = np.zeros((12, 10, 8), np.float32)
    ov[6:, :, :] = 1.0
    overlay = Volume(ov, centered_affine(ov.shape, (4.0, 4.8, 6.0)))
    view.model.add_overlay(overlay, "half", colormap="green", opacity=0.9, threshold=0.5)
    f = _frame(view, qtbot)
    green = (f[..., 1] > f[..., 0] + 60) & (f[..., 1] > f[..., 2] + 60)
    assert green.sum() > 100
    assert not ((base[..., 1] > base[..., 0] + 60) & (base[..., 1] > base[..., 2] + 60)).any()
    # camera looks from the front: patient right (+x) is on screen left
    xs = np.nonzero(green)[1]
    assert xs.mean() < f.shape[1] / 2


def test_crosshair_lines_follow_the_cursor(view, qtbot):
    view.model.cursor = [5.0, -3.0, 2.0]
    qtbot.waitUntil(lambda: view._pending_cursor is None, timeout=3000)  # placed once settled
    lines = view.cross.pos.reshape(3, 2, 3)  # one pair of ends a line, the x, y and z lines
    np.testing.assert_allclose(lines[0][:, 1:], [[-3.0, 2.0], [-3.0, 2.0]], atol=0.8)
    np.testing.assert_allclose(lines[1][:, [0, 2]], [[5.0, 2.0], [5.0, 2.0]], atol=0.8)
    np.testing.assert_allclose(lines[2][:, :2], [[5.0, -3.0], [5.0, -3.0]], atol=0.8)


def test_large_volumes_are_downsampled_for_3d_only():
    vol = Volume(np.zeros((600, 300, 200), np.int16), np.eye(4))
    grid = display_grid(vol, max_size=2048, budget=16 << 20)
    assert grid.factor >= 2 and grid.texture.nbytes <= 16 << 20
    # the downsampled grid still covers the same world box (block centres)
    f = grid.factor
    np.testing.assert_allclose(grid.affine[:3, :3] @ [0, 0, 0] + grid.affine[:3, 3], [(f - 1) / 2] * 3)
    grid = display_grid(vol, max_size=256)
    assert grid.factor == 3 and max(grid.shape) <= 256


def test_fallback_without_gl(qtbot, monkeypatch):
    monkeypatch.setenv("VOL3D_DISABLE_GL", "1")
    from vol3d_gui.ui.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    assert not w.volume_view.available and "disabled" in w.volume_view.status_text
    w.open_volume(_sphere())  # slices work regardless
    assert w.slice_views["axial"].image.image is not None


def test_shader_failure_falls_back_to_a_message(qtbot, monkeypatch):
    """A driver that cannot compile the ray-marching shader: the view says why, nothing raises."""
    from vol3d_gui.ui import gl_volume_item

    def broken(self):
        raise RuntimeError("shader compile failed: GLSL 1.20 not supported")

    monkeypatch.setattr(gl_volume_item.GLRayVolumeItem, "_build_program", broken)
    v = VolumeView(ViewerModel())
    qtbot.addWidget(v)
    v.resize(200, 200)
    v.show()
    qtbot.waitExposed(v)
    if not v.available:
        pytest.skip(f"no GL here: {v.status_text}")
    v.model.set_case(_sphere())
    v.grab_frame()  # paints, the shader build fails inside paint()
    qtbot.waitUntil(lambda: not v.available, timeout=3000)
    assert "shader compile failed" in v.status_text
    assert v._stack.currentWidget() is v._message
    # the rest of the API stays callable and harmless
    v.model.window = Window(100, 200)
    v.set_mode("iso")
    v.model.cursor = [0.0, 0.0, 0.0]
    assert not v.grab_frame().isNull()


def test_a_frame_is_rendered_in_bands_and_ends_as_the_one_shot_frame(view, qtbot):
    """No paint ray-marches the whole frame: a preview first, then bands, a few per paint;
    the last band leaves the same picture as a frame rendered in one go."""
    view.grab_frame()  # settles the view at full quality
    frame = view.item.frame
    assert frame is not None, "no framebuffer objects: the view fell back to one-shot frames"
    frame.budget_ms = 0.0  # one band of min_rows per paint, whatever this machine's speed
    frame.min_rows = 40
    height = view.glview.height() * view.glview.devicePixelRatio()
    most = int(np.ceil(height / frame.min_rows)) + 1  # the preview paint, then the bands
    view.glview.orbit(20, 10)  # the camera alone: the sample count stays full
    shown, done = [], []
    for _ in range(most + 5):
        shown.append(qimage_rgb(view.glview.grabFramebuffer()).astype(int))
        done.append(frame.rows_done)
        if frame.complete:
            break
    assert frame.complete and frame.paints <= most
    assert len(shown) > 3 and done == sorted(done)  # in parts, top down, never backwards
    assert (shown[0].max(axis=2) > 40).mean() > 0.01  # the preview: never a black view
    view.set_mode("iso")
    view.grab_frame()
    view.set_mode("mip")  # the same camera, rendered in one go
    whole = qimage_rgb(view.grab_frame()).astype(int)
    assert np.abs(shown[-1] - whole).max() <= 2


@pytest.mark.parametrize("mode", ["mip", "translucent"])
def test_a_window_change_recolours_a_mip_frame_and_redraws_the_others(view, qtbot, mode):
    """MIP keeps the ray's maximum and colours it as it is composited: a window or colour-map
    change shows the finished frame recoloured, at once and at full quality, with no new frame
    (a W/L drag in 3-D). The recoloured picture is the one a new frame would show. The other
    modes' colours depend on the window along the ray: there a change starts a new frame."""
    view.set_mode(mode)
    view.grab_frame()
    frame = view.item.frame
    assert frame is not None, "no framebuffer objects: the view fell back to one-shot frames"
    before, restarts = _frame(view, qtbot), frame.restarts
    view.model.window = Window(200, 500)
    view.set_colormap("hot")
    recoloured = qimage_rgb(view.glview.grabFramebuffer()).astype(int)  # one paint, as on screen
    if mode == "mip":
        assert frame.restarts == restarts and view.item.complete
    else:
        assert frame.restarts > restarts
    assert np.abs(recoloured - before).mean() > 2  # it did change
    view.set_mode("iso")
    view.grab_frame()
    view.set_mode(mode)  # a new frame, drawn with this window and colour map from the start
    fresh = qimage_rgb(view.grab_frame()).astype(int)
    if mode == "mip":
        assert np.abs(recoloured - fresh).max() <= 2


def test_the_view_asks_for_the_next_bands_itself(view, qtbot):
    view.grab_frame()
    view.item.frame.budget_ms = 0.0
    view.item.frame.min_rows = 64
    restarts = view.item.frame.restarts
    view.glview.orbit(15, 5)  # asks for one paint; the view's timer asks for the rest
    qtbot.waitUntil(lambda: view.item.frame.restarts > restarts and view.item.complete, timeout=10000)
    assert view.item.frame.paints > 2


def test_a_new_texture_is_uploaded_in_a_paint_of_its_own(view, qtbot):
    view.grab_frame()
    uploads, restarts = view.item.upload_count, view.item.frame.restarts
    view.model.set_case(_sphere(shape=(40, 36, 30)), window=Window(450, 900))
    view.glview.grabFramebuffer()  # one paint: the upload, with the last frame on screen
    assert view.item.upload_count == uploads + 1
    assert view.item.frame.restarts == restarts and not view.item.complete
    qtbot.waitUntil(lambda: view.item.complete, timeout=10000)  # the view's timer does the rest
    assert view.item.frame.restarts > restarts


def test_the_3d_view_never_waits_for_a_vertical_blank_in_its_swap(view):
    """The 3-D view swaps on the GUI thread like the slice views: a swap that waited for the
    next blank would hold the slice views back by a frame (issue 16: they never wait for a
    3-D frame). Asked of the window; its context is made with it."""
    view.grab_frame()
    assert view.glview.format().swapInterval() == 0
    assert view.glview.context().format().swapInterval() == 0


def test_a_grab_of_the_widgets_shows_the_3d_picture_that_is_on_screen(view, qtbot):
    """The 3-D view is a native window, outside QWidget.grab's render (exports, screenshots):
    its host draws the last whole frame read back. A recoloured MIP frame is read back once
    the pictures stop changing, or when the widget tree is drawn, never left stale."""
    view.grab_frame()
    old = view.glview.last_frame
    view.model.window = Window(200, 500)  # MIP: the next paint on screen recolours the frame
    qtbot.waitUntil(view.glview.snapshot_due, timeout=5000)
    assert view.glview.last_frame is old  # no read-back in the paint itself
    shot = qimage_rgb(view.grab().toImage()).astype(int)
    expected = qimage_rgb(view.glview.grabFramebuffer()).astype(int)
    assert shot.shape == expected.shape
    assert np.abs(shot - expected).max() <= 2
    assert np.abs(expected - qimage_rgb(old).astype(int)).mean() > 2  # it did change
    view.model.window = Window(300, 800)
    qtbot.waitUntil(view.glview.snapshot_due, timeout=5000)
    qtbot.waitUntil(lambda: not view.glview.snapshot_due(), timeout=5000)  # read back by itself


def test_a_window_step_during_an_unfinished_mip_frame_waits_for_no_band(view, qtbot):
    """A W/L drag step recolours what the unfinished frame has (preview and bands so far) and
    leaves the next bands to the next paint, as a preview paint does: every step stays cheap."""
    view.grab_frame()
    frame = view.item.frame
    frame.budget_ms, frame.min_rows = 0.0, 160  # one band: the top half of the 320-pixel view
    view.glview.orbit(20, 10)
    view.glview.grabFramebuffer()  # the preview
    before = qimage_rgb(view.glview.grabFramebuffer()).astype(int)  # a band over the preview
    restarts, rows = frame.restarts, frame.rows_done
    assert 0 < rows < view.glview.height() * view.glview.devicePixelRatio()
    view.model.window = Window(200, 500)
    after = qimage_rgb(view.glview.grabFramebuffer()).astype(int)  # the step: recoloured, no band
    assert (frame.restarts, frame.rows_done) == (restarts, rows)
    # the rows done and the preview below them both show the new window
    assert np.abs(after[:rows] - before[:rows]).mean() > 1
    assert np.abs(after[rows:] - before[rows:]).mean() > 1
    view.glview.grabFramebuffer()  # the next paint goes on with the bands
    assert frame.restarts == restarts and frame.rows_done > rows
    qtbot.waitUntil(lambda: view.item.complete, timeout=10000)
