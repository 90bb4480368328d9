"""The drawing surface of a GL slice view: a native QOpenGLWindow (as the 3-D view's, and for
the same reason: a QOpenGLWidget makes Qt compose the whole top-level window through GL on
every repaint, ~20 ms under llvmpipe) that paints the plane and its overlays in one pass
(gl_slice_shaders, textures from gl_slice_textures; an oblique overlay's own pass in
gl_slice_passes), and after a crosshair move only what the old lines covered (``_paint``).
Zoom and pan are a view rectangle kept here; what is shown (volume, slice, window,
overlays, cursor) comes from the owning view on each paint.

Screen <-> view millimetres: ``center`` (view mm at the middle of the window), ``mm_per_px``
(one logical pixel, the same along x and y: the true physical aspect) and ``flip_x`` (screen
x runs against view x: radiological display, the sagittal view).
"""

from __future__ import annotations

import ctypes
import math

import numpy as np
from OpenGL import GL
from PySide6 import QtCore, QtGui, QtOpenGL, QtWidgets

from vol3d_gui.ui.gl_calls import gl, pixel_buffer, raise_errors
from vol3d_gui.ui.gl_slice_passes import (
    box_quad,
    draw_oblique_overlays,
    draw_quad,
    overlay_regions,
    overlay_screen_box,
    overlay_uniforms,
    pixel_quads,
    smooth_map,
)
from vol3d_gui.ui.gl_slice_textures import MAX_OVERLAYS, OverlayPlane, PlaneTexture
from vol3d_gui.ui.gl_window_host import render_and_read_back


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
        self.frames = None  # gl_slice_frames.SliceFrames that paints this canvas with the others
        self.paints = 0
        self.dirty = False  # asked to paint and not painted since
        self.plane_renders = 0  # paints that drew the whole picture (plane and overlays)
        self.line_repaints = 0  # paints that redrew only under the crosshair lines
        self.back_buffer_kept: bool | None = None  # what the last check of the back buffer found
        self._drawn_key = None  # the picture of the last frame painted
        self._drawn_lines = (0, 0)  # its crosshair lines' pixel column and row
        self._plane_box = None  # its plane's screen box (device pixels), None when off screen
        self.drawn_regions = []  # its parts: (overlays drawn there, by index; their boxes)
        self._mark = None  # the mark left in its corner (see _leave_mark), None: unmarked
        self._marks = 0
        self._grabbing = False
        self._checked: bool | None = None  # check_back_buffer's reading, for the next paint
        self._prepared = None  # what prepare() uploaded, for the next paint
        self.plane = PlaneTexture()  # this view's plane (textures are made in its own context)
        self._overlay_planes: dict[int, OverlayPlane] = {}  # id(layer volume) -> its plane here

    def request(self) -> None:
        """Ask for a paint (the event loop delivers it, coalesced, within a frame): with the
        other views of the model (``frames``, gl_slice_frames) when there are some."""
        self.dirty = True
        if self.frames is not None:
            self.frames.schedule()
        else:
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
    def plane_maps(self, geometry) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """(fa, fb): device pixel (x, y, 1) (gl_FragCoord, y up) -> the in-plane base voxel
        indices a and b of the plane shown (plain floats: computed on every paint)."""
        s = self.mm_per_px / float(self.devicePixelRatio())
        # view mm = offset + frag * step
        ox = float(self.center[0]) - self.width() / 2 * self.mm_per_px * (-1 if self.flip_x else 1)
        oy = float(self.center[1]) - self.height() / 2 * self.mm_per_px
        sa, sb = geometry.scale
        return ((-s if self.flip_x else s) / sa, 0.0, ox / sa), (0.0, s / sb, oy / sb)

    def frag_to_voxel(self, geometry, index: int) -> np.ndarray:
        """4x4: gl_FragCoord (device pixels, y up) -> base voxel index of the plane shown."""
        fa, fb = self.plane_maps(geometry)
        a, b = geometry.in_plane_axes
        m = np.zeros((4, 4))
        m[a, [0, 1, 3]] = fa
        m[b, [0, 1, 3]] = fb
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
        self._drawn_key, self._mark, self._prepared = None, None, None
        self.plane.id, self.plane.key, self.plane.shape = None, None, (0, 0)
        self._overlay_planes.clear()

    def paintGL(self) -> None:
        self.paints += 1
        self.dirty = False
        prepared, self._prepared = self._prepared, None
        if prepared is None:
            prepared = self._prepare()
        if prepared is None:
            GL.glClear(GL.GL_COLOR_BUFFER_BIT)
            return
        self._guarded(self._paint, *prepared)

    def prepare(self) -> None:
        """Bring this view's textures up to date for its next paint (the context current).

        gl_slice_frames calls this for every view before any of them draws. Under llvmpipe
        (Mesa 22.3) an upload waits until the pictures flushed before it, by any of the views'
        contexts, are rasterised: uploaded in its paint, a crosshair move's new plane took
        1.2 ms (median; 3.9 ms p90), and 0.1 ms after a glFinish, which itself waited the
        difference though its own context had nothing queued."""
        self._prepared = self._prepare()

    def _prepare(self):
        """(state, the overlays drawn, fused overlays' samplings, overlays drawn in a pass of
        their own), or None when there is nothing to draw."""
        state = self.owner.frame_state() if self.error is None else None
        if state is None:
            return None
        return self._guarded(self._upload, state)

    def _guarded(self, step, *args):
        try:
            return step(*args)
        except Exception as exc:  # a shader or texture failure: report once, never crash the app
            self.error = f"{type(exc).__name__}: {exc}"
            if self.on_error is not None:
                self.on_error(self.error)
            return None

    def _upload(self, st):
        tx = self.textures
        tx.ensure(st.volume, st.overlays)
        self.plane.show(st.volume, st.geometry.axis, st.index)
        layers = list(st.overlays)[-MAX_OVERLAYS:]
        fused, own = tx.split(layers)
        self._drop_overlay_planes(layers)
        sampled = [(layer, self._overlay_plane(layer).show(tx.prepared(layer), st.geometry.axis, st.index))
                   for layer in fused]
        return st, layers, sampled, own

    def _paint(self, st, layers, sampled, own) -> None:
        """A new picture (slice, window, overlay, zoom) is drawn whole in one pass. A move of
        the crosshair alone (while a reader drags it in this view, the other two change slice
        on every step) redraws only the picture under the old lines and the new lines, when
        the window's back buffer still holds the last frame: checked on every such paint by a
        mark left in the frame's corner (``_kept_frame``); otherwise the whole picture again."""
        dpr = self.devicePixelRatio()
        w, h = int(self.width() * dpr), int(self.height() * dpr)
        key = (self.plane.key, tuple(self.center), self.mm_per_px, self.flip_x, w, h, st.window, st.colormap,
               tuple((id(lay.volume), lay.colormap, lay.opacity, lay.threshold, lay.vmin, lay.vmax)
                     for lay in layers))
        gl.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.defaultFramebufferObject())
        gl.glViewport(0, 0, w, h)
        checked, self._checked = self._checked, None  # a reading for this paint only
        if key == self._drawn_key and self._kept_frame(checked):
            self._restore_under_lines(st, sampled, own, w, h)
            self.line_repaints += 1
        else:
            self._draw_picture(st, sampled, own, w, h)
            self.plane_renders += 1
        self._drawn_key = key
        self._drawn_lines = self._draw_cross(st, w, h)
        self._leave_mark()
        raise_errors("the slice view's paint")

    def check_back_buffer(self) -> None:
        """Read the corner mark now (the context current), for the next paint: before other
        views are drawn, the read waits for nobody's rasteriser (gl_slice_frames)."""
        self._checked = self._read_mark()

    def has_reading(self) -> bool:
        """Whether check_back_buffer has read the mark since the last paint."""
        return self._checked is not None

    def lines_only_likely(self) -> bool:
        """Whether the next paint most likely moves this view's lines alone (it shows the slice
        it drew last): a cheap guess, for check_back_buffer's choice only."""
        if self._drawn_key is None or self.error is not None:
            return False
        st = self.owner.frame_state()
        return st is not None and self.plane.key == (id(st.volume), st.geometry.axis, st.index)

    def _kept_frame(self, checked: bool | None) -> bool:
        """Whether the back buffer holds the frame this window painted last: its corner pixel
        is still the mark that paint left (a swap that keeps the back buffer, as Mesa's
        software path does, keeps it; a driver that hands out another buffer or a cleared one
        does not). Read back each time: one pixel, or read just before (``checked``)."""
        if self._mark is None or self._grabbing:
            return False
        kept = checked if checked is not None else self._read_mark()
        self.back_buffer_kept = kept
        return kept

    def _read_mark(self) -> bool:
        if self._mark is None or self._grabbing:
            return False
        pixel = pixel_buffer(4)
        gl.glReadPixels(0, 0, 1, 1, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE, ctypes.addressof(pixel))
        return bytes(pixel)[:3] == bytes((self._mark, 0, 0))

    def _leave_mark(self) -> None:
        """Mark the frame in its bottom-left pixel when that pixel is background (outside the
        plane, never a voxel's value): (k, 0, 0) with k in 1..3, one step on from the last, a
        difference from black no one sees. Grabs (exports, screenshots) are left unmarked."""
        self._mark = None
        box = self._plane_box
        if self._grabbing or (box is not None and box[0] < 1 and box[2] < 1):
            return
        self._marks = self._marks % 3 + 1
        self._fill([(0, 1, 0, 1)], (self._marks / 255.0, 0.0, 0.0, 1.0))
        self._mark = self._marks

    def _restore_under_lines(self, st, sampled, own, w: int, h: int) -> None:
        """The picture again where the last lines were (3-pixel strips), nowhere else: drawn
        as strips of geometry (a scissored clear or draw costs llvmpipe a whole pass)."""
        x, y = self._drawn_lines
        strips = [(max(x - 1, 0), min(x + 2, w), 0, h), (0, w, max(y - 1, 0), min(y + 2, h))]
        strips = [s for s in strips if s[1] > s[0] and s[3] > s[2]]
        self._fill(strips, (0.0, 0.0, 0.0, 1.0))
        self._draw_plane(st, sampled, w, h, strips)
        if own:  # oblique overlays (rare): their pass, clipped to each strip
            frag_to_voxel = self.frag_to_voxel(st.geometry, st.index)
            gl.glEnable(GL.GL_SCISSOR_TEST)
            try:
                for x0, x1, y0, y1 in strips:
                    gl.glScissor(int(x0), int(y0), int(x1 - x0), int(y1 - y0))
                    draw_oblique_overlays(self, st, own, frag_to_voxel)
            finally:
                gl.glDisable(GL.GL_SCISSOR_TEST)

    def _fill(self, boxes, colour) -> None:
        """Boxes (x0, x1, y0, y1 device pixels) in one colour, unblended."""
        w, h = self.width() * self.devicePixelRatio(), self.height() * self.devicePixelRatio()
        prog = self.textures.solid_program()
        gl.glUseProgram(prog.id)
        try:
            gl.glDisable(GL.GL_BLEND)
            gl.glUniform4f(prog.loc("u_colour"), *colour)
            draw_quad([v for b in boxes for v in box_quad(b, w, h)])
        finally:
            gl.glUseProgram(0)

    def _overlay_plane(self, layer) -> OverlayPlane:
        plane = self._overlay_planes.get(id(layer.volume))
        if plane is None:
            plane = self._overlay_planes[id(layer.volume)] = OverlayPlane()
        return plane

    def _drop_overlay_planes(self, layers) -> None:
        shown = {id(lay.volume) for lay in layers}
        for key in [k for k in self._overlay_planes if k not in shown]:
            self._overlay_planes.pop(key).release()

    def _draw_picture(self, st, sampled, own, w: int, h: int) -> None:
        gl.glDisable(GL.GL_BLEND)
        gl.glClear(GL.GL_COLOR_BUFFER_BIT)
        self._draw_plane(st, sampled, w, h)
        if own:
            draw_oblique_overlays(self, st, own, self.frag_to_voxel(st.geometry, st.index))

    def _draw_plane(self, st, sampled, w: int, h: int, regions=None) -> None:
        """The plane through the window and colour map, and the overlays of ``sampled`` ((layer,
        its plane's sampling or None when this slice misses it)) in the same pass, over the
        screen box of the plane only (within ``regions``, boxes of device pixels, if given);
        each part of it with the overlays that can show there (overlay_regions)."""
        fa, fb = self.plane_maps(st.geometry)
        na, nb = self.plane.shape
        # frag -> voxel is diagonal in-plane: the box where a in [-0.5, na - 0.5], b likewise
        xs = [min(max(x, 0.0), w) for x in sorted(((-0.5 - fa[2]) / fa[0], (na - 0.5 - fa[2]) / fa[0]))]
        ys = [min(max(y, 0.0), h) for y in sorted(((-0.5 - fb[2]) / fb[1], (nb - 0.5 - fb[2]) / fb[1]))]
        if xs[1] <= xs[0] or ys[1] <= ys[0]:
            self._plane_box = None
            return
        box = self._plane_box = (float(xs[0]), float(xs[1]), float(ys[0]), float(ys[1]))
        shown = [(lay, self.textures.prepared(lay), s) for lay, s in sampled if s is not None]
        parts = overlay_regions(box, [overlay_screen_box(s, fa, fb, box) for _lay, _ov, s in shown])
        self.drawn_regions = []
        for subset, boxes in parts:
            if regions is not None:
                boxes = [(max(b[0], r[0]), min(b[1], r[1]), max(b[2], r[2]), min(b[3], r[3]))
                         for b in boxes for r in regions]
                boxes = [b for b in boxes if b[1] > b[0] and b[3] > b[2]]
            if boxes:
                self.drawn_regions.append((subset, boxes))
                self._draw_plane_part(st, [shown[i] for i in subset], fa, fb, w, h, boxes)

    def _draw_plane_part(self, st, shown, fa, fb, w: int, h: int, boxes) -> None:
        """``boxes`` of the plane with the overlays of ``shown`` ((layer, prepared, sampling))."""
        tx = self.textures
        na, nb = self.plane.shape
        grey = st.colormap == "grey"
        prog = tx.program(st.volume.dtype, grey, [(ov.order, ov.binary, smooth_map(ov, s)) for _lay, ov, s in shown],
                          self.plane.transposed)
        u = prog.loc
        gl.glUseProgram(prog.id)
        try:
            gl.glActiveTexture(GL.GL_TEXTURE0)
            gl.glBindTexture(GL.GL_TEXTURE_2D, self.plane.id)
            gl.glUniform1i(u("u_plane"), 0)
            if not grey:
                gl.glActiveTexture(GL.GL_TEXTURE1)
                gl.glBindTexture(GL.GL_TEXTURE_2D, tx.lut_texture(st.colormap))
                gl.glUniform1i(u("u_lut"), 1)
            gl.glUniform2f(u("u_viewport"), float(w), float(h))
            gl.glUniform2i(u("u_size"), int(na), int(nb))
            gl.glUniform3f(u("u_fa"), *fa)
            gl.glUniform3f(u("u_fb"), *fb)
            gl.glUniform1f(u("u_low"), float(st.window.low))
            gl.glUniform1f(u("u_scale"), float(255.0 / st.window.width))
            for i, (layer, ov, (os_, ot, on)) in enumerate(shown):
                unit = 2 + 2 * i
                gl.glActiveTexture(GL.GL_TEXTURE0 + unit)
                gl.glBindTexture(GL.GL_TEXTURE_2D, self._overlay_planes[id(layer.volume)].id)
                gl.glUniform1i(u(f"u_ov{i}"), unit)
                gl.glUniform3f(u(f"u_os{i}"), *os_)
                gl.glUniform3f(u(f"u_ot{i}"), *ot)
                gl.glUniform2f(u(f"u_on{i}"), *on)
                overlay_uniforms(tx, u, layer, f"{i}", unit + 1, ov.value_range, ("u_op", "u_oc", "u_or", "u_ol"))
            draw_quad(pixel_quads(boxes))
        finally:
            gl.glUseProgram(0)
            for unit in range(2 + 2 * len(shown)):
                gl.glActiveTexture(GL.GL_TEXTURE0 + unit)
                gl.glBindTexture(GL.GL_TEXTURE_2D, 0)
            gl.glActiveTexture(GL.GL_TEXTURE0)

    def _draw_cross(self, st, w: int, h: int) -> tuple[int, int]:
        """Two 1-pixel lines through the centre of the pixel the cursor falls in; returns that
        pixel's column and row."""
        cx, cy = self.cross_pixels(*st.cross)
        col, row = math.floor(cx), math.floor(cy)
        x = (col + 0.5) / w * 2 - 1
        y = (row + 0.5) / h * 2 - 1
        lines = (x, -1.0, x, 1.0, -1.0, y, 1.0, y)
        gl.glEnable(GL.GL_BLEND)
        gl.glBlendFunc(GL.GL_SRC_ALPHA, GL.GL_ONE_MINUS_SRC_ALPHA)
        prog = self.textures.solid_program()
        gl.glUseProgram(prog.id)
        try:
            gl.glUniform4f(prog.loc("u_colour"), 1.0, 220.0 / 255.0, 0.0, 180.0 / 255.0)
            draw_quad(lines, GL.GL_LINES)
        finally:
            gl.glUseProgram(0)
            gl.glDisable(GL.GL_BLEND)
        return col, row

    def grab_frame(self) -> QtGui.QImage:
        """Render one frame (the whole picture, unmarked) and read it back."""
        self._grabbing = True
        try:
            return render_and_read_back(self)
        finally:
            self._grabbing = False

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
