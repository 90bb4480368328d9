"""The GL slice views draw exactly what the CPU rule says (window, overlays, orientation), and
what a reader changes while reading costs no upload: checked on grabbed pixels."""

import numpy as np
import pytest

from tests.ui.conftest import grab
from vol3d_gui.core.volume import Volume, centered_affine
from vol3d_gui.core.windowing import Window, apply_window
from vol3d_gui.viewer.colormaps import lut

SHAPE, SPACING = (40, 48, 32), (1.0, 0.8, 1.5)  # anisotropic on purpose


@pytest.fixture
def gl_window(qtbot, monkeypatch):
    from vol3d_gui.ui import gl_slice_view
    from vol3d_gui.ui.main_window import MainWindow

    monkeypatch.delenv("VOL3D_SLICES", raising=False)
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1200, 900)
    w.show()
    qtbot.waitExposed(w)
    if w.slice_views["axial"].backend != "gl":
        pytest.skip(f"no GL slice views here: {gl_slice_view.slice_backend_notice()}")
    yield w
    w.close()


def _ramp_volume(layout="C"):
    """Neighbouring voxels differ by 7, 13 or 29 (mod 251, int16): a pixel names its voxel.
    ``layout``: the array's memory order. "F" (x fastest) is what the NIfTI and DICOM readers
    give; "flipped" is that with y reversed in place (a DICOM series' rows after reorienting to
    RAS: a negative stride); "C" is z fastest."""
    i, j, k = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    data = ((7 * i + 13 * j + 29 * k) % 251 - 100).astype(np.int16)
    if layout == "F":
        data = np.asfortranarray(data)
    elif layout == "flipped":
        data = np.asfortranarray(data[:, ::-1])[:, ::-1]
    assert np.array_equal(data, (7 * i + 13 * j + 29 * k) % 251 - 100)
    return Volume(data, centered_affine(SHAPE, SPACING), name="ramp")


def _pixel(view, px, world):
    """RGB of the canvas pixel at the centre of the voxel through ``world``."""
    x, y = view.geometry.to_view(world)
    p = view.view_to_input(x, y)
    return px[p.y(), p.x()].astype(int)


def _off_crosshair_voxels(view, vol, n=12, seed=0):
    """Voxels of the view's slice away from the crosshair lines (which are drawn over them)."""
    rng = np.random.default_rng(seed)
    cur = np.rint(vol.world_to_voxel(view.model.cursor)).astype(int)
    a, b = view.geometry.in_plane_axes
    out = []
    while len(out) < n:
        ijk = cur.copy()
        ijk[a] = rng.integers(2, SHAPE[a] - 2)
        ijk[b] = rng.integers(2, SHAPE[b] - 2)
        if abs(ijk[a] - cur[a]) > 2 and abs(ijk[b] - cur[b]) > 2:
            out.append(ijk)
    return out


@pytest.mark.parametrize("layout", ["C", "F", "flipped"])
@pytest.mark.parametrize("orientation", ["axial", "coronal", "sagittal"])
def test_each_pixel_is_its_voxel_through_the_window(gl_window, orientation, layout):
    vol = _ramp_volume(layout)
    gl_window.open_volume(vol)
    win = Window(27.5, 255)  # one grey level per value
    gl_window.set_window(win)
    view = gl_window.slice_views[orientation]
    grab(view.canvas)
    # another slice: a plane that needs a copy is cut ahead, on the gathering thread
    gl_window.set_cursor(vol.voxel_to_world((np.asarray(SHAPE) - 1) * 0.3))
    px = grab(view.canvas)
    for ijk in _off_crosshair_voxels(view, vol):
        world = vol.voxel_to_world(ijk)
        expected = int(apply_window(np.array([vol.data[tuple(ijk)]]), win)[0])
        np.testing.assert_allclose(_pixel(view, px, world), [expected] * 3, atol=1)


def _next_paint(qtbot, *windows) -> None:
    """Wait for each window's next paint from the event loop (a grab paints outside it)."""
    counts = [w.paints for w in windows]
    for w in windows:
        w.update()
    qtbot.waitUntil(lambda: all(w.paints > n for w, n in zip(windows, counts, strict=True)), timeout=3000)


def test_window_level_and_crosshair_moves_upload_nothing(gl_window, qtbot):
    vol = _ramp_volume()
    gl_window.open_volume(vol)
    axial = gl_window.slice_views["axial"]
    cw = axial.canvas_window
    before = grab(axial.canvas)
    uploads = cw.plane.uploads
    gl_window.set_window(Window(-90, 30))
    after = grab(axial.canvas)
    assert np.abs(after.astype(int) - before.astype(int)).mean() > 10  # the window shows
    assert cw.plane.uploads == uploads
    _next_paint(qtbot, cw)  # a frame of the event loop's (a grab's frame is not kept)
    cursor = gl_window.cursor
    cursor[0] += 5.0  # within the axial slice
    renders, repaints = cw.plane_renders, cw.line_repaints
    gl_window.set_cursor(cursor)
    qtbot.waitUntil(lambda: not cw.dirty, timeout=3000)
    assert cw.plane.uploads == uploads
    if cw.back_buffer_kept:  # Mesa's software path keeps it (CI): only the old lines' strips
        assert (cw.plane_renders, cw.line_repaints) == (renders, repaints + 1)
    moved = grab(axial.canvas)
    yellow = (moved[..., 0] > 150) & (moved[..., 1] > 120) & (moved[..., 2] < 100)
    x_line = np.flatnonzero(yellow.mean(axis=0) > 0.5)
    expected = axial.view_to_input(*axial.geometry.to_view(cursor)).x()
    assert x_line.size and abs(x_line.mean() - expected) <= 1


