"""The viewer against napari (issue 16's targets), both in the same process and run.

Volume: 512x512x300 int16 (lesion phantom) with its lesion mask and a Grad-CAM-sized
saliency map as overlays in vol3d. napari shows the image alone (its figures are the floor of
what it needs, and the targets' basis) and, in a second viewer, the same three layers as
vol3d (``napari_same_layers_*``: the mask as labels, the map as a hot image over it). Both
napari canvases are fitted to the volume, as vol3d's views are; ``bench/out/napari_*.png``
and ``vol3d_axial.png`` show what each side drew. Figures, medians over alternated runs:

- napari one-view slice update: ``dims.set_current_step`` + a frame of its canvas
  (``grabFramebuffer``: paintGL and a read-back; ``repaint()`` of a QOpenGLWidget draws
  nothing synchronously);
- vol3d crosshair move (``vol3d_crosshair_ms``): the crosshair dragged in one view (a third
  of the moves in each), as a reader moves it: a point of that view's slice, so the other two
  views show new slices and the dragged one its picture with the lines moved. ``set_cursor``
  + each GL slice view that asked for a paint rendered and presented synchronously
  (``render_now``), then the labels' pending repaints (``*_each_ms``: the views only; for
  CPU views, one synchronous repaint of the widget holding the three views).
  ``vol3d_crosshair_jump_ms``: a jump to a random 3-D point (all three views change slice,
  as "go to the map's peak" does); this was the only crosshair figure until stop 20;
- vol3d scroll: one view steps a slice (wheel, Page Up/Down) + the same (the other two move
  their crosshair line); ``*_evented_ms``: the change, then the event loop until every view
  has painted (a GL window paints on its update request, within a frame: this includes the
  wait);
- window/level drag step: the model's window + the same repaint, per step of a run of four
  consecutive steps (a drag; each step redraws each GL view's whole picture, overlays
  included, with the new window as a uniform), and one step plus
  one paint of the 3-D view (in MIP, the view's default and the mode measured here, that paint
  recolours the finished frame; in the other modes it ray-marches a preview);
- 3-D: first full-quality frame (grab) against napari's first 3-D frame (grab), and orbit
  frames per second: vol3d's progressive paint (preview while moving) and its whole
  interactive-quality frame, napari's frame;
- memory: resident set size after opening the volume in the window against the volume's size;
- ``cpu_views_*``: the same crosshair, scroll and W/L steps in a window without GL (the CPU
  slice views, the fallback), alternated with the rest;
- ``vol3d_*_floor_ms``: the same drag move and scroll with each view's paint replaced by a
  clear and the upload of its textures before it by nothing: the model's change, the labels,
  and making current, flushing and swapping the same three windows, nothing drawn. What a
  move costs on this machine before a pixel of the picture is drawn; beside napari's figure
  it says how much of a target is left for the drawing itself.

napari is an optional bench dependency (``pip install -e '.[bench]'``): without it the
napari figures are skipped and vol3d's are still measured.
Run under a display, e.g. xvfb-run -a -s "-screen 0 1600x1000x24 +extension GLX +render".
"""

from __future__ import annotations

import gc
import os
import time

import numpy as np

from bench.common import OUT, add_viewer_overlays, report, viewer_case, window_without_gl


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _median_ms(times) -> float:
    return round(float(np.median(times)) * 1e3, 2)


def _settle(app, seconds: float) -> None:
    from PySide6 import QtCore

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 5)


def _no_upload(canvas):
    def prepare():
        canvas._prepared = None
    return prepare


def _clear_paint(canvas):
    from OpenGL import GL

    def paint():
        canvas.dirty = False
        GL.glClear(GL.GL_COLOR_BUFFER_BIT)
    return paint


