"""One orthogonal slice view (axial, coronal or sagittal) of a RAS+ Volume, with overlays:
what every slice view shares (SliceViewBase) and the CPU view (SliceView, pyqtgraph), the
fallback of the GL view (gl_slice_view) where OpenGL 3.1 or its shader is unavailable.

View coordinates are millimetres along the volume's two in-plane array axes (index x
spacing), so a locked aspect ratio gives the true physical aspect for anisotropic voxels.
The CPU view applies the window to the slice on screen only, through a lookup table indexed by the
raw integer value (colormaps.windowed): a window change re-draws three planes, never the
volume. The result is 8-bit grey that Qt draws without another conversion.
Overlays are sampled in world space for the plane on screen only (core.resample), and
drawn over the bounding box of what shows.

Mouse: left click/drag sets the crosshair, wheel steps slices (Ctrl+wheel zooms),
right-drag changes window/level, middle-drag pans.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from vol3d_gui.core.resample import base_slice
from vol3d_gui.core.volume import Volume
from vol3d_gui.core.windowing import Window
from vol3d_gui.viewer.colormaps import windowed
from vol3d_gui.viewer.geometry import AXIS_OF, PlaneGeometry, invert_x, screen_letters
from vol3d_gui.viewer.model import ViewerModel
from vol3d_gui.viewer.windows import dragged_window


class _SliceViewBox(pg.ViewBox):
    """ViewBox whose mouse gestures mean what a reader expects of a slice view."""

    def __init__(self, owner: SliceView):
        super().__init__(lockAspect=True, enableMenu=False, invertY=False)
        self._owner = owner
        self._wl_start = None

    def mouseClickEvent(self, ev):
        if ev.button() == QtCore.Qt.MouseButton.LeftButton:
            ev.accept()
            self._owner._cursor_from_scene(ev.scenePos())
        else:
            super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None):
        btn = ev.button()
        if btn == QtCore.Qt.MouseButton.LeftButton:
            ev.accept()
            self._owner._cursor_from_scene(ev.scenePos())
        elif btn == QtCore.Qt.MouseButton.RightButton:
            ev.accept()
            if ev.isStart():
                self._wl_start = self._owner.window
            if self._wl_start is not None:
                d = ev.screenPos() - ev.buttonDownScreenPos()
                self._owner._drag_window(self._wl_start, d.x(), d.y())
            if ev.isFinish():
                self._wl_start = None
        elif btn == QtCore.Qt.MouseButton.MiddleButton:
            # pan like the default left-drag
            ev.accept()
            tr = self.childGroup.transform()
            tr = pg.functions.invertQTransform(tr)
            delta = tr.map(ev.lastPos()) - tr.map(ev.pos())
            self.translateBy(x=delta.x(), y=delta.y())
        else:
            super().mouseDragEvent(ev, axis)

    def wheelEvent(self, ev, axis=None):
        if ev.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        self._owner.step_slice(1 if delta > 0 else -1)
        ev.accept()


class SliceViewBase(QtWidgets.QWidget):
    """What every slice view shares, however it draws: the model it observes, the plane, the
    orientation letters, slice number and W/L labels, the maximise button and the keys.
    Subclasses draw (CPU: pyqtgraph below; GL: gl_slice_view) and map the mouse."""

    hovered = QtCore.Signal(object)  # np.ndarray RAS mm, or None when off the image
    maximiseRequested = QtCore.Signal(str)
    backend = "cpu"

    def __init__(self, model: ViewerModel, orientation: str, parent=None):
        super().__init__(parent)
        if orientation not in AXIS_OF:
            raise ValueError(orientation)
        self.model = model
        self.orientation = orientation
        self.axis = AXIS_OF[orientation]
        self.geometry: PlaneGeometry | None = None  # of the volume drawn now
        self.index = 0
        self._letters = [self._make_label(bold=True) for _ in range(4)]
        self.title_label = self._make_label()
        self.wl_label = self._make_label()
        self.max_button = QtWidgets.QToolButton(self)
        self.max_button.setText("⤢")
        self.max_button.setToolTip("Maximise / restore this view (or double-click the view)")
        self.max_button.setAutoRaise(True)
        self.max_button.setStyleSheet("color: #ddd; background: transparent; font-size: 14px;")
        self.max_button.clicked.connect(lambda: self.maximiseRequested.emit(self.orientation))
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(160, 160)

    def _observe(self) -> None:
        """Connect to the model (once the subclass has built its canvas) and draw what it holds."""
        ev = self.model.events
        ev.volume.connect(self._on_volume)
        ev.cursor.connect(self._on_cursor)
        ev.window.connect(self._on_window)
        ev.radiological.connect(self._on_radiological)
        for sig in (self.model.layers.inserted, self.model.layers.removed, self.model.layers.changed):
            sig.connect(self._on_layers)
        self._update_letters()
        self._on_volume(self.model.volume)

    @property
    def volume(self) -> Volume | None:
        return self.model.volume

    @property
    def window(self) -> Window:
        return self.model.window

    def step_slice(self, step: int) -> None:
        if self.geometry is not None:
            self.model.cursor = self.geometry.stepped(self.model.cursor, step)

    def _make_label(self, bold=False) -> QtWidgets.QLabel:
        lab = QtWidgets.QLabel(self)
        lab.setAttribute(QtCore.Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        weight = "bold" if bold else "normal"
        # a dim backing keeps the letters legible over bright bone (and "I" distinct from the crosshair)
        lab.setStyleSheet(f"color: #f0c040; background: rgba(0, 0, 0, 110); padding: 0px 2px;"
                          f" font-weight: {weight}; font-size: 12px;")
        return lab

    def _update_letters(self) -> None:
        for lab, text in zip(self._letters, screen_letters(self.orientation, self.model.radiological)):
            lab.setText(text)
            lab.adjustSize()
        self._place_labels()

    def _update_labels(self) -> None:
        if self.volume is None:
            self.title_label.setText(self.orientation.capitalize())
        else:
            n = self.volume.shape[self.axis]
            self.title_label.setText(f"{self.orientation.capitalize()}  {self.index + 1}/{n}")
        self.wl_label.setText(str(self.window))
        self.title_label.adjustSize()
        self.wl_label.adjustSize()
        self._place_labels()

    def _place_labels(self) -> None:
        pass

    def keyPressEvent(self, ev: QtGui.QKeyEvent):
        key = ev.key()
        if key in (QtCore.Qt.Key.Key_PageUp, QtCore.Qt.Key.Key_Up):
            self.step_slice(1)
        elif key in (QtCore.Qt.Key.Key_PageDown, QtCore.Qt.Key.Key_Down):
            self.step_slice(-1)
        else:
            super().keyPressEvent(ev)

    def _drag_window(self, start: Window, dx: float, dy: float) -> None:
        self.model.window = dragged_window(start, dx, dy)

    def _emit_hover(self, world) -> None:
        if world is None or self.model.volume is None or self.model.volume.nearest_voxel(world) is None:
            self.hovered.emit(None)
        else:
            self.hovered.emit(world)


class SliceView(SliceViewBase):
    """The CPU view (pyqtgraph): each plane windowed through a lookup table into 8-bit grey,
    overlays coloured per plane. The fallback when the GL slice shader is unavailable."""

    def __init__(self, model: ViewerModel, orientation: str, parent=None):
        super().__init__(model, orientation, parent)
        self._drawn: tuple | None = None  # (volume, slice, window) of the image on screen
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("k")
        self.graphics.ci.layout.setContentsMargins(0, 0, 0, 0)
        self.viewbox = _SliceViewBox(self)
        self.graphics.addItem(self.viewbox)
        self.image = pg.ImageItem(axisOrder="col-major")
        self.image.setAutoDownsample(False)
        self.viewbox.addItem(self.image)
        self.overlay_image = pg.ImageItem(axisOrder="col-major")
        self.overlay_image.setZValue(5)
        self.viewbox.addItem(self.overlay_image)
        pen = pg.mkPen((255, 220, 0, 180), width=1)
        self.vline = pg.InfiniteLine(angle=90, pen=pen, movable=False)
        self.hline = pg.InfiniteLine(angle=0, pen=pen, movable=False)
        for line in (self.vline, self.hline):
            line.setZValue(10)
            self.viewbox.addItem(line, ignoreBounds=True)
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.canvas = self.graphics  # what draws the image (tests grab it)

        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.graphics)
        for lab in (*self._letters, self.title_label, self.wl_label, self.max_button):
            lab.raise_()
        self._observe()

    # --- observing the model ------------------------------------------------------------
    def _on_volume(self, volume: Volume | None) -> None:
        if volume is None:
            self.geometry = None
            self.image.clear()
            self.overlay_image.clear()
            self._update_labels()
            return
        self.geometry = PlaneGeometry(volume, self.orientation)
        self._rect = QtCore.QRectF(*self.geometry.rect)
        self.index = self.geometry.slice_index(self.model.cursor)
        self._place_crosshair()
        self._render_slice()
        self.viewbox.setRange(rect=self._rect, padding=0.02)
        self._update_labels()

    def _on_cursor(self, _cursor=None) -> None:
        if self.geometry is None or self.geometry.volume is not self.model.volume:
            return  # the volume event comes next and draws everything
        self._place_crosshair()
        new_index = self.geometry.slice_index(self.model.cursor)
        if new_index != self.index or self.image.image is None:
            self.index = new_index
            self._render_slice()
            self._update_labels()

    def _on_window(self, _window=None) -> None:
        # a new case announces its window right after its volume, which drew the slice already
        drawn = (self.model.volume, self.index, self.model.window)
        if self.geometry is not None and self.geometry.volume is self.model.volume and drawn != self._drawn:
            self._render_base()
        self._update_labels()

    def _on_radiological(self, _value=None) -> None:
        self._apply_flip()
        self._update_letters()

    def _on_layers(self, *_args) -> None:
        if self.geometry is not None and self.geometry.volume is self.model.volume:
            self._render_overlays()

    # --- public API -------------------------------------------------------------------
    def reset_zoom(self) -> None:
        """Fit the whole slice in the view again after zooming or panning."""
        if self.geometry is not None:
            self.viewbox.setRange(rect=self._rect, padding=0.02)

    def screen_to_world(self, scene_pos: QtCore.QPointF) -> np.ndarray | None:
        if self.geometry is None:
            return None
        p = self.viewbox.mapSceneToView(scene_pos)
        return self.geometry.to_world(p.x(), p.y(), self.index)

    def world_to_widget(self, world) -> QtCore.QPoint:
        """Widget pixel of a world point (used by tests and the screenshot tools)."""
        x, y = self.geometry.to_view(world)
        scene = self.viewbox.mapViewToScene(QtCore.QPointF(x, y))
        return self.graphics.mapTo(self, self.graphics.mapFromScene(scene))

    def input_target(self) -> QtWidgets.QWidget:
        """What receives the mouse (tests click it)."""
        return self.graphics.viewport()

    def view_to_input(self, x: float, y: float) -> QtCore.QPoint:
        """Position in ``input_target()`` of view point (x, y) mm."""
        return self.graphics.mapFromScene(self.viewbox.mapViewToScene(QtCore.QPointF(x, y)))

    def view_range(self) -> list[list[float]]:
        return self.viewbox.viewRange()

    def zoom_by(self, factor: float) -> None:
        self.viewbox.scaleBy((1 / factor, 1 / factor))

    # --- internals ----------------------------------------------------------------------
    def _render_slice(self) -> None:
        self._render_base()
        self._apply_flip()
        self._render_overlays()

    def _place_crosshair(self) -> None:
        x, y = self.geometry.to_view(self.model.cursor)
        self.vline.setPos(x)
        self.hline.setPos(y)

    def _render_base(self) -> None:
        sl = base_slice(self.volume, self.axis, self.index)
        # windowed(sl.T) is C-ordered (display y, display x); its transpose is what this
        # col-major ImageItem takes, and pyqtgraph's own swap back needs no copy
        grey = windowed(sl.T, self.window).T
        self._drawn = (self.volume, self.index, self.window)
        self.image.setImage(grey, autoLevels=False, levels=None)
        self.image.setRect(self._rect)

    def _render_overlays(self) -> None:
        if self.volume is None:
            return
        rgba = None
        for layer in self.model.layers.overlays:
            layer_rgba = layer.rgba_plane(self.volume, self.axis, self.index)
            if layer_rgba is None:
                continue
            if rgba is None:
                rgba = layer_rgba
            else:  # later layers over earlier ones
                alpha = layer_rgba[..., 3:4].astype(np.float32) / 255
                rgba[..., :3] = (layer_rgba[..., :3] * alpha + rgba[..., :3] * (1 - alpha)).astype(np.uint8)
                rgba[..., 3] = np.maximum(rgba[..., 3], layer_rgba[..., 3])
        if rgba is not None:
            # draw only the bounding box of what shows: a lesion mask is a few percent of
            # the plane, and Qt then blends a small image instead of a 512x512 one
            rows = np.flatnonzero(rgba[..., 3].any(axis=1))
            cols = np.flatnonzero(rgba[..., 3].any(axis=0))
            if rows.size == 0:
                rgba = None
        if rgba is None:
            self.overlay_image.clear()
            self.overlay_image.setVisible(False)
            return
        i0, i1, j0, j1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        crop = np.ascontiguousarray(rgba[i0:i1, j0:j1].transpose(1, 0, 2)).transpose(1, 0, 2)
        sa, sb = self.geometry.scale
        self.overlay_image.setImage(crop, autoLevels=False, levels=None)
        self.overlay_image.setRect(QtCore.QRectF((i0 - 0.5) * sa, (j0 - 0.5) * sb, (i1 - i0) * sa, (j1 - j0) * sb))
        self.overlay_image.setVisible(True)

    def _apply_flip(self) -> None:
        self.viewbox.invertX(invert_x(self.orientation, self.model.radiological))

    def _place_labels(self) -> None:
        w, h = self.width(), self.height()
        left, right, top, bottom = self._letters
        left.move(4, h // 2 - left.height() // 2)
        right.move(w - right.width() - 4, h // 2 - right.height() // 2)
        top.move(w // 2 - top.width() // 2, 2)
        bottom.move(w // 2 - bottom.width() // 2, h - bottom.height() - 2)
        self.title_label.move(4, 2)
        self.wl_label.move(4, h - self.wl_label.height() - 2)
        self.max_button.move(w - self.max_button.sizeHint().width() - 2, 2)

    def resizeEvent(self, ev):
        super().resizeEvent(ev)
        self._place_labels()

    def mouseDoubleClickEvent(self, ev):
        self.maximiseRequested.emit(self.orientation)

    def _cursor_from_scene(self, scene_pos) -> None:
        world = self.screen_to_world(scene_pos)
        if world is not None:
            self.model.cursor = world

    def _on_mouse_moved(self, scene_pos) -> None:
        self._emit_hover(self.screen_to_world(scene_pos))