def test_a_crosshair_move_leaves_no_old_line_behind(gl_window, qtbot):
    """The repaint of the strips under the old lines restores the picture exactly: the frame on
    screen after a few moves equals a whole new picture with the last lines."""
    vol = _ramp_volume()
    gl_window.open_volume(vol)
    axial = gl_window.slice_views["axial"]
    cw = axial.canvas_window
    _next_paint(qtbot, cw)
    for dx, dy in ((5, 0), (0, -4), (-7, 3)):
        cursor = gl_window.cursor
        cursor[:2] += (dx, dy)
        gl_window.set_cursor(cursor)
        qtbot.waitUntil(lambda: not cw.dirty, timeout=3000)
    from PySide6 import QtOpenGL

    cw.makeCurrent()  # what the window's back buffer holds: the last frame presented
    try:
        kept = QtOpenGL.QOpenGLWindow.grabFramebuffer(cw)
    finally:
        cw.doneCurrent()
    whole = axial.canvas.grab().toImage()  # the whole picture drawn anew, same lines
    if not cw.back_buffer_kept:
        pytest.skip("this driver does not keep the back buffer: every paint draws the whole picture")
    a = np.asarray(_image_array(kept), int)
    b = np.asarray(_image_array(whole), int)
    a[-1, 0] = b[-1, 0]  # the bottom-left mark (a background pixel a few levels from black)
    assert a.shape == b.shape and np.abs(a - b).max() <= 1


@pytest.mark.parametrize("after_swap", ["cleared", "two frames old"])
def test_a_driver_that_does_not_keep_the_back_buffer_still_shows_the_whole_picture(gl_window, qtbot, monkeypatch,
                                                                                    after_swap):
    """GPU drivers hand out a cleared buffer, or the one swapped two frames ago, after a swap
    (Mesa's software path keeps it). Simulated here after every swap: the corner mark no longer
    matches, so a crosshair move draws the whole picture, and what is presented equals it."""
    from OpenGL import GL
    from PySide6 import QtGui, QtOpenGL

    gl_window.open_volume(_ramp_volume())
    axial = gl_window.slice_views["axial"]
    cw = axial.canvas_window
    _next_paint(qtbot, cw)
    presented = []
    real_swap = QtGui.QOpenGLContext.swapBuffers

    def swap(ctx, surface):
        if surface is cw:
            presented.append(QtOpenGL.QOpenGLWindow.grabFramebuffer(cw))  # what this swap shows
        real_swap(ctx, surface)
        if surface is cw and cw._mark is not None:
            # the mark of the frame before (the buffer two swaps ago), or black
            old = (cw._mark - 2) % 3 + 1 if after_swap == "two frames old" else 0
            GL.glClearColor(old / 255.0, 0.0, 0.0, 1.0)
            GL.glClear(GL.GL_COLOR_BUFFER_BIT)
            GL.glClearColor(0.0, 0.0, 0.0, 1.0)

    monkeypatch.setattr(QtGui.QOpenGLContext, "swapBuffers", swap)
    for i, (dx, dy) in enumerate(((0, 3), (5, 0), (0, -4))):
        repaints = cw.line_repaints
        cursor = gl_window.cursor
        cursor[:2] += (dx, dy)  # within the axial slice: its lines alone move
        gl_window.set_cursor(cursor)
        qtbot.waitUntil(lambda: not cw.dirty, timeout=3000)
        if i == 0:
            continue  # the frame before was swapped by Qt, unpatched
        assert cw.back_buffer_kept is False and cw.line_repaints == repaints  # drawn whole
        whole = cw.grab_frame()  # the whole picture drawn anew, same lines
        a, b = np.asarray(_image_array(presented[-1]), int), np.asarray(_image_array(whole), int)
        a[-1, 0] = b[-1, 0]  # the frame's mark
        assert a.shape == b.shape and np.abs(a - b).max() <= 1
    qtbot.wait(50)
    assert not cw.has_reading()  # a buffer found lost: nothing read ahead in the idle time


def _presented_and_fresh(cw):
    """(what the window's back buffer holds after its present, the same frame drawn anew and
    unmarked) as int arrays, the corner mark made equal."""
    from PySide6 import QtOpenGL

    cw.makeCurrent()
    try:
        shown = QtOpenGL.QOpenGLWindow.grabFramebuffer(cw)
    finally:
        cw.doneCurrent()
    whole = cw.grab_frame()
    a, b = np.asarray(_image_array(shown), int), np.asarray(_image_array(whole), int)
    a[-1, 0] = b[-1, 0]  # the frame's mark
    return a, b


