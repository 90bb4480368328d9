"""Viewer responsiveness on a 512x512x300 int16 CT with an overlay on.

- crosshair: time per MainWindow.set_cursor including the repaint of the three slice
  views, against extracting the same three slices with numpy and applying the same LUT;
- overlay: drawing a 512x512 slice with a Grad-CAM-sized saliency overlay against the
  slice alone;
- 3-D view: first frame, and orbit frames per second in each mode (Mesa llvmpipe here).

Run under a display, e.g. xvfb-run -a -s "-screen 0 1600x1000x24 +extension GLX +render".
"""

import time

import numpy as np

from bench.common import report


def main(moves: int = 40) -> dict:
    from vol3d_gui.ui.app import make_app

    app = make_app()
    from vol3d_gui.core.phantom import lesion_phantom
    from vol3d_gui.core.volume import Volume
    from vol3d_gui.core.windowing import apply_window
    from vol3d_gui.ui.main_window import MainWindow

    vol, mask = lesion_phantom(0, True, shape=(512, 512, 300), spacing=(0.7, 0.7, 1.0))
    sal = Volume(np.random.default_rng(0).random((8, 8, 6)).astype(np.float32),
                 vol.affine @ np.diag([64, 64, 50, 1.0]))
    w = MainWindow()
    w.resize(1400, 900)
    w.show()
    t0 = time.perf_counter()
    w.open_volume(vol)
    for _ in range(3):
        app.processEvents()
    open_s = time.perf_counter() - t0
    w.add_overlay(mask, "lesion mask", colormap="green", opacity=0.4, threshold=0.5)
    w.add_overlay(sal, "saliency", colormap="hot", opacity=0.5, threshold=0.2, vmin=0.0, vmax=1.0, order=1)
    rng = np.random.default_rng(1)
    points = vol.voxel_to_world(rng.uniform([0, 0, 0], np.asarray(vol.shape) - 1, size=(moves, 3)))
    views = list(w.slice_views.values())

    def move(p):
        # the update a user sees: three slice views and the 3-D view's crosshair frame
        w.set_cursor(p)
        for v in views:
            v.graphics.viewport().repaint()
        if w.volume_view.available:
            w.volume_view.grab_frame(full_quality=False)

    move(points[0])
    t0 = time.perf_counter()
    for p in points:
        move(p)
    per_move = (time.perf_counter() - t0) / moves

    window = w.window_level
    t0 = time.perf_counter()
    for p in points:
        i, j, k = np.rint(vol.world_to_voxel(p)).astype(int)
        for sl in (vol.data[:, :, k], vol.data[:, j, :], vol.data[i, :, :]):
            apply_window(sl, window)
    numpy_per_move = (time.perf_counter() - t0) / moves

    # overlay cost on one 512x512 slice: render with and without the saliency overlay
    ax = w.slice_views["axial"]

    def draw(n=20):
        t = time.perf_counter()
        for _ in range(n):
            ax._render_slice()
            ax.graphics.repaint()
        return (time.perf_counter() - t) / n

    with_ov = draw()
    w.update_overlay("saliency", visible=False)
    w.update_overlay("lesion mask", visible=False)
    without_ov = draw()

    res = {"volume": "512x512x300 int16, mask + saliency overlays",
           "open_and_first_paint_s": open_s,
           "set_cursor_with_repaint_ms": per_move * 1e3, "updates_per_s": 1 / per_move,
           "numpy_slices_plus_lut_ms": numpy_per_move * 1e3,
           "ratio_vs_numpy": per_move / numpy_per_move,
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
