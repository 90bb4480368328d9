"""Progressive rendering for an expensive full-screen GL item: the GUI thread never waits
long for one paint.

A ray-march at full quality costs ~0.4 s a frame under Mesa llvmpipe, and paintGL runs on
the GUI thread. So a frame is rendered into the item's own framebuffer in horizontal bands
(glScissor), a few bands per paint: the band height comes from the measured cost of the
previous bands (glFinish), so one paint spends about ``budget_ms``. A cheap preview (fewer
samples, lower resolution, again sized from the measured cost) is drawn first, so the view
is never black, and the bands replace it row by row. Anything that changes the image (the
caller's key, which holds camera, window, mode, overlay, textures; and the viewport size)
restarts the bands. When only the sample count changed (the interactive frame is followed
by the full-quality one) the finished frame is the backdrop instead of a blurry preview.

A frame may store values instead of colours (16 bits a channel), which a Shade maps to colours
when it is composited: a change of that mapping alone (the caller leaves it out of its key)
costs one composite, not a new frame. MIP does this (gl_volume_item.MipShade): a window/level
drag recolours the finished frame at every step.

The caller schedules the next paint while ``complete`` is False (a QTimer in the view);
``finish = True`` makes the next paint render everything left (grabbing a whole frame).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
from OpenGL import GL
from OpenGL.GL import shaders
from PySide6 import QtGui

_QUAD = np.array([[-1, -1], [1, -1], [1, 1], [-1, -1], [1, 1], [-1, 1]], np.float32)
_BLIT_VERT = """
IN vec2 a_position;
OUT vec2 v_uv;
void main() { v_uv = a_position * 0.5 + 0.5; gl_Position = vec4(a_position, 0.0, 1.0); }
"""
_BLIT_FRAG = """
uniform sampler2D u_image;
IN vec2 v_uv;
void main() { FRAGOUT = TEX2D(u_image, v_uv); }
"""


def build_program(vert: str, frag: str):
    """Compile a program for the current context: GLSL 1.40 on desktop GL >= 3.1 (core
    profiles have no 1.20), 1.20 otherwise. Sources use IN/OUT/TEX2D/TEX3D/FRAGOUT."""
    ctx = QtGui.QOpenGLContext.currentContext()
    modern = ctx is not None and not ctx.isOpenGLES() and ctx.format().version() >= (3, 1)
    if modern:
        head = "#version 140\n"
        vert = vert.replace("IN ", "in ").replace("OUT ", "out ")
        frag = ("out vec4 fragColor;\n" + frag).replace("IN ", "in ").replace("TEX3D", "texture") \
            .replace("TEX2D", "texture").replace("FRAGOUT", "fragColor")
    else:
        head = "#version 120\n"
        vert = vert.replace("IN ", "attribute ").replace("OUT ", "varying ")
        frag = frag.replace("IN ", "varying ").replace("TEX3D", "texture3D") \
            .replace("TEX2D", "texture2D").replace("FRAGOUT", "gl_FragColor")
    vs = shaders.compileShader(head + vert, GL.GL_VERTEX_SHADER)
    fs = shaders.compileShader(head + frag, GL.GL_FRAGMENT_SHADER)
    program = shaders.compileProgram(vs, fs, validate=False)
    GL.glBindAttribLocation(program, 0, "a_position")
    GL.glLinkProgram(program)
    return program


class _Target:
    """A colour texture and the framebuffer that renders into it: RGBA8 colours, or the 16-bit
    values that a Shade maps to colours when the frame is composited (``raw``)."""

    def __init__(self, width: int, height: int, raw: bool = False, magnified: bool = False):
        self.width, self.height, self.raw, self.magnified = width, height, raw, magnified
        self.texture = int(GL.glGenTextures(1))
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.texture)
        # a preview is magnified; a frame is drawn pixel for pixel, where a linear filter gives
        # the same values at a cost (a 459x426 MIP composite under llvmpipe: 2.6-3.4 ms, 2.0-2.4
        # with the nearest texel)
        for p in (GL.GL_TEXTURE_MIN_FILTER, GL.GL_TEXTURE_MAG_FILTER):
            GL.glTexParameteri(GL.GL_TEXTURE_2D, p, GL.GL_LINEAR if magnified else GL.GL_NEAREST)
        for p in (GL.GL_TEXTURE_WRAP_S, GL.GL_TEXTURE_WRAP_T):
            GL.glTexParameteri(GL.GL_TEXTURE_2D, p, GL.GL_CLAMP_TO_EDGE)
        GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, GL.GL_RGBA16 if raw else GL.GL_RGBA8, width, height, 0,
                        GL.GL_RGBA, GL.GL_UNSIGNED_BYTE, None)
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        self.fbo = int(GL.glGenFramebuffers(1))
        draw_fbo = int(GL.glGetIntegerv(GL.GL_DRAW_FRAMEBUFFER_BINDING))
        read_fbo = int(GL.glGetIntegerv(GL.GL_READ_FRAMEBUFFER_BINDING))
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.fbo)
        GL.glFramebufferTexture2D(GL.GL_FRAMEBUFFER, GL.GL_COLOR_ATTACHMENT0, GL.GL_TEXTURE_2D,
                                  self.texture, 0)
        status = GL.glCheckFramebufferStatus(GL.GL_FRAMEBUFFER)
        GL.glBindFramebuffer(GL.GL_DRAW_FRAMEBUFFER, draw_fbo)  # a new target changes no binding
        GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, read_fbo)
        if status != GL.GL_FRAMEBUFFER_COMPLETE:
            self.delete()
            raise RuntimeError(f"framebuffer incomplete (status 0x{int(status):x})")

    def delete(self) -> None:
        GL.glDeleteFramebuffers(1, [self.fbo])
        GL.glDeleteTextures([self.texture])


class Shade:
    """What maps a raw frame's stored values to colours when it is composited: the fragment
    source ``frag`` (GLSL with IN/TEX2D/FRAGOUT, the frame as ``u_image`` on unit 0 at
    ``v_uv``), and ``bind`` / ``unbind`` for its other uniforms and textures."""

    frag = ""

    def __init__(self):
        self._program = None

    def program(self):
        if self._program is None:  # built in the context that composites
            self._program = build_program(_BLIT_VERT, self.frag)
        return self._program

    def key(self):
        """The mapping's parameters (what ``bind`` sets), to tell a recolouring paint."""
        return None

    def bind(self, prog) -> None:
        pass

    def unbind(self) -> None:
        pass