def _image_array(image):
    from PySide6 import QtGui

    image = image.convertToFormat(QtGui.QImage.Format.Format_RGB888)
    w, h = image.width(), image.height()
    return np.frombuffer(image.constBits(), np.uint8, count=image.bytesPerLine() * h).reshape(
        h, image.bytesPerLine())[:, : w * 3].reshape(h, w, 3)


def test_a_scroll_renders_only_the_view_whose_slice_changed(gl_window, qtbot):
    gl_window.open_volume(_ramp_volume())
    views = gl_window.slice_views
    _next_paint(qtbot, *(v.canvas_window for v in views.values()))
    renders = {k: v.canvas_window.plane_renders for k, v in views.items()}
    uploads = {k: v.canvas_window.plane.uploads for k, v in views.items()}
    views["axial"].step_slice(1)
    qtbot.waitUntil(lambda: not any(v.canvas_window.dirty for v in views.values()), timeout=2000)
    assert views["axial"].canvas_window.plane.uploads == uploads["axial"] + 1
    for k in ("coronal", "sagittal"):  # their crosshair line moved; their plane did not
        assert views[k].canvas_window.plane.uploads == uploads[k]
        if views[k].canvas_window.back_buffer_kept:
            assert views[k].canvas_window.plane_renders == renders[k]


def _recording_views(gl_window, qtbot, monkeypatch, methods: dict):
    """The ramp volume open and painted; each canvas method named in ``methods`` appends
    (its tag, the view's name) to the returned events when called."""
    gl_window.open_volume(_ramp_volume())
    views = gl_window.slice_views
    canvases = {v.canvas_window: k for k, v in views.items()}
    _next_paint(qtbot, *canvases)
    events = []
    for cw, name in canvases.items():
        for method, tag in methods.items():
            real = getattr(cw, method)
            monkeypatch.setattr(cw, method, lambda real=real, name=name, tag=tag: (events.append((tag, name)), real()))
    return views, canvases, events


def test_in_a_scroll_the_views_whose_lines_move_read_their_buffer_before_any_view_is_drawn(
        gl_window, qtbot, monkeypatch):
    """Read after the scrolled view's draw, the corner mark waited for that view's raster; read
    first, it does not, and the raster runs while the other views' paints are prepared. The
    reading is for the next paint only: a later paint reads again. (No reading ahead in the
    idle time here: the next test has it.)"""
    from vol3d_gui.ui.gl_slice_frames import SliceFrames

    monkeypatch.setattr(SliceFrames, "_read_back_buffers", lambda frames: None)
    views, canvases, events = _recording_views(gl_window, qtbot, monkeypatch,
                                               {"check_back_buffer": "check_back_buffer", "paintGL": "paintGL"})
    views["axial"].step_slice(1)
    qtbot.waitUntil(lambda: not any(cw.dirty for cw in canvases), timeout=2000)
    checks = sorted(e for e in events if e[0] == "check_back_buffer")
    assert checks == [("check_back_buffer", "coronal"), ("check_back_buffer", "sagittal")]
    first_paint = next(i for i, e in enumerate(events) if e[0] == "paintGL")
    assert all(events.index(c) < first_paint for c in checks), events
    for k in ("coronal", "sagittal"):
        cw = views[k].canvas_window
        assert cw._checked is None  # used by this paint, never by a later one
        if cw.back_buffer_kept:
            assert cw.line_repaints > 0


def test_the_views_read_their_buffers_in_the_idle_time_after_a_present_and_not_in_the_next_move(
        gl_window, qtbot, monkeypatch):
    """The first GL call after a swap pays for the drawable's revalidation (Mesa's software
    path: an X round trip and its state); each view swapped makes it in the idle turn after
    the present, reading its corner mark, so the next move reads nothing before its paints
    and its views whose lines alone move still redraw only under the lines, correctly."""

    views, canvases, events = _recording_views(gl_window, qtbot, monkeypatch,
                                               {"check_back_buffer": "check_back_buffer", "paintGL": "paintGL"})
    views["axial"].step_slice(1)  # the first reading of the lines-only views finds their buffers
    qtbot.waitUntil(lambda: not any(cw.dirty for cw in canvases), timeout=2000)
    if not all(views[k].canvas_window.back_buffer_kept for k in ("coronal", "sagittal")):
        qtbot.wait(50)  # a driver that hands out other buffers: nothing is read ahead
        assert not any(cw.has_reading() for cw in canvases)
        return
    qtbot.waitUntil(lambda: all(cw.has_reading() for cw in canvases), timeout=2000)
    repaints = {k: views[k].canvas_window.line_repaints for k in views}
    events.clear()
    views["axial"].step_slice(1)
    qtbot.waitUntil(lambda: not any(cw.dirty for cw in canvases), timeout=2000)
    first_paint = next(i for i, e in enumerate(events) if e[0] == "paintGL")
    assert not any(e[0] == "check_back_buffer" for e in events[:first_paint]), events
    for k in ("coronal", "sagittal"):
        cw = views[k].canvas_window
        assert cw.line_repaints == repaints[k] + 1  # the reading read ahead served this paint
        a, b = _presented_and_fresh(cw)
        assert a.shape == b.shape and np.abs(a - b).max() <= 1


