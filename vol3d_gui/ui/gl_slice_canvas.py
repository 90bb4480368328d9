"""The drawing surface of a GL slice view: a native QOpenGLWindow (as the 3-D view's, and for
the same reason: a QOpenGLWidget makes Qt compose the whole top-level window through GL on
every repaint, ~20 ms under llvmpipe) that paints the plane and its overlays with the
shaders of gl_slice_textures, caching the picture in framebuffers of its own (``_paint``).
Zoom and pan are a view rectangle kept here; what is shown (volume, slice, window,
overlays, cursor) comes from the owning view on each paint.

Screen <-> view millimetres: ``center`` (view mm at the middle of the window), ``mm_per_px``
(one logical pixel, the same along x and y: the true physical aspect) and ``flip_x`` (screen
x runs against view x: radiological display, the sagittal view).
"""

from __future__ import annotations

import numpy as np
from OpenGL import GL
from PySide6 import QtCore, QtGui, QtOpenGL, QtWidgets

from vol3d_gui.ui.gl_progressive import _Target
from vol3d_gui.ui.gl_slice_textures import MAX_OVERLAYS, PlaneTexture
from vol3d_gui.ui.gl_window_host import render_and_read_back
from vol3d_gui.viewer.colormaps import lut

_QUAD = np.array([[-1, -1], [1, -1], [1, 1], [-1, -1], [1, 1], [-1, 1]], np.float32)