class ProgressiveFrame:
    """Bands of one frame per paint; see the module docstring."""

    budget_ms = 15.0  # ray-marching time per paint; the rest of a paint (compositing, the
    # letters, the swap) is 5-10 ms more under llvmpipe, and the target is ~30 ms a paint
    preview_steps = 48  # samples per unit length of the preview
    # ray-marching time of the preview: the first paint after a change of camera or mode (or
    # of window, in the modes whose frames store colours). A window/level drag repaints the
    # three slice views (~7-8 ms under llvmpipe) and this paint in the same turn of the event
    # loop; at 7.5 ms (half the band budget) the step took 17-18 ms, over one 60 Hz frame. The
    # preview is coarser for it (the finished frame replaces it within a few paints)
    preview_ms = 3.0
    max_preview_factor = 16
    min_rows = 2  # every paint makes some progress, however slow the machine
    first_frame_rows = 8  # tallest band before any frame has been measured whole

    def __init__(self):
        self.complete = False
        self.finish = False
        self.paints = 0  # paints since the last restart
        self.restarts = 0
        self.rows_done = 0
        self.preview_factor = 4
        self._key = None
        # seconds per (pixel x sample-per-unit-length). For the bands, the most a band cost in
        # this frame and in the last finished one: rows through the volume cost ~30x the
        # empty rows above it, so an average would size the first band that meets the volume
        # far too tall; a band slowed by another process is forgotten after a finished frame.
        # For the preview a running mean (its rays through a magnified texture cost differently).
        self._frame_cost = None
        self._last_cost = None
        self._preview_cost = None
        self._front: _Target | None = None  # the frame being banded, full size
        self._back: _Target | None = None  # the last finished frame (swapped with front)
        self._preview: _Target | None = None
        self._backdrop: _Target | None = None  # what shows below the rows not yet done
        self._blit = None
        self._shade_key = None  # the mapping of the last composite
        self._preview_colours: _Target | None = None  # a raw preview's colours, to magnify

    # --- the paint --------------------------------------------------------------------------
    def paint(self, key, steps: int, draw: Callable[[int], None], shade: Shade | None = None) -> None:
        """Render (part of) the frame ``key`` into the item's framebuffers and composite it
        into the current framebuffer. ``draw(steps)`` ray-marches into whatever framebuffer
        and viewport are bound (blending and scissor are set up here). ``shade``: None when
        ``draw`` writes colours; else the frame keeps the 16-bit values ``draw`` writes and
        ``shade`` maps them to colours as the frame is composited, so that a change of that
        mapping alone (left out of ``key``) costs one composite instead of a new frame; such a
        paint only composites, also while the frame is unfinished (the bands go on in the next
        paints, as after a preview): a W/L drag step never waits for a band."""
        viewport = [int(v) for v in GL.glGetIntegerv(GL.GL_VIEWPORT)]
        draw_fbo = int(GL.glGetIntegerv(GL.GL_DRAW_FRAMEBUFFER_BINDING))
        read_fbo = int(GL.glGetIntegerv(GL.GL_READ_FRAMEBUFFER_BINDING))
        clear = GL.glGetFloatv(GL.GL_COLOR_CLEAR_VALUE)
        w, h = viewport[2], viewport[3]
        key = (steps, w, h, shade is not None, key)
        recoloured = shade is not None and shade.key() != self._shade_key
        self._shade_key = None if shade is None else shade.key()
        t_start = time.perf_counter()
        GL.glDisable(GL.GL_BLEND)  # the frame is stored as is and blended once, when composited
        GL.glClearColor(0.0, 0.0, 0.0, 0.0)
        try:
            if key != self._key:
                self._restart(key, w, h, steps, draw)
            elif not self.complete and (self.finish or not recoloured):
                self._bands(w, h, steps, draw, t_start)
            self.paints += 1
        finally:
            GL.glDisable(GL.GL_SCISSOR_TEST)
            GL.glBindFramebuffer(GL.GL_DRAW_FRAMEBUFFER, draw_fbo)
            GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, read_fbo)
            GL.glViewport(*viewport)
            GL.glClearColor(*[float(c) for c in clear])
        self.finish = False
        self._composite(w, h, shade)

    def show_last(self, shade: Shade | None = None) -> None:
        """Composite what the last paint showed (nothing when the size changed since)."""
        viewport = [int(v) for v in GL.glGetIntegerv(GL.GL_VIEWPORT)]
        if self._front is not None and (self._front.width, self._front.height) == tuple(viewport[2:]):
            self._composite(viewport[2], viewport[3], shade)

    def _restart(self, key, w: int, h: int, steps: int, draw) -> None:
        old = self._key
        only_steps = (old is not None and self.complete and old[1:] == key[1:])
        self._key = key
        self.restarts += 1
        if not self.complete and self._frame_cost is not None:  # a frame cut short: keep its worst too
            self._last_cost = max(self._last_cost or 0.0, self._frame_cost)
        self._frame_cost = None
        self.paints = 0
        self.rows_done = 0
        self.complete = False
        self._ensure_targets(w, h, key[3])
        if only_steps:
            # the finished frame differs only in its sample count: keep showing it
            self._front, self._back = self._back, self._front
            self._backdrop = self._back
            self._bands(w, h, steps, draw, time.perf_counter())
            return
        self._backdrop = None
        if self.finish:
            self._bands(w, h, steps, draw, time.perf_counter())
            return
        factor = self._preview_factor(w, h, min(steps, self.preview_steps))
        if factor == 1 and steps <= self.preview_steps:
            self.finish = True  # the frame itself is as cheap as a preview
            self._bands(w, h, steps, draw, time.perf_counter())
            return
        self._render_preview(w, h, factor, min(steps, self.preview_steps), draw)
        # the bands start with the next paint: while the camera keeps moving every paint
        # restarts, and a half-banded frame would show a seam

    def _preview_factor(self, w: int, h: int, steps: int) -> int:
        if self._preview_cost is None:
            return 6
        predicted = w * h * steps * self._preview_cost
        return int(min(self.max_preview_factor,
                       max(1, math.ceil(math.sqrt(predicted / max(self.preview_ms * 1e-3, 1e-3))))))

    def _render_preview(self, w: int, h: int, factor: int, steps: int, draw) -> None:
        pw, ph = max(1, w // factor), max(1, h // factor)
        if self._preview is None or (self._preview.width, self._preview.height, self._preview.raw) != \
                (pw, ph, self._front.raw):
            if self._preview is not None:
                self._preview.delete()
            self._preview = _Target(pw, ph, self._front.raw, magnified=True)
        self.preview_factor = factor
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self._preview.fbo)
        GL.glViewport(0, 0, pw, ph)
        # the same state as the bands (scissor on): llvmpipe compiles a shader variant per
        # state, and a second compile would land on the first band (~80 ms)
        GL.glEnable(GL.GL_SCISSOR_TEST)
        GL.glScissor(0, 0, pw, ph)
        GL.glClear(GL.GL_COLOR_BUFFER_BIT)
        t0 = time.perf_counter()
        draw(steps)
        GL.glFinish()
        cost = (time.perf_counter() - t0) / (pw * ph * steps)
        self._preview_cost = cost if self._preview_cost is None else 0.5 * (self._preview_cost + cost)
        self._backdrop = self._preview

    def _bands(self, w: int, h: int, steps: int, draw, t_start: float) -> None:
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self._front.fbo)
        GL.glViewport(0, 0, w, h)
        GL.glEnable(GL.GL_SCISSOR_TEST)
        budget = self.budget_ms * 1e-3
        last = None  # rows of the previous band of this paint
        while self.rows_done < h:
            left = h - self.rows_done
            if self.finish:
                rows = left
            else:
                # as many rows as the time left affords at the costliest rows seen, a band at
                # most twice the last one (while the estimate has only seen empty rows); at
                # least min_rows, so every paint progresses
                spare = max(0.0, budget - (time.perf_counter() - t_start))
                cost = max(self._frame_cost or 0.0, self._last_cost or 0.0)
                rows = int(0.8 * spare / (cost * w * steps)) if cost > 0 else self.min_rows
                if self._last_cost is None:  # the first frame: its costly rows may be below
                    rows = min(rows, self.first_frame_rows)
                if last is not None:
                    if rows < self.min_rows:
                        break
                    rows = min(rows, 2 * last)
                rows = min(left, max(self.min_rows, rows))
            y0 = h - self.rows_done - rows  # top of the picture first (GL rows count upwards)
            GL.glScissor(0, y0, w, rows)
            GL.glClear(GL.GL_COLOR_BUFFER_BIT)
            t0 = time.perf_counter()
            draw(steps)
            GL.glFinish()
            self._learn(time.perf_counter() - t0, w * rows * steps)
            self.rows_done += rows
            last = rows
            if not self.finish and time.perf_counter() - t_start >= budget:
                break
        self.complete = self.rows_done >= h
        if self.complete:
            self._backdrop = None
            self._last_cost = self._frame_cost

    def _learn(self, seconds: float, work: int) -> None:
        if work <= 0:
            return
        self._frame_cost = max(self._frame_cost or 0.0, seconds / work)

    # --- framebuffers and compositing -------------------------------------------------------------
    def _ensure_targets(self, w: int, h: int, raw: bool) -> None:
        if self._front is not None and (self._front.width, self._front.height, self._front.raw) == (w, h, raw):
            return
        self.release()
        self._front, self._back = _Target(w, h, raw), _Target(w, h, raw)

    def _composite(self, w: int, h: int, shade: Shade | None = None) -> None:
        if self._front is None:
            return
        if self._front.raw != (shade is not None):
            return  # values stored for another mapping (the mode just changed): the next frame
        backdrop = None if self.complete else self._backdrop
        backdrop_shade = shade
        if backdrop is not None and shade is not None and backdrop.magnified:
            # colour the small preview first and magnify the colours: a 16-bit texture filtered
            # over the whole view cost ~1 ms more a paint under llvmpipe than RGBA8
            backdrop, backdrop_shade = self._coloured(backdrop, shade), None
        GL.glEnable(GL.GL_BLEND)
        GL.glBlendFunc(GL.GL_SRC_ALPHA, GL.GL_ONE_MINUS_SRC_ALPHA)
        GL.glDisable(GL.GL_DEPTH_TEST)
        GL.glDisable(GL.GL_CULL_FACE)
        try:
            if backdrop is not None:
                self._draw(backdrop.texture, backdrop_shade)
            if self.rows_done > 0:
                viewport = [int(v) for v in GL.glGetIntegerv(GL.GL_VIEWPORT)]
                GL.glEnable(GL.GL_SCISSOR_TEST)
                done = self.rows_done
                GL.glScissor(viewport[0], viewport[1] + h - done, w, done)
                self._draw(self._front.texture, shade)
                GL.glDisable(GL.GL_SCISSOR_TEST)
        finally:
            GL.glEnable(GL.GL_DEPTH_TEST)

    def _draw(self, texture: int, shade: Shade | None) -> None:
        """The texture over the viewport, through ``shade`` or as it is."""
        if shade is not None:
            prog = shade.program()
        else:
            if self._blit is None:
                self._blit = build_program(_BLIT_VERT, _BLIT_FRAG)
            prog = self._blit
        GL.glUseProgram(prog)
        try:
            if shade is not None:
                shade.bind(prog)
            GL.glActiveTexture(GL.GL_TEXTURE0)
            GL.glUniform1i(GL.glGetUniformLocation(prog, "u_image"), 0)
            GL.glBindTexture(GL.GL_TEXTURE_2D, texture)
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, 0)
            GL.glEnableVertexAttribArray(0)
            GL.glVertexAttribPointer(0, 2, GL.GL_FLOAT, False, 0, _QUAD)
            GL.glDrawArrays(GL.GL_TRIANGLES, 0, len(_QUAD))
            GL.glDisableVertexAttribArray(0)
        finally:
            if shade is not None:
                shade.unbind()
            GL.glUseProgram(0)
            GL.glActiveTexture(GL.GL_TEXTURE0)
            GL.glBindTexture(GL.GL_TEXTURE_2D, 0)

    def _coloured(self, raw: _Target, shade: Shade) -> _Target:
        """``raw`` (a preview's values) through ``shade`` into a colour target of its size."""
        size = (raw.width, raw.height)
        if self._preview_colours is None or (self._preview_colours.width, self._preview_colours.height) != size:
            if self._preview_colours is not None:
                self._preview_colours.delete()
            self._preview_colours = _Target(*size, magnified=True)
        viewport = [int(v) for v in GL.glGetIntegerv(GL.GL_VIEWPORT)]
        draw_fbo = int(GL.glGetIntegerv(GL.GL_DRAW_FRAMEBUFFER_BINDING))
        scissor = GL.glIsEnabled(GL.GL_SCISSOR_TEST)
        GL.glBindFramebuffer(GL.GL_DRAW_FRAMEBUFFER, self._preview_colours.fbo)
        GL.glViewport(0, 0, *size)
        GL.glDisable(GL.GL_SCISSOR_TEST)
        GL.glDisable(GL.GL_BLEND)  # the values' coverage becomes the colours' alpha as it is
        try:
            self._draw(raw.texture, shade)
        finally:
            GL.glBindFramebuffer(GL.GL_DRAW_FRAMEBUFFER, draw_fbo)
            GL.glViewport(*viewport)
            if scissor:
                GL.glEnable(GL.GL_SCISSOR_TEST)
        return self._preview_colours

    def release(self) -> None:
        """Delete the framebuffers (the context must be current); the next paint restarts."""
        for t in (self._front, self._back, self._preview, self._preview_colours):
            if t is not None:
                t.delete()
        self._front = self._back = self._preview = self._backdrop = self._preview_colours = None
        self._key = None
        self.complete = False
        self.rows_done = 0