@pytest.mark.parametrize("pixels_per_voxel", [1.0, 2.0, 0.5])
def test_a_repaint_under_the_lines_shows_the_voxels_the_whole_picture_shows(gl_window, qtbot, pixels_per_voxel):
    """Zoomed so that pixel centres fall on voxel boundaries (every one at 1 or 0.5 pixel a
    voxel, every other at 2), the strips redrawn under the old lines pick the same voxel as the
    whole picture does: no column of the neighbouring voxel is left where a line was."""

    gl_window.open_volume(_ramp_volume())
    views = gl_window.slice_views
    cw = views["coronal"].canvas_window
    _next_paint(qtbot, *(v.canvas_window for v in views.values()))
    dpr = cw.devicePixelRatio()
    cw.mm_per_px = SPACING[0] / pixels_per_voxel * dpr  # one logical pixel
    # the view's left edge on a voxel's edge, in device pixels: (x + 0.5) / ppv - 0.5 + k
    x0 = (np.floor(-cw.width() / 2 * cw.mm_per_px / SPACING[0]) - 0.5) * SPACING[0]
    cw.center = np.array([x0 + cw.width() / 2 * cw.mm_per_px, cw.center[1]])
    cw.request()
    qtbot.waitUntil(lambda: not cw.dirty, timeout=2000)
    for _ in range(2):  # the first scroll may find the buffer unread; the second repaints lines
        repaints = cw.line_repaints
        views["axial"].step_slice(1)  # the coronal view's horizontal line moves, nothing else
        qtbot.waitUntil(lambda: not cw.dirty, timeout=2000)
    if not cw.back_buffer_kept:
        pytest.skip("this driver hands out another back buffer: the whole picture is drawn")
    assert cw.line_repaints == repaints + 1
    a, b = _presented_and_fresh(cw)
    assert a.shape == b.shape and np.abs(a - b).max() == 0, np.argwhere(np.abs(a - b).max(axis=2) > 0)[:5]


def test_a_move_paints_every_view_it_changed_then_presents_them_together(gl_window, qtbot, monkeypatch):
    """One turn of the event loop paints the three views a crosshair jump changed, each
    flushed, and only then swaps them: no view's swap waits between the others' paints. What
    each window then holds is its whole new picture."""
    from PySide6 import QtGui

    views, canvases, events = _recording_views(gl_window, qtbot, monkeypatch, {"paintGL": "paint"})
    real_swap = QtGui.QOpenGLContext.swapBuffers
    monkeypatch.setattr(QtGui.QOpenGLContext, "swapBuffers",
                        lambda ctx, surface: (events.append(("swap", canvases.get(surface))), real_swap(ctx, surface)))
    from PySide6 import QtCore

    class LabelPaints(QtCore.QObject):
        def eventFilter(self, obj, ev):
            if ev.type() == QtCore.QEvent.Type.Paint:
                events.append(("label", obj.text().split()[0].lower()))
            return False

    watcher = LabelPaints()
    for v in views.values():
        v.title_label.installEventFilter(watcher)
    presents = views["axial"].frames.presents
    cursor = gl_window.cursor
    cursor += (4.0, -3.0, 6.0)  # another slice in every view
    gl_window.set_cursor(cursor)
    qtbot.waitUntil(lambda: not any(cw.dirty for cw in canvases), timeout=3000)
    assert views["axial"].frames.presents == presents + 1
    assert sorted(events[:3]) == sorted(("paint", k) for k in views)
    # the new slice numbers are painted after the views' paints and before their swaps (the
    # widgets' painting overlaps the rasteriser's; they show together)
    swaps = [e for e in events if e[0] != "label"]
    assert sorted(swaps[3:6]) == sorted(("swap", k) for k in views), events
    first_swap = events.index(swaps[3])
    assert sorted(e for e in events[3:first_swap]) == sorted(("label", k) for k in views), events
    # swapped one after the other on this thread: none may wait for a vertical blank
    assert all(cw.format().swapInterval() == 0 for cw in canvases)
    for cw in canvases:
        if not cw.back_buffer_kept:
            continue  # a driver that does not keep the back buffer: nothing to read back
        a, b = _presented_and_fresh(cw)
        assert a.shape == b.shape and np.abs(a - b).max() <= 1


