"""The 3-D view on this machine (Mesa llvmpipe under Xvfb, or a real GPU).

- first frame: set_volume (normalise, upload) plus one full-quality frame, for a 256^3
  volume and for a 512x512x300 int16 CT that the view downsamples (texture budget);
- orbit: frames per second while rotating the camera (interactive quality, as while the
  reader drags) and at full quality, per mode; the baseline in the same run is the
  cost of a frame of the empty GL view (clear + swap + readback), so the ratio is the
  ray-marching's share.

Run: xvfb-run -a -s "-screen 0 1600x1000x24 +extension GLX +render" \
     .venv/bin/python -m bench.bench_volume_view
With --screenshots it instead renders the demo phantom (with its lesion mask as the
overlay) in each mode to docs/screenshots/3d_<mode>.png.
"""

import os
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import report


def _ct(shape, seed=0):
    """A body-like int16 CT: soft-tissue ellipsoid, bony shell, a bright lesion."""
    rng = np.random.default_rng(seed)
    axes = [np.linspace(-1, 1, n, dtype=np.float32) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    r = np.sqrt((x / 0.8) ** 2 + (y / 0.6) ** 2 + (z / 0.95) ** 2)
    data = np.full(shape, -1000, np.int16)
    data[r < 1.0] = 40
    data[(r > 0.9) & (r < 1.0)] = 700
    data[((x - 0.3) ** 2 + y ** 2 + (z - 0.2) ** 2) < 0.02] = 180
    data += rng.integers(-20, 20, shape, dtype=np.int16)
    return data


def save_screenshots(out_dir: Path) -> list[Path]:
    """One PNG per mode of lesion_phantom(seed 3) with its lesion mask as the overlay."""
    from vol3d_gui.core.phantom import lesion_phantom
    from vol3d_gui.core.windowing import Window
    from vol3d_gui.ui.app import make_app
    from vol3d_gui.ui.volume_view import VolumeView
    from vol3d_gui.viewer.model import ViewerModel

    app = make_app()
    vol, mask = lesion_phantom(3, True)
    view = VolumeView(ViewerModel())
    view.resize(560, 480)
    view.show()
    for _ in range(5):
        app.processEvents()
    if not view.available:
        raise SystemExit(f"no 3-D view here: {view.status_text}")
    view.model.set_case(vol)
    view.set_overlay(mask, color=(0.1, 1.0, 0.3), opacity=0.7, threshold=0.5)
    lo, hi = vol.bounds_world
    view.set_cursor((lo + hi) / 2)
    view.glview.orbit(-25, 10)  # a little oblique, so the depth of the render shows
    # per mode the window a reader would pick: bone for MIP, soft tissue for the
    # translucent render, the iso level at bone
    settings = {"mip": Window(400, 1800), "translucent": Window(40, 400), "iso": Window(400, 1800)}
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for mode, window in settings.items():
        view.set_mode(mode)
        view.set_window(window)
        if mode == "iso":
            view.set_iso_level(300.0)
        img = view.grab_frame()
        path = out_dir / f"3d_{mode}.png"
        tmp = path.with_name(path.stem + ".tmp.png")
        if not img.save(str(tmp)):
            raise OSError(f"could not write {tmp}")
        os.replace(tmp, path)
        written.append(path)
    view.close()
    return written


def main():
    if "--screenshots" in sys.argv[1:]:
        for p in save_screenshots(Path(__file__).resolve().parents[1] / "docs" / "screenshots"):
            print(p)
        return None
    from vol3d_gui.core.volume import Volume, centered_affine
    from vol3d_gui.core.windowing import Window
    from vol3d_gui.ui.app import make_app
    from vol3d_gui.ui.volume_view import VolumeView
    from vol3d_gui.viewer.model import ViewerModel

    app = make_app()
    view = VolumeView(ViewerModel())
    view.resize(640, 640)
    view.show()
    for _ in range(5):
        app.processEvents()
    if not view.available:
        return report("volume_view", {"available": False, "status": view.status_text})

    import OpenGL.GL as gl

    view.glview.makeCurrent()
    res = {"gl_renderer": gl.glGetString(gl.GL_RENDERER).decode(),
           "gl_version": gl.glGetString(gl.GL_VERSION).decode(),
           "max_3d_texture": int(gl.glGetIntegerv(gl.GL_MAX_3D_TEXTURE_SIZE)),
           "viewport": [view.glview.width(), view.glview.height()]}
    view.glview.doneCurrent()

    # baseline: a frame of the GL view with nothing but the crosshair and letters
    t0 = time.perf_counter()
    n_empty = 10
    for _ in range(n_empty):
        view.glview.orbit(5, 0)
        view.grab_frame(full_quality=False)
    empty_fps = n_empty / (time.perf_counter() - t0)
    res["empty_view_fps"] = empty_fps

    window = Window(40, 400)
    cases = {"256^3": ((256, 256, 256), (1.0, 1.0, 1.0)),
             "512x512x300": ((512, 512, 300), (0.7, 0.7, 1.0))}
    for name, (shape, spacing) in cases.items():
        vol = Volume(_ct(shape), centered_affine(shape, spacing))
        uploads = view.item.upload_count
        view.set_mode("mip")
        t0 = time.perf_counter()
        view.model.set_case(vol, window=window)
        view.grab_frame(full_quality=True)
        res[f"{name}_first_frame_s"] = time.perf_counter() - t0
        res[f"{name}_uploads"] = view.item.upload_count - uploads
        res[f"{name}_status"] = view.status_text or "full resolution"
        for mode in ("mip", "translucent", "iso"):
            view.set_mode(mode)
            view.grab_frame(full_quality=False)  # warm
            n = 6
            t0 = time.perf_counter()
            for _ in range(n):
                view.orbit(6, 0)
                view.grab_frame(full_quality=False)
            fps = n / (time.perf_counter() - t0)
            res[f"{name}_{mode}_orbit_fps_interactive"] = fps
            res[f"{name}_{mode}_orbit_vs_empty_view"] = empty_fps / fps
            n = 2
            t0 = time.perf_counter()
            for _ in range(n):
                view.glview.orbit(6, 0)
                view.grab_frame(full_quality=True)
            res[f"{name}_{mode}_orbit_fps_full"] = n / (time.perf_counter() - t0)
        # window/level and colour map changes: uniforms only
        before = view.item.upload_count
        t0 = time.perf_counter()
        view.set_window(Window(400, 1800))
        view.set_colormap("hot")
        view.grab_frame(full_quality=True)
        res[f"{name}_window_change_full_frame_s"] = time.perf_counter() - t0
        res[f"{name}_window_change_uploads"] = view.item.upload_count - before
        view.set_colormap("bone")
    view.close()
    return report("volume_view", res)


if __name__ == "__main__":
    main()
