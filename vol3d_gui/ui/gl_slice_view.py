"""The GL slice view: one plane drawn by a fragment shader (gl_slice_textures) in a native GL
window (gl_slice_canvas).

A window/level step or a crosshair move changes uniforms and asks for a paint of the views
it changes; a new slice uploads one plane of raw values; nothing is converted on the CPU. The labels (orientation letters,
slice number, W/L, the maximise button) sit around the image, not over it: a native window
covers any widget laid over it.

``slice_backend()`` decides once per process whether the GL views can be used (a context of
desktop GL >= 3.1 that compiles the shader), else the CPU views (slice_view.SliceView) are
made, with the reason in ``slice_backend_notice()``.
"""

from __future__ import annotations

import os
import weakref
from types import SimpleNamespace

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from vol3d_gui.core.volume import Volume
from vol3d_gui.ui.gl_slice_canvas import GLSliceCanvas
from vol3d_gui.ui.gl_slice_frames import SliceFrames
from vol3d_gui.ui.gl_slice_textures import SliceTextures
from vol3d_gui.ui.gl_window_host import GLWindowHost
from vol3d_gui.ui.slice_view import SliceView, SliceViewBase
from vol3d_gui.viewer.geometry import PlaneGeometry, invert_x
from vol3d_gui.viewer.model import ViewerModel

# what the three views of one viewer model share: ViewerModel -> (SliceTextures, SliceFrames)
_SHARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_BACKEND: tuple[str, str] | None = None


def _shared(model: ViewerModel) -> tuple[SliceTextures, SliceFrames]:
    shared = _SHARED.get(model)
    if shared is None:
        shared = _SHARED[model] = (SliceTextures(), SliceFrames())
    return shared


def shared_textures(model: ViewerModel) -> SliceTextures:
    """The one set of slice textures of a model (its three views share it)."""
    return _shared(model)[0]


def shared_frames(model: ViewerModel) -> SliceFrames:
    """What paints and presents the GL views of a model together."""
    return _shared(model)[1]


def slice_backend() -> str:
    """'gl' or 'cpu'. The GL probe (a context and the shader compiled) runs once per process;
    VOL3D_DISABLE_GL or VOL3D_SLICES=cpu choose the CPU views without it."""
    return _backend()[0]


def slice_backend_notice() -> str:
    """Why the slice views draw on the CPU ('' when they use GL)."""
    return _backend()[1]


def _backend() -> tuple[str, str]:
    global _BACKEND
    if os.environ.get("VOL3D_DISABLE_GL") or os.environ.get("VOL3D_SLICES", "").lower() == "cpu":
        return "cpu", "slice views drawn on the CPU (VOL3D_DISABLE_GL or VOL3D_SLICES=cpu is set)"
    if _BACKEND is None:
        _BACKEND = _probe()
    return _BACKEND


def _probe() -> tuple[str, str]:
    try:
        # looked up when called: a test replaces it with one that refuses
        from vol3d_gui.ui.gl_slice_shaders import build_slice_program

        ctx = QtGui.QOpenGLContext()
        share = QtGui.QOpenGLContext.globalShareContext()
        if share is not None:
            ctx.setShareContext(share)
        if not ctx.create():
            raise RuntimeError("no OpenGL context")
        surface = QtGui.QOffscreenSurface()
        surface.setFormat(ctx.format())
        surface.create()
        if not ctx.makeCurrent(surface):
            raise RuntimeError("cannot make an OpenGL context current")
        try:
            build_slice_program("i")
        finally:
            ctx.doneCurrent()
    except Exception as exc:  # no GL, an old driver, a shader the driver refuses
        return "cpu", f"slice views drawn on the CPU: {type(exc).__name__}: {exc}"
    return "gl", ""


def make_slice_view(model: ViewerModel, orientation: str, parent=None) -> SliceViewBase:
    """A GL slice view when the GL probe passed, else the CPU one."""
    if slice_backend() == "gl":
        return GLSliceView(model, orientation, parent)
    return SliceView(model, orientation, parent)