def test_a_move_uploads_every_views_planes_before_any_view_draws(gl_window, qtbot, monkeypatch):
    """A texture upload waits for whatever the rasteriser was given before it (llvmpipe's is
    shared by the views' contexts): the planes of all three views a jump changed are uploaded
    first, and the paints that follow upload nothing and show those planes."""
    views, canvases, events = _recording_views(gl_window, qtbot, monkeypatch,
                                               {"prepare": "prepare", "paintGL": "paint"})
    uploads = {}
    for cw in canvases:
        real_paint = cw._paint

        def paint(*args, cw=cw, real_paint=real_paint):
            before = (cw.plane.uploads, sum(p.uploads for p in cw._overlay_planes.values()))
            real_paint(*args)
            uploads[cw] = (before, (cw.plane.uploads, sum(p.uploads for p in cw._overlay_planes.values())))
        monkeypatch.setattr(cw, "_paint", paint)
    planes_before = {cw: cw.plane.uploads for cw in canvases}
    cursor = gl_window.cursor
    cursor += (4.0, -3.0, 6.0)  # another slice in every view
    gl_window.set_cursor(cursor)
    qtbot.waitUntil(lambda: not any(cw.dirty for cw in canvases), timeout=3000)
    assert sorted(events[:3]) == sorted(("prepare", k) for k in views), events
    assert sorted(events[3:6]) == sorted(("paint", k) for k in views), events
    for cw in canvases:
        assert cw.plane.uploads == planes_before[cw] + 1
        before, after = uploads[cw]
        assert before == after  # the paint drew what prepare uploaded
        assert cw.error is None
    for cw in canvases:  # and what each window shows is its whole new picture
        a, b = _presented_and_fresh(cw)
        assert a.shape == b.shape and np.abs(a - b).max() <= 1


def test_a_gl_error_in_a_paint_is_a_notice_not_a_crash(gl_window, qtbot, monkeypatch):
    """The slice views' per-paint GL calls skip PyOpenGL's check after every call
    (gl_calls); the errors of a paint are read at its end and reported as a failed call was."""
    from vol3d_gui.ui.gl_calls import gl

    gl_window.open_volume(_ramp_volume())
    view = gl_window.slice_views["axial"]
    cw = view.canvas_window
    _next_paint(qtbot, cw)
    real = cw._draw_cross

    def bad_cross(*args):
        gl.glEnable(0x1234)  # not a capability: GL_INVALID_ENUM
        return real(*args)
    monkeypatch.setattr(cw, "_draw_cross", bad_cross)
    cw._drawn_key = None
    grab(view.canvas)
    assert "GL error 0x0500" in (cw.error or ""), cw.error
    assert any("GL error" in n.text for n in gl_window.viewer.notices)


def test_views_closed_before_their_turn_are_forgotten_not_an_error(qtbot, monkeypatch):
    from PySide6 import QtCore, QtWidgets

    from vol3d_gui.ui.main_window import MainWindow

    monkeypatch.delenv("VOL3D_SLICES", raising=False)
    w = MainWindow()
    w.resize(900, 700)
    w.show()
    qtbot.waitExposed(w)
    if w.slice_views["axial"].backend != "gl":
        w.close()
        pytest.skip("no GL slice views here")
    w.open_volume(_ramp_volume())
    frames = w.slice_views["axial"].frames
    cursor = w.cursor
    cursor += (3.0, 3.0, 3.0)
    w.set_cursor(cursor)  # asks the three views for a paint at the next turn
    w.close()
    w.deleteLater()
    QtWidgets.QApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete)
    frames.present()  # the windows are gone: nothing to paint, no error
    assert frames._canvases == []


def test_slice_frames_hold_no_qobject_the_collector_could_free_off_the_gui_thread(gl_window):
    """A SliceFrames lives as long as its viewer model, which Python's collector may free in
    a worker thread; a QObject of its own (a QTimer) was then destroyed there, off the GUI
    thread, and deadlocked CI once against the GUI thread's own deletions."""
    from PySide6 import QtCore

    frames = gl_window.slice_views["axial"].frames
    assert not [k for k, v in vars(frames).items() if isinstance(v, QtCore.QObject)]


def test_overlays_colour_blend_and_threshold(gl_window):
    shape = (40, 40, 20)
    base = Volume(np.full(shape, 100, np.int16), centered_affine(shape, (1.0, 1.0, 2.0)))
    gl_window.open_volume(base)
    win = Window(100, 200)  # the base shows as grey 127
    gl_window.set_window(win)
    mask = np.zeros(shape, np.uint8)
    mask[5:15, 5:15, :] = 1
    gl_window.add_overlay(Volume(mask, base.affine), "mask", colormap="red", opacity=0.5, threshold=0.5)
    ramp = np.broadcast_to(np.linspace(0, 1, 40, dtype=np.float32)[None, :, None], shape).copy()
    gl_window.add_overlay(Volume(ramp, base.affine), "map", colormap="hot", opacity=1.0, threshold=0.6,
                          vmin=0.0, vmax=1.0)
    gl_window.set_cursor(base.voxel_to_world((30, 30, 10)))
    view = gl_window.slice_views["axial"]
    px = grab(view.canvas)
    grey = int(apply_window(np.array([100]), win)[0])
    red = np.array([grey, grey, grey]) * 0.5 + np.array(lut("red")[-1]) * 0.5
    np.testing.assert_allclose(_pixel(view, px, base.voxel_to_world((8, 8, 10))), red, atol=2)
    np.testing.assert_allclose(_pixel(view, px, base.voxel_to_world((20, 8, 10))), [grey] * 3, atol=1)
    # the map above its threshold, in its colour map at the value's level (8-bit quantised)
    j = 36
    level = int(np.clip((ramp[0, j, 0] - 0.0) * 255, 0, 255))
    hot = _pixel(view, px, base.voxel_to_world((20, j, 10)))
    assert np.abs(hot - np.asarray(lut("hot")[level], int)).max() <= 6
    # below it: the base
    np.testing.assert_allclose(_pixel(view, px, base.voxel_to_world((20, 20, 10))), [grey] * 3, atol=1)
    gl_window.set_window(Window(100, 300))  # a W/L drag: uniforms only, nothing uploaded
    grab(view.canvas)
    cw = view.canvas_window
    uploads = (cw.plane.uploads, [p.uploads for p in cw._overlay_planes.values()])
    gl_window.set_window(Window(100, 400))
    px = grab(view.canvas)
    assert (cw.plane.uploads, [p.uploads for p in cw._overlay_planes.values()]) == uploads
    grey2 = int(apply_window(np.array([100]), Window(100, 400))[0])
    red = np.array([grey2, grey2, grey2]) * 0.5 + np.array(lut("red")[-1]) * 0.5
    np.testing.assert_allclose(_pixel(view, px, base.voxel_to_world((8, 8, 10))), red, atol=2)
    gl_window.update_overlay("mask", visible=False)  # hidden (blind reading hides it so)
    px = grab(view.canvas)
    np.testing.assert_allclose(_pixel(view, px, base.voxel_to_world((8, 8, 10))), [grey2] * 3, atol=1)