def _napari(data_zyx: np.ndarray, view_size, res: dict, app, overlays=None) -> dict | None:
    """napari's viewer showing ``data_zyx`` in a canvas of ``view_size``, fitted to it as our
    views are; with ``overlays`` ((mask, saliency) as (z, y, x) arrays) it shows them too, as
    vol3d does: the mask as a labels layer, the map as a hot image over it."""
    try:
        import napari
    except ImportError:
        res["napari"] = "not installed: pip install -e '.[bench]'"
        return None
    res["napari_version"] = napari.__version__
    viewer = napari.Viewer(show=True)
    qt = viewer.window._qt_viewer
    for dock in (qt.dockLayerList, qt.dockLayerControls):  # the canvas alone, sized like one of our views
        dock.setVisible(False)
    layer = viewer.add_image(data_zyx, contrast_limits=(-160, 240), colormap="gray")
    if overlays is not None:
        mask, sal = overlays
        viewer.add_labels(mask, opacity=0.4)
        scale = np.array(data_zyx.shape) / np.array(sal.shape)  # the map's cells span the volume
        viewer.add_image(sal, scale=scale, colormap="hot", opacity=0.5, contrast_limits=(0.0, 1.0),
                         blending="translucent", interpolation2d="linear")
    canvas = qt.canvas.native
    _settle(app, 0.5)
    win = viewer.window._qt_window
    for _ in range(3):  # the window's size that gives the canvas the asked size
        win.resize(win.width() + view_size[0] - canvas.width(), win.height() + view_size[1] - canvas.height())
        _settle(app, 0.3)
    # the volume fitted to the canvas, as our views show it: until stop 23 napari kept the
    # zoom of its first, larger canvas and drew the slice over a fifth of this one's width
    viewer.reset_view()
    _settle(app, 0.3)
    res["napari_canvas"] = [canvas.width(), canvas.height()]

    def slice_update(k):
        viewer.dims.set_current_step(0, k)
        canvas.grabFramebuffer()

    swaps = [0]
    canvas.frameSwapped.connect(lambda: swaps.__setitem__(0, swaps[0] + 1))

    def slice_presented(k):
        """Through the event loop until the frame is on screen (QOpenGLWidget.frameSwapped:
        the window composed and swapped), as vol3d_crosshair_evented waits for its views."""
        from PySide6 import QtCore

        n = swaps[0]
        viewer.dims.set_current_step(0, k)
        deadline = time.perf_counter() + 1.0
        while swaps[0] == n and time.perf_counter() < deadline:
            app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 1)

    def window_step(i):
        layer.contrast_limits = (-160 + i % 7, 240 + i % 5)
        canvas.grabFramebuffer()

    def frame_3d(_):
        viewer.camera.angles = (viewer.camera.angles[0], viewer.camera.angles[1] + 6, viewer.camera.angles[2])
        canvas.grabFramebuffer()

    def first_3d():
        viewer.dims.ndisplay = 3
        canvas.grabFramebuffer()

    def picture():
        return canvas.grabFramebuffer()

    def close():
        viewer.close()

    return {"slice": slice_update, "slice_presented": slice_presented, "window": window_step, "orbit": frame_3d, "first_3d": first_3d,
            "picture": picture, "close": close}