class GLSliceCanvas(QtOpenGL.QOpenGLWindow):
    """Paints what ``owner.frame_state()`` returns; forwards input to the owner."""

    def __init__(self, owner, textures):
        super().__init__()
        self.owner = owner
        self.textures = textures  # gl_slice_textures.SliceTextures, shared by the model's views
        self.center = np.zeros(2)
        self.mm_per_px = 1.0
        self._target = (1.0, 1.0)  # view mm (width, height) kept whole when the window resizes
        self.flip_x = False
        self.error: str | None = None
        self.on_error = None  # callback(str): the shader or a texture failed in a paint
        self.paints = 0
        self.dirty = False  # asked to paint and not painted since
        self.plane_renders = 0  # paints that rendered the plane (not only the crosshair)
        self.layer_renders = 0  # paints that rendered the overlays' layer
        self._plane = None  # gl_progressive._Target: the plane as last rendered, overlays composited
        self._plane_key = None
        self._layer = None  # gl_progressive._Target: the overlays alone, premultiplied
        self._layer_key = None
        self._layer_box = None  # its drawn part (device pixels), None when empty
        self._last_layer_key = None  # what the overlays showed at the last render of the plane
        self._cache_ok = True
        self.plane = PlaneTexture()  # this view's plane (textures are made in its own context)

    def request(self) -> None:
        """Ask for a paint (the event loop delivers it, coalesced, within a frame)."""
        self.dirty = True
        self.update()

    # --- view rectangle ---------------------------------------------------------------------
    def fit(self, rect) -> None:
        """Show ``rect`` (x, y, w, h view mm) whole, centred, with 2% padding."""
        x, y, w, h = rect
        self._target = (w * 1.04, h * 1.04)
        self.center = np.array([x + w / 2, y + h / 2])
        self._apply_target()

    def _apply_target(self) -> None:
        # the extent asked for (a fit, or what a zoom showed) stays whole in any window size,
        # as pyqtgraph's ViewBox keeps its range when the view is resized
        tw, th = self._target
        self.mm_per_px = max(tw / max(self.width(), 1), th / max(self.height(), 1))
        self.update()

    def zoom(self, factor: float, around: QtCore.QPointF | None = None) -> None:
        """Magnify by ``factor`` (>1 zooms in), keeping the view point under ``around`` fixed."""
        if around is not None:
            before = np.array(self.to_view(around))
        self.mm_per_px /= factor
        self._target = (self.width() * self.mm_per_px, self.height() * self.mm_per_px)
        if around is not None:
            self.center += before - np.array(self.to_view(around))
        self.update()

    def pan_pixels(self, dx: float, dy: float) -> None:
        self.center -= np.array([dx * (-1 if self.flip_x else 1), -dy]) * self.mm_per_px
        self.update()

    def to_view(self, pos: QtCore.QPointF) -> tuple[float, float]:
        """View mm of a window position (logical pixels, y down)."""
        sx = -1.0 if self.flip_x else 1.0
        x = self.center[0] + (pos.x() - self.width() / 2) * self.mm_per_px * sx
        y = self.center[1] - (pos.y() - self.height() / 2) * self.mm_per_px
        return float(x), float(y)

    def from_view(self, x: float, y: float) -> QtCore.QPointF:
        sx = -1.0 if self.flip_x else 1.0
        px = self.width() / 2 + (x - self.center[0]) / (self.mm_per_px * sx)
        py = self.height() / 2 - (y - self.center[1]) / self.mm_per_px
        return QtCore.QPointF(px, py)

    def view_range(self) -> list[list[float]]:
        """[[x0, x1], [y0, y1]] in view mm (as pyqtgraph's ViewBox.viewRange)."""
        hw, hh = self.width() / 2 * self.mm_per_px, self.height() / 2 * self.mm_per_px
        cx, cy = self.center
        return [[cx - hw, cx + hw], [cy - hh, cy + hh]]

    # --- painting -------------------------------------------------------------------------------
    def frag_to_voxel(self, geometry, index: int) -> np.ndarray:
        """4x4: gl_FragCoord (device pixels, y up) -> base voxel index of the plane shown."""
        dpr = float(self.devicePixelRatio())
        s = self.mm_per_px / dpr
        sx = -s if self.flip_x else s
        # view mm = offset + frag * step
        ox = self.center[0] - self.width() / 2 * self.mm_per_px * (-1 if self.flip_x else 1)
        oy = self.center[1] - self.height() / 2 * self.mm_per_px
        a, b = geometry.in_plane_axes
        sa, sb = geometry.scale
        m = np.zeros((4, 4))
        m[a, 0], m[a, 3] = sx / sa, ox / sa
        m[b, 1], m[b, 3] = s / sb, oy / sb
        m[geometry.axis, 3] = index
        m[3, 3] = 1.0
        return m

    def cross_pixels(self, x: float, y: float) -> tuple[float, float]:
        """Device-pixel (gl_FragCoord) position of view point (x, y)."""
        p = self.from_view(x, y)
        dpr = float(self.devicePixelRatio())
        return p.x() * dpr, (self.height() - p.y()) * dpr

    def initializeGL(self) -> None:
        GL.glClearColor(0.0, 0.0, 0.0, 1.0)
        # a new context (the window was re-created): nothing of the old one is valid
        self._plane = self._layer = None
        self.plane.id, self.plane.key, self.plane.shape = None, None, (0, 0)

    def paintGL(self) -> None:
        self.paints += 1
        self.dirty = False
        state = self.owner.frame_state() if self.error is None else None
        if state is None:
            GL.glClear(GL.GL_COLOR_BUFFER_BIT)
            return
        try:
            self._paint(state)
        except Exception as exc:  # a shader or texture failure: report once, never crash the app
            self.error = f"{type(exc).__name__}: {exc}"
            if self.on_error is not None:
                self.on_error(self.error)
            return

    def _paint(self, st) -> None:
        """The picture is cached in this window's own framebuffer: a move of the crosshair
        alone copies it and draws two lines. A new slice or overlay renders the plane and the
        overlays over it. A W/L drag renders the overlays once into a layer of their own
        (premultiplied), and each step then only the plane and one composite of that layer."""
        dpr = self.devicePixelRatio()
        w, h = int(self.width() * dpr), int(self.height() * dpr)
        tx = self.textures
        tx.ensure(st.volume, st.overlays)
        self.plane.show(st.volume, st.geometry.axis, st.index)
        layers = list(st.overlays)[-MAX_OVERLAYS:]
        view = (self.plane.key, tuple(self.center), self.mm_per_px, self.flip_x, w, h)
        layer_key = (view, tuple((id(lay.volume), lay.colormap, lay.opacity, lay.threshold, lay.vmin, lay.vmax)
                                 for lay in layers))
        key = (layer_key, st.window, st.colormap)
        screen = self.defaultFramebufferObject()
        self._ensure_targets(w, h)
        GL.glViewport(0, 0, w, h)
        if self._plane is None:  # no framebuffer objects: everything on every paint
            GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, screen)
            self._draw_base(st)
            self._draw_overlays(st, layers)
        elif key != self._plane_key:
            if layer_key != self._layer_key and layer_key == self._last_layer_key and layers:
                # the same overlays on the same plane, another window: a W/L drag. Render the
                # overlays once into their own layer; each step then composites it again
                GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self._layer.fbo)
                GL.glClearColor(0.0, 0.0, 0.0, 0.0)
                GL.glClear(GL.GL_COLOR_BUFFER_BIT)
                GL.glClearColor(0.0, 0.0, 0.0, 1.0)
                self._layer_box = self._draw_overlays(st, layers)
                self._layer_key = layer_key
                self.layer_renders += 1
            GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self._plane.fbo)
            self._draw_base(st)
            if layer_key == self._layer_key:
                if self._layer_box is not None:
                    self._composite(self._layer_box, w, h)
            else:  # a new slice or overlay: drawn straight over the plane, no extra pass
                self._draw_overlays(st, layers)
            self._last_layer_key = layer_key
            self._plane_key = key
            self.plane_renders += 1
        if self._plane is not None:
            GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, self._plane.fbo)
            GL.glBindFramebuffer(GL.GL_DRAW_FRAMEBUFFER, screen)
            GL.glBlitFramebuffer(0, 0, w, h, 0, 0, w, h, GL.GL_COLOR_BUFFER_BIT, GL.GL_NEAREST)
            GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, screen)
        self._draw_cross(st, w, h)

    def _ensure_targets(self, w: int, h: int) -> None:
        if self._plane is not None and (self._plane.width, self._plane.height) == (w, h):
            return
        for t in (self._plane, self._layer):
            if t is not None:
                t.delete()
        self._plane = self._layer = None
        self._plane_key = self._layer_key = None
        if self._cache_ok:
            try:
                self._plane, self._layer = _Target(w, h), _Target(w, h)
            except Exception:  # no framebuffer objects: draw the plane on every paint
                self._cache_ok = False
                self._plane = self._layer = None

    def _composite(self, box, w: int, h: int) -> None:
        """The overlays' layer (premultiplied) over the plane, on the layer's screen box."""
        prog = self.textures.composite_program()
        GL.glUseProgram(prog)
        try:
            GL.glActiveTexture(GL.GL_TEXTURE0)
            GL.glBindTexture(GL.GL_TEXTURE_2D, self._layer.texture)
            GL.glUniform1i(GL.glGetUniformLocation(prog, "u_layer"), 0)
            GL.glEnable(GL.GL_BLEND)
            GL.glBlendFunc(GL.GL_ONE, GL.GL_ONE_MINUS_SRC_ALPHA)
            self._draw_quad(_box_quad(box, w, h))
        finally:
            GL.glDisable(GL.GL_BLEND)
            GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
            GL.glUseProgram(0)

    def _draw_base(self, st) -> None:
        """The plane through the window (and the base colour map)."""
        tx = self.textures
        GL.glDisable(GL.GL_BLEND)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT)
        grey = st.colormap == "grey"
        frag_to_voxel = self.frag_to_voxel(st.geometry, st.index)
        prog = tx.program(st.volume.dtype, grey)
        GL.glUseProgram(prog)
        u = lambda n: GL.glGetUniformLocation(prog, n)  # noqa: E731
        try:
            GL.glActiveTexture(GL.GL_TEXTURE0)
            GL.glBindTexture(GL.GL_TEXTURE_2D, self.plane.id)
            GL.glUniform1i(u("u_plane"), 0)
            if not grey:
                GL.glActiveTexture(GL.GL_TEXTURE1)
                GL.glBindTexture(GL.GL_TEXTURE_2D, tx.lut_texture(st.colormap))
                GL.glUniform1i(u("u_lut"), 1)
            a, b = st.geometry.in_plane_axes
            GL.glUniform2i(u("u_size"), *map(int, self.plane.shape))
            GL.glUniform3f(u("u_fa"), *map(float, frag_to_voxel[a, [0, 1, 3]]))
            GL.glUniform3f(u("u_fb"), *map(float, frag_to_voxel[b, [0, 1, 3]]))
            GL.glUniform1f(u("u_low"), float(st.window.low))
            GL.glUniform1f(u("u_scale"), float(255.0 / st.window.width))
            self._draw_quad(_QUAD)
        finally:
            GL.glUseProgram(0)
            for unit in range(2):
                GL.glActiveTexture(GL.GL_TEXTURE0 + unit)
                GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
            GL.glActiveTexture(GL.GL_TEXTURE0)

    def _draw_overlays(self, st, layers):
        """Each overlay blended (premultiplied) into the bound framebuffer on its own screen
        box: a lesion mask's few percent of the view, or nothing on a slice it does not
        reach. Returns the union of the boxes drawn (device pixels), or None."""
        frag_to_voxel = self.frag_to_voxel(st.geometry, st.index)
        union = None
        GL.glEnable(GL.GL_BLEND)
        GL.glBlendFunc(GL.GL_ONE, GL.GL_ONE_MINUS_SRC_ALPHA)
        try:
            for layer in layers:
                box = self._draw_overlay(st, layer, frag_to_voxel)
                if box is not None:
                    union = box if union is None else (min(union[0], box[0]), max(union[1], box[1]),
                                                       min(union[2], box[2]), max(union[3], box[3]))
        finally:
            GL.glDisable(GL.GL_BLEND)
            GL.glUseProgram(0)
            for unit in range(2):
                GL.glActiveTexture(GL.GL_TEXTURE0 + unit)
                GL.glBindTexture(GL.GL_TEXTURE_3D, 0)
                GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
            GL.glActiveTexture(GL.GL_TEXTURE0)
        return union

    def _draw_overlay(self, st, layer, frag_to_voxel: np.ndarray):
        tx = self.textures
        m, shape, tex, value_range = tx.overlay_matrix(layer)
        box = self._overlay_box(st, np.linalg.inv(m), shape, frag_to_voxel)
        if box is None:
            return None
        prog = tx.overlay_program(layer)
        GL.glUseProgram(prog)
        u = lambda n: GL.glGetUniformLocation(prog, n)  # noqa: E731
        GL.glActiveTexture(GL.GL_TEXTURE0)
        GL.glBindTexture(GL.GL_TEXTURE_3D, tex)
        GL.glUniform1i(u("u_ov"), 0)
        if not layer.is_binary_mask:
            GL.glActiveTexture(GL.GL_TEXTURE1)
            GL.glBindTexture(GL.GL_TEXTURE_2D, tx.lut_texture(layer.colormap))
            GL.glUniform1i(u("u_ovlut"), 1)
        GL.glUniform3i(u("u_n"), *map(int, st.volume.shape))
        GL.glUniformMatrix4fv(u("u_frag_to_voxel"), 1, True, frag_to_voxel.astype(np.float32))
        GL.glUniformMatrix4fv(u("u_ovm"), 1, True, np.asarray(m, np.float32))
        GL.glUniform3f(u("u_ovn"), *map(float, shape))
        scale = 255.0 / (layer.vmax - layer.vmin)
        alpha = round(255 * layer.opacity) / 255.0
        GL.glUniform4f(u("u_ovp"), float(layer.threshold), float(layer.vmin), scale, alpha)
        GL.glUniform3f(u("u_ovcol"), *(lut(layer.colormap)[-1] / 255.0).tolist())
        GL.glUniform2f(u("u_ovrange"), *map(float, value_range))
        w, h = self.width() * self.devicePixelRatio(), self.height() * self.devicePixelRatio()
        self._draw_quad(_box_quad(box, w, h))
        return box

    def _overlay_box(self, st, to_base: np.ndarray, shape, frag_to_voxel: np.ndarray):
        """(x0, x1, y0, y1) device pixels of the screen box of the overlay's grid on this
        plane, or None when the plane misses it."""
        n = np.asarray(shape, float)
        corners = np.array([[x, y, z, 1.0] for x in (-0.5, n[0] - 0.5) for y in (-0.5, n[1] - 0.5)
                            for z in (-0.5, n[2] - 0.5)])
        ijk = (to_base @ corners.T)[:3]  # base voxel coordinates of the overlay's corners
        lo, hi = ijk.min(axis=1), ijk.max(axis=1)
        ax = st.geometry.axis
        if st.index < lo[ax] - 0.5 or st.index > hi[ax] + 0.5:
            return None
        a, b = st.geometry.in_plane_axes
        w, h = self.width() * self.devicePixelRatio(), self.height() * self.devicePixelRatio()
        # frag -> voxel is diagonal in-plane: invert per axis, half a base voxel of margin
        fx = (np.array([lo[a] - 0.5, hi[a] + 0.5]) - frag_to_voxel[a, 3]) / frag_to_voxel[a, 0]
        fy = (np.array([lo[b] - 0.5, hi[b] + 0.5]) - frag_to_voxel[b, 3]) / frag_to_voxel[b, 1]
        x0, x1 = np.clip([np.floor(fx.min()) - 1, np.ceil(fx.max()) + 1], 0, w)
        y0, y1 = np.clip([np.floor(fy.min()) - 1, np.ceil(fy.max()) + 1], 0, h)
        if x1 <= x0 or y1 <= y0:
            return None
        return float(x0), float(x1), float(y0), float(y1)

    def _draw_cross(self, st, w: int, h: int) -> None:
        cx, cy = self.cross_pixels(*st.cross)
        # through the centre of the pixel the cursor falls in, as two 1-pixel lines
        x = (np.floor(cx) + 0.5) / w * 2 - 1
        y = (np.floor(cy) + 0.5) / h * 2 - 1
        lines = np.array([[x, -1], [x, 1], [-1, y], [1, y]], np.float32)
        GL.glEnable(GL.GL_BLEND)
        GL.glBlendFunc(GL.GL_SRC_ALPHA, GL.GL_ONE_MINUS_SRC_ALPHA)
        GL.glUseProgram(self.textures.line_program())
        try:
            self._draw_quad(lines, GL.GL_LINES)
        finally:
            GL.glUseProgram(0)
            GL.glDisable(GL.GL_BLEND)

    @staticmethod
    def _draw_quad(vertices: np.ndarray, mode=GL.GL_TRIANGLES) -> None:
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, 0)
        GL.glEnableVertexAttribArray(0)
        GL.glVertexAttribPointer(0, 2, GL.GL_FLOAT, False, 0, vertices)
        GL.glDrawArrays(mode, 0, len(vertices))
        GL.glDisableVertexAttribArray(0)

    def render_now(self, only_if_dirty: bool = False) -> None:
        """Paint and present one frame synchronously (QOpenGLWindow has no repaint())."""
        if not self.isExposed() or (only_if_dirty and not self.dirty):
            return
        self.makeCurrent()
        try:
            GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.defaultFramebufferObject())
            self.paintGL()
            self.context().swapBuffers(self)
        finally:
            self.doneCurrent()

    def grab_frame(self) -> QtGui.QImage:
        """Render one frame and read it back."""
        return render_and_read_back(self)

    # --- input: the owner decides what a gesture means ----------------------------------------------
    def mousePressEvent(self, ev):
        self.owner.canvas_mouse_press(ev)

    def mouseMoveEvent(self, ev):
        self.owner.canvas_mouse_move(ev)

    def mouseReleaseEvent(self, ev):
        self.owner.canvas_mouse_release(ev)

    def mouseDoubleClickEvent(self, ev):
        self.owner.maximiseRequested.emit(self.owner.orientation)

    def wheelEvent(self, ev):
        self.owner.canvas_wheel(ev)

    def keyPressEvent(self, ev):
        # keys pressed while the native window has the focus go where a widget's would
        QtWidgets.QApplication.sendEvent(self.owner, ev)

    def resizeGL(self, w, h):
        self._apply_target()


def _box_quad(box, w: float, h: float) -> np.ndarray:
    """Two triangles (NDC) over a box (x0, x1, y0, y1) of device pixels."""
    x0, x1, y0, y1 = box[0] / w * 2 - 1, box[1] / w * 2 - 1, box[2] / h * 2 - 1, box[3] / h * 2 - 1
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y0], [x1, y1], [x0, y1]], np.float32)
