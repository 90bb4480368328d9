"""Viewer responsiveness on a 512x512x300 int16 CT with an overlay on.

- crosshair: time per MainWindow.set_cursor including the repaint of the three slice
  views (image, lesion mask and saliency overlays), against extracting the same three
  slices with numpy and applying the same window LUT, alternated move by move; medians;
- overlay: drawing a 512x512 slice with a Grad-CAM-sized saliency overlay against the
  slice alone;
- 3-D view: first frame, and orbit frames per second in each mode (Mesa llvmpipe here).

Run under a display, e.g. xvfb-run -a -s "-screen 0 1600x1000x24 +extension GLX +render".
"""

import os
import time

import numpy as np

from bench.common import add_viewer_overlays, report, viewer_case, window_without_gl


def main(moves: int = 40) -> dict:
    from vol3d_gui.ui.app import make_app

    app = make_app()
    from vol3d_gui.ui.main_window import MainWindow
    from vol3d_gui.viewer.colormaps import windowed

    vol, mask, sal = viewer_case()
    w = MainWindow()
    w.resize(1400, 900)
    w.show()
    t0 = time.perf_counter()
    w.open_volume(vol)
    for _ in range(3):
        app.processEvents()
    open_s = time.perf_counter() - t0
    add_viewer_overlays(w, mask, sal)
    rng = np.random.default_rng(1)
    points = vol.voxel_to_world(rng.uniform([0, 0, 0], np.asarray(vol.shape) - 1, size=(moves, 3)))
    views = list(w.slice_views.values())
    window = w.window_level

    def paint_now(vs):
        for v in vs:  # GL views render and present what changed; CPU views repaint
            v.render_now() if v.backend == "gl" else v.graphics.viewport().repaint()

    def move(p):
        # what a reader waits for while dragging the crosshair: the three slice views
        # re-sampled (image and both overlays) and painted; the 3-D crosshair follows
        # once the cursor settles (timed below)
        w.set_cursor(p)
        paint_now(views)

    def numpy_move(p):
        # the floor: the same three planes cut from the array and put through the same
        # window lookup table the views use
        i, j, k = np.rint(vol.world_to_voxel(p)).astype(int)
        for sl in (vol.data[:, :, k], vol.data[:, j, :], vol.data[i, :, :]):
            windowed(sl.T, window)

    move(points[0])
    numpy_move(points[0])
    app.processEvents()
    t_view, t_np = [], []
    for p in points:  # alternate, so load from other processes hits both alike
        t0 = time.perf_counter()
        move(p)
        t_view.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        numpy_move(p)
        t_np.append(time.perf_counter() - t0)
    per_move, numpy_per_move = float(np.median(t_view)), float(np.median(t_np))

    # the same moves in a window without GL (no 3-D view, the CPU slice views)
    w2 = window_without_gl()
    w2.resize(1400, 900)
    w2.show()
    w2.open_volume(vol)
    add_viewer_overlays(w2, mask, sal)
    app.processEvents()
    views2 = list(w2.slice_views.values())
    t_nogl = []
    for p in points:
        t0 = time.perf_counter()
        w2.set_cursor(p)
        paint_now(views2)
        t_nogl.append(time.perf_counter() - t0)
    w2.close()

    # the 3-D view's crosshair frame after the cursor settles (interactive quality)
    t_3d = []
    if w.volume_view.available:
        for p in points[:5]:
            t0 = time.perf_counter()
            w.set_cursor(p)
            w.volume_view.grab_frame(full_quality=False)
            t_3d.append(time.perf_counter() - t0)

    # overlay cost on one 512x512 slice: render with and without the saliency overlay
    ax = w.slice_views["axial"]

    def draw(n=20):
        t = time.perf_counter()
        for _ in range(n):
            if ax.backend == "gl":
                ax.invalidate()  # cut, upload and render the plane again
                ax.canvas_window.grab_frame()  # one frame, read back (no event loop: no 3-D bands)
            else:
                ax._render_slice()
                ax.graphics.grab()  # renders the view itself, without composing the window
        return (time.perf_counter() - t) / n

    with_ov = draw()
    w.update_overlay("saliency", visible=False)
    w.update_overlay("lesion mask", visible=False)
    without_ov = draw()

    res = {"volume": "512x512x300 int16, mask + saliency overlays", "slice_backend": ax.backend,
           "open_and_first_paint_s": open_s,
           "moves": moves, "load_average_1min": os.getloadavg()[0],
           "set_cursor_with_repaint_ms_median": per_move * 1e3,
           "set_cursor_with_repaint_ms_mean": float(np.mean(t_view)) * 1e3,
           "updates_per_s": 1 / per_move,
           "numpy_slices_plus_lut_ms_median": numpy_per_move * 1e3,
           "ratio_vs_numpy": per_move / numpy_per_move,
           "set_cursor_with_repaint_cpu_views_no_gl_ms_median": float(np.median(t_nogl)) * 1e3,
           "set_cursor_plus_3d_crosshair_frame_ms_median": float(np.median(t_3d)) * 1e3 if t_3d else None,
           "axial_slice_draw_ms": without_ov * 1e3, "axial_slice_with_saliency_ms": with_ov * 1e3,
           "overlay_extra_ms": (with_ov - without_ov) * 1e3}

    vv = w.volume_view
    if vv.available:
        # grabFramebuffer renders synchronously: a real frame time, not a scheduled update
        for mode in ("mip", "translucent", "iso"):
            vv.set_mode(mode)
            t0 = time.perf_counter()
            vv.grab_frame(full_quality=True)
            res[f"3d_{mode}_full_frame_ms"] = (time.perf_counter() - t0) * 1e3
            n = 5
            t0 = time.perf_counter()
            for _ in range(n):
                vv.orbit(5, 0)  # interactive quality while orbiting
                vv.grab_frame(full_quality=False)
            res[f"3d_{mode}_orbit_fps"] = n / (time.perf_counter() - t0)
        res["3d_status"] = vv.status_text
        import OpenGL.GL as gl

        vv.glview.makeCurrent()
        res["gl_renderer"] = gl.glGetString(gl.GL_RENDERER).decode()
        vv.glview.doneCurrent()
    w.close()
    return report("viewer", res)


if __name__ == "__main__":
    main()