def test_a_shader_the_driver_refuses_gives_the_cpu_views_with_a_notice(qtbot, monkeypatch):
    from vol3d_gui.ui import gl_slice_shaders, gl_slice_view
    from vol3d_gui.ui.main_window import MainWindow

    def refuse(*_a, **_k):
        raise RuntimeError("shader compile failed: no integer samplers")

    monkeypatch.delenv("VOL3D_SLICES", raising=False)
    monkeypatch.setattr(gl_slice_view, "_BACKEND", None)
    monkeypatch.setattr(gl_slice_shaders, "build_slice_program", refuse)
    assert gl_slice_view.slice_backend() == "cpu"
    assert "no integer samplers" in gl_slice_view.slice_backend_notice()
    w = MainWindow()
    qtbot.addWidget(w)
    assert all(v.backend == "cpu" for v in w.slice_views.values())
    assert "no integer samplers" in w.statusBar().currentMessage()
    w.open_volume(_ramp_volume())
    assert w.slice_views["axial"].image.image is not None  # the CPU views draw
    w.close()


def test_a_failure_while_painting_is_a_notice_not_a_crash(gl_window, monkeypatch):
    from vol3d_gui.ui import gl_slice_textures

    gl_window.open_volume(_ramp_volume())

    def broken(self, *_a, **_k):
        raise RuntimeError("out of texture memory")

    monkeypatch.setattr(gl_slice_textures.SliceTextures, "program", broken)
    view = gl_window.slice_views["coronal"]
    view.canvas_window.plane.key = None
    view.canvas_window._drawn_key = None  # the whole picture is drawn again
    grab(view.canvas)
    assert "out of texture memory" in (view.canvas_window.error or "")
    assert any("out of texture memory" in n.text for n in gl_window.viewer.notices)


def test_the_whole_slice_stays_in_view_when_the_view_is_maximised(gl_window, qtbot):
    vol = _ramp_volume()
    gl_window.open_volume(vol)
    view = gl_window.slice_views["coronal"]
    x, y, w, h = view.geometry.rect

    def whole():
        (x0, x1), (y0, y1) = view.view_range()
        return x0 <= x and x + w <= x1 and y0 <= y and y + h <= y1

    assert whole()
    small = view.canvas_window.mm_per_px
    gl_window.toggle_maximise("coronal")
    qtbot.waitUntil(lambda: not gl_window.slice_views["axial"].isVisible(), timeout=2000)
    qtbot.waitUntil(lambda: view.canvas_window.mm_per_px < 0.8 * small, timeout=2000)  # drawn larger
    assert whole()
    view.zoom_by(2.0)
    zoomed = view.view_range()
    big_zoomed = view.canvas_window.mm_per_px
    gl_window.toggle_maximise("coronal")
    qtbot.waitUntil(lambda: gl_window.slice_views["axial"].isVisible(), timeout=2000)
    qtbot.waitUntil(lambda: view.canvas_window.mm_per_px > 1.2 * big_zoomed, timeout=2000)
    (x0, x1), (y0, y1) = view.view_range()  # what the zoom showed stays whole in the smaller view
    assert x0 <= zoomed[0][0] + 1e-6 and x1 >= zoomed[0][1] - 1e-6
    assert y0 <= zoomed[1][0] + 1e-6 and y1 >= zoomed[1][1] - 1e-6


