"""The 3-D view: a ray-marched volume in a pyqtgraph GLViewWidget, with the crosshair,
orientation letters and an overlay channel. Falls back to a message (and the app keeps
its slice views) when no GL context or shader can be had."""

from __future__ import annotations

import os

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from vol3d_gui.core.volume import Volume
from vol3d_gui.core.windowing import Window
from vol3d_gui.viewer.colormaps import lut
from vol3d_gui.viewer.geometry import overlay_texture_matrix, texture_affine
from vol3d_gui.viewer.model import ViewerModel
from vol3d_gui.viewer.prepare import DEFAULT_MAX_3D_TEXTURE, DisplayGrid, display_grid

# Ray-march samples per unit of texture length: full quality when idle, fewer while the
# user drags the crosshair or orbits (software GL takes ~0.4 s a frame at 256 on 2 cores),
# then one full-quality frame once the interaction has paused. Either is rendered in bands
# over several paints (gl_progressive), so no paint holds the GUI thread for long.
FULL_STEPS = 256
INTERACTIVE_STEPS = 48
SETTLE_MS = 350
def _qmatrix(m: np.ndarray) -> QtGui.QMatrix4x4:
    return QtGui.QMatrix4x4(*np.asarray(m, dtype=np.float64).reshape(-1).tolist())