class GLSliceView(SliceViewBase):
    backend = "gl"

    def __init__(self, model: ViewerModel, orientation: str, parent=None):
        super().__init__(model, orientation, parent)
        self.textures = shared_textures(model)
        self.canvas_window = GLSliceCanvas(self, self.textures)
        self.canvas_window.on_error = self._on_gl_error
        self.frames = shared_frames(model)
        self.frames.add(self.canvas_window)
        self.canvas_window.frames = self.frames
        self.canvas = GLSliceHost(self.canvas_window, self)
        self.setStyleSheet("background: black;")
        self._drag = None  # (button, start window or last position)
        self._painted_state = None  # (index, crosshair) last asked for: skip paints that change nothing

        top = QtWidgets.QHBoxLayout()
        top.setContentsMargins(2, 0, 2, 0)
        top.addWidget(self.title_label)
        top.addStretch(1)
        top.addWidget(self._letters[2])
        top.addStretch(1)
        top.addWidget(self.max_button)
        mid = QtWidgets.QHBoxLayout()
        mid.setContentsMargins(0, 0, 0, 0)
        mid.setSpacing(1)
        mid.addWidget(self._letters[0])
        mid.addWidget(self.canvas, 1)
        mid.addWidget(self._letters[1])
        bottom = QtWidgets.QHBoxLayout()
        bottom.setContentsMargins(2, 0, 2, 0)
        bottom.addWidget(self.wl_label)
        bottom.addStretch(1)
        bottom.addWidget(self._letters[3])
        bottom.addStretch(1)
        bottom.addSpacing(self.wl_label.sizeHint().width())
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(1)
        lay.addLayout(top)
        lay.addLayout(mid, 1)
        lay.addLayout(bottom)
        self._observe()

    # --- what the canvas paints -------------------------------------------------------------
    def frame_state(self):
        vol = self.model.volume
        if vol is None or self.geometry is None or self.geometry.volume is not vol:
            return None
        overlays = [lay for lay in self.model.layers.overlays if lay.visible and lay.opacity > 0]
        base = self.model.layers.base
        return SimpleNamespace(volume=vol, geometry=self.geometry, index=self.index, window=self.model.window,
                               overlays=overlays, colormap=base.colormap if base is not None else "grey",
                               cross=self.geometry.to_view(self.model.cursor))

    # --- observing the model ------------------------------------------------------------------
    def _on_volume(self, volume: Volume | None) -> None:
        self.geometry = None if volume is None else PlaneGeometry(volume, self.orientation)
        if volume is not None:
            self.index = self.geometry.slice_index(self.model.cursor)
            self._apply_flip()
            self.reset_zoom()
        self._painted_state = None
        self._update_labels()
        self.canvas_window.request()

    def _on_cursor(self, _cursor=None) -> None:
        if self.geometry is None or self.geometry.volume is not self.model.volume:
            return  # the volume event comes next
        self.index = self.geometry.slice_index(self.model.cursor)
        state = (self.index, self.geometry.to_view(self.model.cursor))
        if state == self._painted_state:
            return  # neither this view's slice nor its crosshair moved
        if self._painted_state is None or state[0] != self._painted_state[0]:
            self.canvas_window.plane.prefetch(self.model.volume, self.geometry.axis, self.index)
            self._update_title()
        self._painted_state = state
        self.canvas_window.request()

    def _on_window(self, _window=None) -> None:
        self.wl_label.setText(str(self.window))
        self.canvas_window.request()

    def _update_labels(self) -> None:
        """The slice number and W/L. Here the labels sit in layouts: a label whose width
        changed with its text (adjustSize) made Qt lay the view out again and repaint the main
        window under the three views on every slice of a drag; the title has the fixed size of
        its widest text for this volume instead, so only the label repaints."""
        title = self.orientation.capitalize()
        if self.volume is not None:
            n = self.volume.shape[self.axis]
            widest = self.title_label.fontMetrics().horizontalAdvance(f"{title}  {n}/{n}")
            margins = self.title_label.contentsMargins()
            # the style sheet's padding is outside the text's advance; a fixed size, because a
            # label whose size may change asks its layout to run again on every setText
            self.title_label.setFixedSize(widest + margins.left() + margins.right() + 6,
                                          self.title_label.sizeHint().height())
        self._update_title()
        self.wl_label.setText(str(self.window))

    def _update_title(self) -> None:
        """The slice number alone (a step of a drag or a scroll; the width is the volume's)."""
        title = self.orientation.capitalize()
        if self.volume is None:
            self.title_label.setText(title)
        else:
            self.title_label.setText(f"{title}  {self.index + 1}/{self.volume.shape[self.axis]}")

    def _on_radiological(self, _value=None) -> None:
        self._apply_flip()
        self._update_letters()
        self.canvas_window.request()

    def _on_layers(self, *_args) -> None:
        self.canvas_window.request()

    def _on_gl_error(self, message: str) -> None:
        self.model.add_notice("slices-gl", f"slice view cannot draw with OpenGL: {message}")

    # --- public API ------------------------------------------------------------------------------
    def reset_zoom(self) -> None:
        if self.geometry is not None:
            self.canvas_window.fit(self.geometry.rect)

    def render_now(self) -> None:
        """Paint and present now every view of the model a change asked a paint of, as the
        event loop's next turn would (benchmarks; the event loop paints on its own)."""
        self.frames.present()

    def invalidate(self) -> None:
        """Cut, upload and render the plane again on the next paint (benchmarks)."""
        self.canvas_window.plane.key = None
        self.canvas_window._drawn_key = None
        self.canvas_window.request()

    def screen_to_world(self, pos: QtCore.QPointF) -> np.ndarray | None:
        """World point under a canvas position (logical pixels)."""
        if self.geometry is None:
            return None
        x, y = self.canvas_window.to_view(pos)
        return self.geometry.to_world(x, y, self.index)

    def world_to_widget(self, world) -> QtCore.QPoint:
        x, y = self.geometry.to_view(world)
        return self.canvas.mapTo(self, self.canvas_window.from_view(x, y).toPoint())

    def input_target(self):
        return self.canvas_window

    def view_to_input(self, x: float, y: float) -> QtCore.QPoint:
        return self.canvas_window.from_view(x, y).toPoint()

    def view_range(self) -> list[list[float]]:
        return self.canvas_window.view_range()

    def zoom_by(self, factor: float) -> None:
        self.canvas_window.zoom(factor)

    # --- input from the canvas ----------------------------------------------------------------------
    def canvas_mouse_press(self, ev) -> None:
        btn = ev.button()
        self.setFocus()
        if btn == QtCore.Qt.MouseButton.LeftButton:
            self._drag = (btn, None)
            self._cursor_from(ev.position())
        elif btn == QtCore.Qt.MouseButton.RightButton:
            self._drag = (btn, (self.model.window, ev.globalPosition()))
        elif btn == QtCore.Qt.MouseButton.MiddleButton:
            self._drag = (btn, ev.position())

    def canvas_mouse_move(self, ev) -> None:
        if self._drag is None:
            self._emit_hover(self.screen_to_world(ev.position()))
            return
        btn, data = self._drag
        if btn == QtCore.Qt.MouseButton.LeftButton:
            self._cursor_from(ev.position())
        elif btn == QtCore.Qt.MouseButton.RightButton:
            start, origin = data
            d = ev.globalPosition() - origin
            self._drag_window(start, d.x(), d.y())
        else:
            d = ev.position() - data
            self.canvas_window.pan_pixels(d.x(), d.y())
            self._drag = (btn, ev.position())

    def canvas_mouse_release(self, ev) -> None:
        self._drag = None

    def canvas_wheel(self, ev) -> None:
        delta = ev.angleDelta().y()
        if ev.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier:
            self.canvas_window.zoom(1.002 ** delta, ev.position())
        elif delta:
            self.step_slice(1 if delta > 0 else -1)
        ev.accept()

    def _cursor_from(self, pos) -> None:
        world = self.screen_to_world(pos)
        if world is not None:
            self.model.cursor = world

    def _apply_flip(self) -> None:
        self.canvas_window.flip_x = invert_x(self.orientation, self.model.radiological)
        self._painted_state = None


class GLSliceHost(GLWindowHost):
    """The canvas in the widget tree. ``grab()`` returns the rendered frame: a native GL
    window is no part of QWidget.grab's render."""

    def __init__(self, canvas: GLSliceCanvas, parent=None):
        super().__init__(canvas, parent)
        self.canvas = canvas

    def grab(self, *args) -> QtGui.QPixmap:
        QtWidgets.QApplication.processEvents()
        image = self.canvas.grab_frame()
        if image.isNull():
            return super().grab(*args)
        image.setDevicePixelRatio(self.canvas.devicePixelRatio())
        return QtGui.QPixmap.fromImage(image)

    def paintEvent(self, ev):
        # on screen the native GL window covers this widget; when the widget tree is rendered
        # into an image (QWidget.grab of the view or the main window: exports, screenshots)
        # the GL window is no part of it, so the frame is rendered and drawn here. Sibling
        # labels do not overlap this widget: on screen it repaints only on resize and expose.
        image = self.canvas.grab_frame()
        if image.isNull():
            return
        painter = QtGui.QPainter(self)
        try:
            painter.drawImage(self.rect(), image)
        finally:
            painter.end()