def test_hover_reads_out_and_right_drag_changes_the_window(gl_window, qtbot):
    from PySide6 import QtCore
    from PySide6.QtTest import QTest

    vol = _ramp_volume()
    gl_window.open_volume(vol)
    axial = gl_window.slice_views["axial"]
    target = axial.input_target()
    ijk = np.array([10, 30, axial.index])
    pos = axial.view_to_input(ijk[0] * SPACING[0], ijk[1] * SPACING[1])
    seen = []
    axial.hovered.connect(seen.append)
    QTest.mouseMove(target, pos)
    qtbot.waitUntil(lambda: bool(seen), timeout=2000)
    assert seen[-1] is not None and vol.nearest_voxel(seen[-1]) == tuple(ijk)
    before = gl_window.window_level
    QTest.mousePress(target, QtCore.Qt.MouseButton.RightButton, QtCore.Qt.KeyboardModifier.NoModifier, pos)
    QTest.mouseMove(target, pos + QtCore.QPoint(40, 0))
    QTest.mouseRelease(target, QtCore.Qt.MouseButton.RightButton, QtCore.Qt.KeyboardModifier.NoModifier,
                       pos + QtCore.QPoint(40, 0))
    qtbot.waitUntil(lambda: gl_window.window_level != before, timeout=2000)
    assert gl_window.window_level.width > before.width  # right-drag to the right widens


def test_keys_pressed_in_the_gl_window_reach_the_view_and_the_window(gl_window, qtbot, monkeypatch):
    from PySide6 import QtCore
    from PySide6.QtTest import QTest

    gl_window.open_volume(_ramp_volume())
    axial = gl_window.slice_views["axial"]
    start = axial.index
    QTest.keyClick(axial.input_target(), QtCore.Qt.Key.Key_PageUp)
    assert axial.index == start + 1
    dispatched = []
    monkeypatch.setattr(gl_window.shortcuts, "dispatch", lambda ev: dispatched.append(ev.key()) or True)
    QTest.keyClick(axial.input_target(), QtCore.Qt.Key.Key_N)  # not a view's key: the window's
    assert QtCore.Qt.Key.Key_N in dispatched


def _affine_rotated_about_z(base: Volume, degrees: float) -> np.ndarray:
    """The base's affine turned about the volume centre (an oblique grid)."""
    t = np.deg2rad(degrees)
    rot = np.eye(4)
    rot[:2, :2] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    centre = np.eye(4)
    centre[:3, 3] = base.voxel_to_world((np.asarray(base.shape) - 1) / 2)
    return centre @ rot @ np.linalg.inv(centre) @ base.affine