class VolumeView(QtWidgets.QWidget):
    """Draws the viewer model's volume, window, cursor and top visible overlay in 3-D."""

    def __init__(self, model: ViewerModel, parent=None):
        super().__init__(parent)
        self.model = model
        self.available = False
        self.status_text = ""
        self.volume: Volume | None = None  # the volume whose texture is uploaded
        self.colormap = "bone"
        self.mode = "mip"
        self._pending_cursor = None
        self.iso_level: float | None = None
        self._range = (0.0, 1.0)
        self._tex_affine = np.eye(4)
        self._overlay = None
        self._stack = QtWidgets.QStackedLayout(self)
        self._message = QtWidgets.QLabel()
        self._message.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self._message.setWordWrap(True)
        self._message.setStyleSheet("color: #bbb; background: black;")
        self.glview = None
        reason = None
        if os.environ.get("VOL3D_DISABLE_GL"):
            reason = "3-D view disabled (VOL3D_DISABLE_GL is set)"
        else:
            try:
                self._build_gl()
            except Exception as exc:  # no OpenGL at all (remote desktop, old drivers)
                reason = f"3-D view unavailable: no OpenGL ({type(exc).__name__}: {exc})"
        self._stack.addWidget(self._message)
        if reason is None:
            self.available = True
            self._stack.setCurrentWidget(self._gl_container)
        else:
            self._fail(reason)
        ev = model.events
        ev.volume.connect(self._on_volume)
        ev.window.connect(self._on_window)
        ev.cursor.connect(self._on_cursor)
        for sig in (model.layers.inserted, model.layers.removed, model.layers.changed):
            sig.connect(self._on_layers)
        if model.volume is not None:
            self._on_volume(model.volume)

    @property
    def window(self) -> Window:
        return self.model.window

    def max_texture_size(self) -> int | None:
        """The largest 3-D texture the GL context takes (None without a 3-D view)."""
        return self._max_texture_size() if self.available else None

    # --- construction ------------------------------------------------------------------------
    def _build_gl(self) -> None:
        import pyqtgraph.opengl as gl

        from vol3d_gui.ui.gl_letters import GLLettersItem
        from vol3d_gui.ui.gl_view_window import GLViewHost, GLViewWindow
        from vol3d_gui.ui.gl_volume_item import GLRayVolumeItem

        # a native GL window in a container, not a QOpenGLWidget: see gl_view_window
        self.glview = GLViewWindow()
        self.glview.setBackgroundColor("k")
        self.item = GLRayVolumeItem()
        self.item.on_error = lambda msg: QtCore.QTimer.singleShot(
            0, lambda: self._fail(f"3-D view unavailable: {msg}"))
        self.item.set_lut(lut(self.colormap))
        self.item.steps = FULL_STEPS
        self.glview.addItem(self.item)
        self._settle = QtCore.QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(SETTLE_MS)
        self._settle.timeout.connect(self._full_quality)
        # the item renders a frame in bands, a few per paint (gl_progressive): this timer
        # asks for the next paint, after the event loop has had its turn
        self._bands = QtCore.QTimer(self)
        self._bands.setSingleShot(True)
        self._bands.setInterval(0)
        self._bands.timeout.connect(self._next_bands)
        self.item.on_incomplete = self._more_bands
        self.glview.installEventFilter(self)
        pen = (1.0, 0.86, 0.0, 0.9)
        # the three crosshair lines as one item (pairs of points): one draw, not three
        self.cross = gl.GLLinePlotItem(pos=np.zeros((6, 3)), color=pen, width=1.5, antialias=True,
                                       mode="lines")
        self.cross.setGLOptions("additive")
        self.glview.addItem(self.cross)
        self.letters = GLLettersItem(color=(240, 192, 64, 255))
        self.glview.addItem(self.letters)
        self._gl_container = GLViewHost(self.glview, self)
        self.glview.snapshot_wanted = lambda: self.item.complete
        self._stack.addWidget(self._gl_container)

    def _fail(self, reason: str) -> None:
        self.available = False
        self.status_text = reason
        self._message.setText(reason)
        self._stack.setCurrentWidget(self._message)

    # --- observing the model -------------------------------------------------------------------
    def _on_volume(self, volume: Volume | None) -> None:
        self.volume = volume
        if not self.available or volume is None:
            return
        grid = getattr(self.model, "display_grid", None)
        if grid is None or grid[0] is not volume:  # prepared off the GUI thread when opened by a controller
            grid = (volume, display_grid(volume, self._max_texture_size()))
        self.set_grid(grid[1])
        self._on_layers()
        self.reset_camera()
        self._pending_cursor = self.model.cursor
        self._start_settle()

    def set_grid(self, grid: DisplayGrid) -> None:
        """Upload a prepared texture (the GUI thread's only share of opening a volume in 3-D)."""
        self._range = grid.value_range
        self.item.set_volume_u16(grid.texture)
        self._tex_affine = texture_affine(grid.affine, grid.shape)
        self.item.setTransform(_qmatrix(self._tex_affine))
        shape = "x".join(str(int(s)) for s in grid.shape)
        self.status_text = f"3-D view downsampled {grid.factor}x ({shape})" if grid.factor > 1 else ""
        if grid.factor > 1:
            self.model.add_notice("3d-downsampled", self.status_text + "; the slices are full size")
        self.set_window(self.model.window)
        self._place_letters()

    def _on_window(self, window: Window) -> None:
        self.set_window(window)

    def _on_cursor(self, cursor) -> None:
        self.set_cursor(cursor)

    def _on_layers(self, *_args) -> None:
        shown = [lay for lay in self.model.layers.overlays if lay.visible]
        top = shown[-1] if shown else None
        if top is None:
            self.set_overlay(None)
        else:
            self.set_overlay(top.volume, color=top.display_colour(), opacity=top.opacity,
                             threshold=top.threshold)

    def set_window(self, window: Window) -> None:
        if not self.available:
            return
        lo, hi = self._range
        self.item.low = (window.low - lo) / (hi - lo)
        self.item.high = (window.high - lo) / (hi - lo)
        level = self.iso_level if self.iso_level is not None else window.low + 0.75 * window.width
        self.item.iso = (level - lo) / (hi - lo)
        self.item.update()

    def set_iso_level(self, value: float | None) -> None:
        """Isosurface level in the volume's units (None: three quarters up the window)."""
        self.iso_level = value
        self.set_window(self.window)

    def set_colormap(self, name: str) -> None:
        self.colormap = name
        if self.available:
            self.item.set_lut(lut(name))

    def set_mode(self, mode: str) -> None:
        from vol3d_gui.ui.gl_volume_item import MODES

        if mode not in MODES:
            raise ValueError(f"unknown 3-D mode {mode!r}; choose from {', '.join(MODES)}")
        self.mode = mode
        if self.available:
            self.item.mode = mode
            self.item.update()

    def set_overlay(self, overlay: Volume | None, color=(1.0, 0.25, 0.1), opacity: float = 0.6,
                    threshold: float = 0.3) -> None:
        self._overlay = None if overlay is None else (overlay, color, opacity, threshold)
        if not self.available:
            return
        if overlay is None or self.volume is None:
            self.item.set_overlay_texture(None)
            return
        data = overlay.data.astype(np.float32)
        finite = data[np.isfinite(data)]
        top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        matrix = overlay_texture_matrix(overlay, self._tex_affine)
        self.item.overlay_color = tuple(float(c) for c in color)
        self.item.overlay_opacity = float(opacity)
        self.item.overlay_threshold = float(threshold) / top
        self.item.set_overlay_texture(np.clip(data / top, 0, 1), matrix)

    def interacting(self) -> None:
        """Render cheaply until the interaction pauses, then once at full quality."""
        if self.available:
            self.item.steps = INTERACTIVE_STEPS
            self._start_settle()

    def _full_quality(self) -> None:
        if self._pending_cursor is not None and self.volume is not None:
            self._place_cursor(self._pending_cursor)
            self._pending_cursor = None
        self.item.steps = FULL_STEPS
        self.item.update()

    def _start_settle(self) -> None:
        # a hidden view (closed window, results arriving late) starts no timer; showEvent
        # catches up on what it missed
        if self.isVisible():
            self._settle.start()

    def showEvent(self, ev):
        super().showEvent(ev)
        if self.available and (self._pending_cursor is not None or self.item.steps != FULL_STEPS):
            self._settle.start()

    def hideEvent(self, ev):
        # nothing to render for a hidden view: no timer may fire into a closed window
        if self.available:
            self._settle.stop()
            self._bands.stop()
        super().hideEvent(ev)

    def _more_bands(self) -> None:
        if self.isVisible():
            self._bands.start()

    def _next_bands(self) -> None:
        if self.available and not self.item.complete:
            self.glview.update()

    def eventFilter(self, obj, ev):
        if obj is self.glview and ev.type() in (QtCore.QEvent.Type.MouseMove, QtCore.QEvent.Type.Wheel):
            self.interacting()
        return False

    def set_cursor(self, ras_mm) -> None:
        """Move the 3-D crosshair once the cursor stops moving: while a reader drags through
        the slices, the slice views get the whole frame budget (software GL takes ~1 s)."""
        self._pending_cursor = np.asarray(ras_mm, float)
        if self.available and self.volume is not None:
            self._start_settle()

    def _place_cursor(self, ras_mm) -> None:
        ijk = self.volume.world_to_voxel(np.asarray(ras_mm, float))
        n = np.asarray(self.volume.shape) - 1
        ends = []
        for axis in range(3):
            a, b = ijk.copy(), ijk.copy()
            a[axis], b[axis] = 0, n[axis]
            ends += [a, b]
        self.cross.setData(pos=self.volume.voxel_to_world(np.stack(ends)))

    def reset_camera(self) -> None:
        if not self.available or self.volume is None:
            return
        lo, hi = self.volume.bounds_world
        center = (lo + hi) / 2
        extent = float(np.linalg.norm(hi - lo))
        # from the patient's front, slightly above: patient right on screen left
        self.glview.setCameraPosition(pos=QtGui.QVector3D(*center.tolist()), distance=extent * 1.6,
                                      elevation=15, azimuth=90)
        self.glview.opts["fov"] = 40

    def orbit(self, azimuth: float, elevation: float = 0.0) -> None:
        if self.available:
            self.interacting()
            self.glview.orbit(azimuth, elevation)

    def grab_frame(self, full_quality: bool = True) -> QtGui.QImage:
        """The rendered frame (at full quality unless asked otherwise)."""
        if not self.available:
            return self._message.grab().toImage()
        if full_quality:
            self._settle.stop()
            self._full_quality()
        self.item.finish_next_paint()  # the whole frame, not the preview or some bands of it
        return self.glview.grabFramebuffer()

    # --- internals ----------------------------------------------------------------------------------
    def _max_texture_size(self) -> int:
        size = getattr(self.glview, "max_3d_texture", None)  # known once the window has a context
        return size if size else DEFAULT_MAX_3D_TEXTURE

    def _place_letters(self) -> None:
        lo, hi = self.volume.bounds_world
        c = (lo + hi) / 2
        pad = 0.08 * (hi - lo) + 4
        spots = {"R": (hi[0] + pad[0], c[1], c[2]), "L": (lo[0] - pad[0], c[1], c[2]),
                 "A": (c[0], hi[1] + pad[1], c[2]), "P": (c[0], lo[1] - pad[1], c[2]),
                 "S": (c[0], c[1], hi[2] + pad[2]), "I": (c[0], c[1], lo[2] - pad[2])}
        self.letters.set_positions(spots)


__all__ = ["VolumeView"]