def main(moves: int = 25) -> dict:
    from PySide6 import QtCore

    from vol3d_gui.ui.app import make_app

    app = make_app()
    from vol3d_gui.core.windowing import Window
    from vol3d_gui.ui.main_window import MainWindow

    vol, mask, sal = viewer_case()
    res: dict = {"volume": "512x512x300 int16; vol3d with mask + saliency overlays, napari the image alone and with the same layers",
                 "volume_mb": round(vol.data.nbytes / 2**20, 1)}
    w = MainWindow()
    w.resize(1400, 900)
    w.show()
    _settle(app, 0.5)
    gc.collect()
    rss0 = _rss()
    w.open_volume(vol)
    add_viewer_overlays(w, mask, sal)
    vv = w.volume_view
    if vv.available:  # the first frame: texture upload, shader compile, full-quality ray-march
        t0 = time.perf_counter()
        vv.grab_frame()
        res["vol3d_3d_first_frame_s"] = round(time.perf_counter() - t0, 3)
    _settle(app, 0.5)
    gc.collect()
    res["rss_after_open_mb"] = round(_rss() / 2**20, 1)
    res["rss_growth_on_open_mb"] = round((_rss() - rss0) / 2**20, 1)
    res["rss_growth_vs_volume"] = round((_rss() - rss0) / vol.data.nbytes, 2)
    res["view_sizes"] = {k: [v.canvas.width(), v.canvas.height()] for k, v in w.slice_views.items()}
    res["slice_backend"] = w.slice_views["axial"].backend

    rng = np.random.default_rng(1)
    points = vol.voxel_to_world(rng.uniform([0, 0, 0], np.asarray(vol.shape) - 1, size=(moves, 3)))
    views = list(w.slice_views.values())

    def dragged(window, i, k=None):
        """A point of one view's slice (its other two coordinates those of point k, default i):
        a drag in it, the first third of the moves in the axial view, then coronal, then
        sagittal."""
        view = list(window.slice_views.values())[min(3 * (i % moves) // moves, 2)]
        ijk = vol.world_to_voxel(points[i if k is None else k % moves]).copy()
        ijk[view.geometry.axis] = vol.world_to_voxel(window.cursor)[view.geometry.axis]
        return vol.voxel_to_world(ijk)

    axial = w.slice_views["axial"]

    holder = views[0].parentWidget()
    assert all(v.parentWidget() is holder for v in views)

    gl = views[0].backend == "gl"

    def repaint_slices():
        if gl:  # each GL view asked to paint renders and presents now, then the labels
            for v in views:
                v.render_now()
            app.sendPostedEvents(None, QtCore.QEvent.Type.UpdateRequest)
        else:
            holder.repaint()

    def ours_cursor_each(i):
        w.set_cursor(dragged(w, (i + moves // 2) % moves))  # another point than ours_cursor's
        for v in views:
            v.render_now() if gl else v.graphics.viewport().repaint()

    def ours_cursor(i):
        # one move of a drag under way: the move before it (same view) is not timed, as the
        # other benches run between two samples
        w.set_cursor(dragged(w, i, i + 7))
        repaint_slices()
        _settle(app, 0.02)  # the windows' own update requests for it delivered, as before any sample
        t0 = time.perf_counter()
        w.set_cursor(dragged(w, i))
        repaint_slices()
        return time.perf_counter() - t0

    def ours_jump(i):
        # not point i: the drag before left the cursor there but for one coordinate
        w.set_cursor(points[(i + 11) % moves])
        repaint_slices()

    def until_painted():
        app.processEvents()  # Qt repaints what changed, as it does for a mouse event
        # a GL view paints on its window's update request (timer-driven): wait for it
        deadline = time.perf_counter() + 0.5
        while gl and any(v.canvas_window.dirty for v in views) and time.perf_counter() < deadline:
            app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.WaitForMoreEvents, 1)

    def cleared_paints(fn):
        """fn with every GL view's paint a clear (the floor rows)."""
        def run(i):
            canvases = [v.canvas_window for v in views]
            for c in canvases:
                c.paintGL = _clear_paint(c)
                c.prepare = _no_upload(c)  # the views' textures are uploaded before their paints
            try:
                return fn(i)
            finally:
                for c in canvases:
                    del c.paintGL, c.prepare
                    c.request()  # the next row starts from the real pictures
                repaint_slices()
        return run

    def ours_cursor_evented(i):
        w.set_cursor(dragged(w, (i + moves // 3) % moves))
        until_painted()

    def ours_scroll_evented(i):
        axial.step_slice(1 if i % 2 == 0 else -1)
        until_painted()  # the axial image and two crosshair lines repainted

    def ours_scroll(i):
        axial.step_slice(1 if i % 2 == 0 else -1)
        repaint_slices()

    def ours_scroll_timed(i):
        t0 = time.perf_counter()
        ours_scroll(i)
        return time.perf_counter() - t0

    def ours_window(i):
        # a drag is a run of steps: the time of four consecutive steps, divided by four below
        for s in range(4):
            w.set_window(Window(40 + i % 7 + 3 * s, 400 + i % 5 + 2 * s))
            repaint_slices()

    def ours_window_3d(i):
        w.set_window(Window(45 + i % 7, 410 + i % 5))  # not ours_window's values: a real change
        repaint_slices()
        if vv.available:
            vv.glview.grabFramebuffer()  # one paint, as the event loop would do

    # the fallback in the same alternation: a window without GL (the CPU slice views, no 3-D view)
    wc = window_without_gl()
    wc.resize(1400, 900)
    wc.show()
    wc.open_volume(vol)
    add_viewer_overlays(wc, mask, sal)
    _settle(app, 0.3)
    cpu_holder = wc.slice_views["axial"].parentWidget()

    def cpu_cursor(i):
        wc.set_cursor(dragged(wc, i))
        cpu_holder.repaint()

    def cpu_scroll(i):
        wc.slice_views["axial"].step_slice(1 if i % 2 == 0 else -1)
        cpu_holder.repaint()

    def cpu_window(i):
        for s in range(4):  # as ours_window
            wc.set_window(Window(40 + i % 7 + 3 * s, 400 + i % 5 + 2 * s))
            cpu_holder.repaint()

    data_zyx = np.ascontiguousarray(vol.data.transpose(2, 1, 0))  # the same bytes as vol.data
    peer = _napari(data_zyx, res["view_sizes"]["axial"], res, app)
    peer_layers = None
    if peer is not None:
        overlays = (np.ascontiguousarray((mask.data.transpose(2, 1, 0) > 0.5).astype(np.uint8)),
                    np.ascontiguousarray(sal.data.transpose(2, 1, 0)))
        peer_layers = _napari(data_zyx, res["view_sizes"]["axial"], res, app, overlays)
        OUT.mkdir(exist_ok=True)  # what each side shows, to look at
        peer["picture"]().save(str(OUT / "napari_image_alone.png"))
        peer_layers["picture"]().save(str(OUT / "napari_same_layers.png"))
        if gl:
            axial.canvas_window.grab_frame().save(str(OUT / "vol3d_axial.png"))
    fns = {"cpu_views_crosshair": cpu_cursor, "cpu_views_scroll": cpu_scroll, "cpu_views_window": cpu_window,"vol3d_crosshair": ours_cursor, "vol3d_crosshair_jump": ours_jump,
           "vol3d_crosshair_each": ours_cursor_each,
           "vol3d_crosshair_evented": ours_cursor_evented, "vol3d_scroll_evented": ours_scroll_evented,
           "vol3d_scroll": ours_scroll, "vol3d_window": ours_window,
           "vol3d_window_with_3d": ours_window_3d}
    if gl:
        fns["vol3d_crosshair_floor"] = cleared_paints(ours_cursor)
        fns["vol3d_scroll_floor"] = cleared_paints(ours_scroll_timed)
    if peer is not None:
        fns["napari_slice"] = lambda i: peer["slice"](int(rng.integers(0, 300)))
        fns["napari_slice_presented"] = lambda i: peer["slice_presented"](int(rng.integers(0, 300)))
        fns["napari_window"] = peer["window"]
        fns["napari_same_layers_slice"] = lambda i: peer_layers["slice"](int(rng.integers(0, 300)))
    times = {k: [] for k in fns}
    for f in fns.values():  # warm
        f(0)
    for i in range(moves):  # alternated, so load from other processes hits all alike
        for k, f in fns.items():
            # a quiet start for each: the X server done with the last one's pixels (a CPU
            # window's repaint sends ~3 MB to Xvfb, and the next swap waited for it)
            _settle(app, 0.02)
            t0 = time.perf_counter()
            own = f(i)  # a function that times only part of itself returns that time
            times[k].append(own if isinstance(own, float) else time.perf_counter() - t0)
    for k in ("vol3d_window", "cpu_views_window"):
        times[k] = [t / 4 for t in times[k]]  # per step of the drag
    for k, t in times.items():
        res[f"{k}_ms"] = _median_ms(t)
    wc.close()
    if peer is not None:
        res["crosshair_vs_napari_slice"] = round(res["vol3d_crosshair_ms"] / res["napari_slice_ms"], 2)
        res["crosshair_jump_vs_napari_slice"] = round(res["vol3d_crosshair_jump_ms"] / res["napari_slice_ms"], 2)
        res["scroll_vs_napari_slice"] = round(res["vol3d_scroll_ms"] / res["napari_slice_ms"], 2)
        # the same gesture both sides through the event loop until on screen (not the target's basis)
        res["crosshair_evented_vs_napari_presented"] = round(
            res["vol3d_crosshair_evented_ms"] / res["napari_slice_presented_ms"], 2)
        res["scroll_evented_vs_napari_presented"] = round(
            res["vol3d_scroll_evented_ms"] / res["napari_slice_presented_ms"], 2)
        if gl:
            res["crosshair_floor_vs_napari_slice"] = round(res["vol3d_crosshair_floor_ms"] / res["napari_slice_ms"], 2)
            res["scroll_floor_vs_napari_slice"] = round(res["vol3d_scroll_floor_ms"] / res["napari_slice_ms"], 2)
        # the peer showing what vol3d shows (the image, the mask, the map): the same task
        # both sides; the image-alone rows above are the stricter basis the targets use
        res["crosshair_vs_napari_same_layers"] = round(res["vol3d_crosshair_ms"] / res["napari_same_layers_slice_ms"], 2)
        res["scroll_vs_napari_same_layers"] = round(res["vol3d_scroll_ms"] / res["napari_same_layers_slice_ms"], 2)
        res["target_crosshair_le"] = 0.5
        res["target_scroll_le"] = 0.33

    if vv.available:
        vv.set_mode("mip")
        vv.reset_camera()
        _settle(app, 0.5)
        t0 = time.perf_counter()
        vv.model.window = Window(400, 1800)
        vv.grab_frame(full_quality=True)
        res["vol3d_3d_full_frame_s"] = round(time.perf_counter() - t0, 3)
        t_paint, t_frame = [], []
        for _ in range(8):
            t0 = time.perf_counter()
            vv.orbit(6, 0)
            vv.glview.grabFramebuffer()  # one paint while the reader orbits (the preview)
            t_paint.append(time.perf_counter() - t0)
        for _ in range(4):
            t0 = time.perf_counter()
            vv.orbit(6, 0)
            vv.grab_frame(full_quality=False)  # the whole interactive-quality frame
            t_frame.append(time.perf_counter() - t0)
        res["vol3d_orbit_paint_fps"] = round(1 / float(np.median(t_paint)), 1)
        res["vol3d_orbit_whole_frame_fps"] = round(1 / float(np.median(t_frame)), 1)
        res["vol3d_3d_viewport"] = [vv.glview.width(), vv.glview.height()]
    if peer is not None:
        t0 = time.perf_counter()
        peer["first_3d"]()
        res["napari_3d_first_frame_s"] = round(time.perf_counter() - t0, 3)
        t = []
        for i in range(4):
            t0 = time.perf_counter()
            peer["orbit"](i)
            t.append(time.perf_counter() - t0)
        res["napari_orbit_fps"] = round(1 / float(np.median(t)), 1)
        if "vol3d_3d_first_frame_s" in res:
            res["3d_first_frame_vs_napari"] = round(res["vol3d_3d_first_frame_s"] / res["napari_3d_first_frame_s"], 2)
        if "vol3d_orbit_whole_frame_fps" in res:
            res["orbit_whole_frame_fps_vs_napari"] = round(res["vol3d_orbit_whole_frame_fps"] / res["napari_orbit_fps"], 2)
        peer["close"]()
        peer_layers["close"]()
    res["load_average_1min"] = os.getloadavg()[0]
    w.close()
    return report("napari", res)


if __name__ == "__main__":
    main()