@pytest.mark.parametrize("grid", ["flipped_coarse", "permuted", "oblique", "gradcam_like"])
@pytest.mark.parametrize("orientation", ["axial", "coronal", "sagittal"])
def test_overlay_pixels_follow_the_cpu_rule_on_any_grid(gl_window, grid, orientation):
    """A map (trilinear) and a mask (nearest) on a grid of their own: aligned ones are read in
    the plane's pass from their cut plane, oblique ones by a pass of their own; every pixel
    is what core.resample gives (the CPU views' rule)."""
    vol = _ramp_volume()
    gl_window.open_volume(vol)
    win = Window(27.5, 255)
    gl_window.set_window(win)
    rng = np.random.default_rng(3)
    if grid == "flipped_coarse":  # half the resolution, x reversed
        shape = tuple(n // 2 for n in SHAPE)
        affine = vol.affine @ np.diag([-2.0, 2.0, 2.0, 1.0])
        affine[:3, 3] = vol.voxel_to_world((SHAPE[0] - 1.5, 0.5, 0.5))
    elif grid == "permuted":  # axes stored (z, x, y)
        shape = (SHAPE[2], SHAPE[0], SHAPE[1])
        perm = np.zeros((4, 4))
        perm[0, 1] = perm[1, 2] = perm[2, 0] = perm[3, 3] = 1.0
        affine = vol.affine @ perm
    elif grid == "gradcam_like":  # a map 5-8 base voxels a cell over the whole volume: sampled smooth
        shape = (8, 6, 4)
        affine = vol.affine @ np.diag([*(np.asarray(SHAPE) / shape), 1.0])
        affine[:3, 3] = vol.voxel_to_world((np.asarray(SHAPE) / shape - 1) / 2)
    else:
        shape, affine = SHAPE, _affine_rotated_about_z(vol, 20)
    smap = Volume(rng.random(shape).astype(np.float32), affine)
    mask = np.zeros(shape, np.uint8)
    mask[tuple(slice(n // 4, n // 2) for n in shape)] = 1
    mvol = Volume(mask, affine)
    gl_window.add_overlay(mvol, "mask", colormap="green", opacity=0.6, threshold=0.5)
    gl_window.add_overlay(smap, "map", colormap="hot", opacity=0.5, threshold=0.3, vmin=0.0, vmax=1.0, order=1)
    gl_window.set_cursor(vol.voxel_to_world((np.asarray(SHAPE) - 1) * 0.4))
    view = gl_window.slice_views[orientation]
    px = grab(view.canvas)
    layers = list(gl_window.viewer.layers.overlays)
    fused, own = view.textures.split(layers)
    assert len(own) == (2 if grid == "oblique" else 0)  # the path this case is about
    if grid != "oblique":
        from vol3d_gui.ui.gl_slice_passes import smooth_map

        sampling = view.canvas_window._overlay_planes[id(smap)].sampling
        assert smooth_map(view.textures.prepared(layers[1]), sampling) == (grid == "gradcam_like")
    axis, index = view.geometry.axis, view.index
    a, b = view.geometry.in_plane_axes
    planes = [lay.rgba_plane(vol, axis, index) for lay in layers]
    checked = 0
    for ijk in _off_crosshair_voxels(view, vol, n=40, seed=1):
        expected = np.full(3, float(apply_window(np.array([vol.data[tuple(ijk)]]), win)[0]))
        near_threshold = False
        for lay, rgba in zip(layers, planes, strict=True):
            if rgba is None:
                continue
            r = rgba[ijk[a], ijk[b]].astype(float)
            expected = expected * (1 - r[3] / 255) + r[:3] * (r[3] / 255)
            if lay.order == 1:  # 8-bit filter weights on the GPU: a value at the threshold may flip
                from vol3d_gui.core.resample import sample_plane
                v = sample_plane(lay.volume, vol, axis, index, order=1, cval=np.nan)[ijk[a], ijk[b]]
                near_threshold |= bool(abs(v - lay.threshold) < 0.02)
        if near_threshold:
            continue
        np.testing.assert_allclose(_pixel(view, px, vol.voxel_to_world(ijk)), expected, atol=8,
                                   err_msg=f"voxel {ijk}")
        checked += 1
    assert checked >= 30


def test_the_frame_mark_never_covers_a_voxel(gl_window, qtbot):
    """The mark that tells a kept back buffer is left only on background: zoomed in until the
    plane covers the corner, no mark, and every crosshair move draws the whole picture."""
    vol = _ramp_volume()
    gl_window.open_volume(vol)
    axial = gl_window.slice_views["axial"]
    cw = axial.canvas_window
    _next_paint(qtbot, cw)
    assert cw._mark is not None  # fitted: the corner is background
    axial.zoom_by(4.0)
    _next_paint(qtbot, cw)
    assert cw._plane_box[0] < 1 and cw._plane_box[2] < 1 and cw._mark is None
    renders = cw.plane_renders
    cursor = gl_window.cursor
    cursor[1] += 1.0
    gl_window.set_cursor(cursor)
    qtbot.waitUntil(lambda: not cw.dirty, timeout=3000)
    assert cw.plane_renders == renders + 1


def test_a_small_mask_is_drawn_over_its_own_box_only(gl_window, qtbot):
    """A lesion's mask is fused into the plane's pass only where it can show: the rest of the
    plane is drawn by the program without it (llvmpipe pays for a fused overlay on every
    pixel of the pass). Its pixels stay what the CPU rule says."""
    base = _ramp_volume()
    gl_window.open_volume(base)
    win = Window(0, 300)
    gl_window.set_window(win)
    mask = np.zeros(SHAPE, np.uint8)
    mask[18:22, 20:25, 14:18] = 1
    gl_window.add_overlay(Volume(mask, base.affine), "lesion", colormap="red", opacity=0.5, threshold=0.5)
    gl_window.set_cursor(base.voxel_to_world(np.array([20.0, 22.0, 15.0])))
    axial = gl_window.slice_views["axial"]
    px = grab(axial.canvas)
    cw = axial.canvas_window
    area = {subset: sum((b[1] - b[0]) * (b[3] - b[2]) for b in boxes) for subset, boxes in cw.drawn_regions}
    assert set(area) == {(), (0,)}
    assert area[(0,)] < 0.1 * sum(area.values())
    inside = base.voxel_to_world(np.array([19.0, 21.0, 15.0]))
    outside = base.voxel_to_world(np.array([10.0, 30.0, 15.0]))
    colour = lut("red")[-1].astype(float)
    for world, lesion in ((inside, True), (outside, False)):
        grey = int(apply_window(np.array([base.data[tuple(np.rint(base.world_to_voxel(world)).astype(int))]]), win)[0])
        expected = 0.5 * colour + 0.5 * grey if lesion else np.full(3, float(grey))
        assert np.abs(_pixel(axial, px, world) - expected).max() <= 2


def test_the_labels_follow_the_slice_and_the_window_at_one_width(gl_window, qtbot):
    """A scroll or a drag rewrites the slice number only; the title keeps the width of its
    widest text for this volume (a label that changed width laid the view out again on every
    slice), and the W/L label follows a window change."""
    from PySide6 import QtWidgets

    vol = _ramp_volume()
    gl_window.open_volume(vol)
    axial = gl_window.slice_views["axial"]
    n = vol.shape[axial.geometry.axis]
    QtWidgets.QApplication.processEvents()
    width = axial.title_label.width()
    for step in (1, 1, -3):
        axial.step_slice(step)
        QtWidgets.QApplication.processEvents()
        assert axial.title_label.text() == f"Axial  {axial.index + 1}/{n}"
        assert axial.title_label.width() == width
    gl_window.set_window(Window(55, 321))
    assert axial.wl_label.text() == str(Window(55, 321))
    other = Volume(np.zeros((8, 9, 123), np.int16), centered_affine((8, 9, 123), (1.0, 1.0, 1.0)))
    gl_window.open_volume(other)  # another volume: its own widest text
    QtWidgets.QApplication.processEvents()
    assert axial.title_label.text().endswith("/123") and axial.title_label.width() >= width
