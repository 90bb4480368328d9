"""What the slice canvas draws besides its plane's pass: the quads every pass draws, the
overlays' uniforms (shared by the plane's pass and an oblique overlay's), and the pass of an
overlay whose grid is oblique to the volume's (gl_slice_shaders: overlay_source)."""

from __future__ import annotations

import functools
import math

import numpy as np
from OpenGL import GL

from vol3d_gui.ui.gl_calls import floats, gl
from vol3d_gui.viewer.colormaps import lut

SMOOTH_CELL = 4.0  # base voxels per map texel (both in-plane axes) from which a map is sampled smooth


def smooth_map(ov, sampling) -> bool:
    """A map (trilinear) coarse enough on this plane to be sampled where each pixel is
    (gl_slice_shaders.plane_source): each texel spans SMOOTH_CELL base voxels or more."""
    if ov.order != 1:
        return False
    os_, ot, _on = sampling
    return max(abs(os_[0]), abs(os_[1]), abs(ot[0]), abs(ot[1])) <= 1.0 / SMOOTH_CELL


def draw_quad(vertices, mode=GL.GL_TRIANGLES) -> None:
    """Vertices (a flat sequence x0, y0, x1, y1, ...) from client memory into attribute 0,
    drawn."""
    data = floats(vertices)
    gl.glBindBuffer(GL.GL_ARRAY_BUFFER, 0)
    gl.glEnableVertexAttribArray(0)
    gl.glVertexAttribPointer(0, 2, GL.GL_FLOAT, 0, 0, data.buffer_info()[0])
    gl.glDrawArrays(mode, 0, len(data) // 2)
    gl.glDisableVertexAttribArray(0)


def box_quad(box, w: float, h: float) -> list[float]:
    """Two triangles (NDC, flat) over a box (x0, x1, y0, y1) of device pixels."""
    x0, x1, y0, y1 = box[0] / w * 2 - 1, box[1] / w * 2 - 1, box[2] / h * 2 - 1, box[3] / h * 2 - 1
    return [x0, y0, x1, y0, x1, y1, x0, y0, x1, y1, x0, y1]


def pixel_quads(boxes) -> list[float]:
    """Two triangles (flat, device pixels) over each box (x0, x1, y0, y1)."""
    out: list[float] = []
    for x0, x1, y0, y1 in boxes:
        out += (x0, y0, x1, y0, x1, y1, x0, y0, x1, y1, x0, y1)
    return out


def overlay_uniforms(textures, u, layer, suffix: str, lut_unit: int, value_range, names) -> None:
    """Threshold, window of values, opacity, colour (a mask's one, or a map's table)."""
    params, colour, rng, table = (n + suffix for n in names)
    scale = 255.0 / (layer.vmax - layer.vmin)
    alpha = round(255 * layer.opacity) / 255.0
    gl.glUniform4f(u(params), float(layer.threshold), float(layer.vmin), scale, alpha)
    gl.glUniform3f(u(colour), *lut_top(layer.colormap))
    gl.glUniform2f(u(rng), float(value_range[0]), float(value_range[1]))
    if not layer.is_binary_mask:
        gl.glActiveTexture(GL.GL_TEXTURE0 + lut_unit)
        gl.glBindTexture(GL.GL_TEXTURE_2D, textures.lut_texture(layer.colormap))
        gl.glUniform1i(u(table), lut_unit)


@functools.lru_cache(maxsize=64)
def lut_top(name: str) -> tuple[float, float, float]:
    """A colour map's last colour in [0, 1] (a binary mask's one colour)."""
    r, g, b = (lut(name)[-1] / 255.0).tolist()
    return r, g, b


def draw_oblique_overlays(canvas, st, layers, frag_to_voxel: np.ndarray) -> None:
    """Each oblique overlay blended (premultiplied) into the bound framebuffer on its own
    screen box (a slice it does not reach costs nothing)."""
    GL.glEnable(GL.GL_BLEND)
    GL.glBlendFunc(GL.GL_ONE, GL.GL_ONE_MINUS_SRC_ALPHA)
    try:
        for layer in layers:
            _draw_oblique(canvas, st, layer, frag_to_voxel)
    finally:
        GL.glDisable(GL.GL_BLEND)
        GL.glUseProgram(0)
        for unit in range(2):
            GL.glActiveTexture(GL.GL_TEXTURE0 + unit)
            GL.glBindTexture(GL.GL_TEXTURE_3D, 0)
            GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        GL.glActiveTexture(GL.GL_TEXTURE0)


def _draw_oblique(canvas, st, layer, frag_to_voxel: np.ndarray) -> None:
    tx = canvas.textures
    ov = tx.prepared(layer)
    dpr = canvas.devicePixelRatio()
    w, h = canvas.width() * dpr, canvas.height() * dpr
    box = _overlay_box(st, np.linalg.inv(ov.matrix), ov.drawn.shape, frag_to_voxel, w, h)
    if box is None:
        return
    prog = tx.overlay_program(layer)
    u = prog.loc
    GL.glUseProgram(prog.id)
    GL.glActiveTexture(GL.GL_TEXTURE0)
    GL.glBindTexture(GL.GL_TEXTURE_3D, ov.texture().id)
    GL.glUniform1i(u("u_ov"), 0)
    GL.glUniform3i(u("u_n"), *map(int, st.volume.shape))
    GL.glUniformMatrix4fv(u("u_frag_to_voxel"), 1, True, frag_to_voxel.astype(np.float32))
    GL.glUniformMatrix4fv(u("u_ovm"), 1, True, np.asarray(ov.matrix, np.float32))
    GL.glUniform3f(u("u_ovn"), *map(float, ov.drawn.shape))
    overlay_uniforms(tx, u, layer, "", 1, ov.value_range, ("u_ovp", "u_ovcol", "u_ovrange", "u_ovlut"))
    draw_quad(box_quad(box, w, h))


def _overlay_box(st, to_base: np.ndarray, shape, frag_to_voxel: np.ndarray, w: float, h: float):
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
    # frag -> voxel is diagonal in-plane: invert per axis, half a base voxel of margin
    fx = (np.array([lo[a] - 0.5, hi[a] + 0.5]) - frag_to_voxel[a, 3]) / frag_to_voxel[a, 0]
    fy = (np.array([lo[b] - 0.5, hi[b] + 0.5]) - frag_to_voxel[b, 3]) / frag_to_voxel[b, 1]
    x0, x1 = np.clip([np.floor(fx.min()) - 1, np.ceil(fx.max()) + 1], 0, w)
    y0, y1 = np.clip([np.floor(fy.min()) - 1, np.ceil(fy.max()) + 1], 0, h)
    if x1 <= x0 or y1 <= y0:
        return None
    return float(x0), float(x1), float(y0), float(y1)


def overlay_screen_box(sampling, fa, fb, plane_box):
    """(x0, x1, y0, y1) device pixels outside which an aligned overlay's plane, sampled with
    ``sampling`` (u_os, u_ot, u_on: (a, b, 1) -> its texel column, row), cannot show: a
    superset, a base voxel and a pixel wider on every side than its texels' extent, cut to
    the plane's box; None when it misses the plane. ``fa``, ``fb``: pixel -> a, b.
    Plain floats: it runs for every overlay on every paint."""
    os_, ot, on = sampling
    a_lo, a_hi, b_lo, b_hi = -math.inf, math.inf, -math.inf, math.inf
    for (ca, cb, c0), n in ((os_, on[0]), (ot, on[1])):
        # each texel coordinate follows one in-plane axis (the grids are aligned)
        scale, along_a = (ca, True) if ca != 0 else (cb, False)
        if scale == 0:
            continue
        lo, hi = sorted(((-0.5 - c0) / scale, (n - 0.5 - c0) / scale))
        lo, hi = lo - 1.0, hi + 1.0  # the base voxel centre a pixel samples is half a voxel away
        if along_a:
            a_lo, a_hi = max(a_lo, lo), min(a_hi, hi)
        else:
            b_lo, b_hi = max(b_lo, lo), min(b_hi, hi)
    x0, x1, y0, y1 = plane_box
    if math.isfinite(a_lo) and math.isfinite(a_hi):
        xs = sorted(((a_lo - fa[2]) / fa[0], (a_hi - fa[2]) / fa[0]))
        x0, x1 = max(x0, math.floor(xs[0]) - 1.0), min(x1, math.ceil(xs[1]) + 1.0)
    if math.isfinite(b_lo) and math.isfinite(b_hi):
        ys = sorted(((b_lo - fb[2]) / fb[1], (b_hi - fb[2]) / fb[1]))
        y0, y1 = max(y0, math.floor(ys[0]) - 1.0), min(y1, math.ceil(ys[1]) + 1.0)
    if x1 <= x0 or y1 <= y0:
        return None
    return float(x0), float(x1), float(y0), float(y1)


def overlay_regions(plane_box, boxes) -> list[tuple[tuple[int, ...], list]]:
    """The plane's box cut where overlays' screen boxes (None: not on screen) start and end:
    [(the overlays that can show there, by index, bottom first; its boxes)]. llvmpipe runs
    every instruction of a fragment shader whatever its branches decide, so an overlay fused
    into the plane's pass costs every pixel of the pass (+0.5 ms a view for a mask); drawn
    with the program of the overlays each region needs, a lesion's mask costs its own box."""
    x0, x1, y0, y1 = plane_box
    shown = [(i, b) for i, b in enumerate(boxes) if b is not None]
    xs = sorted({x0, x1, *(v for _i, b in shown for v in b[:2] if x0 < v < x1)})
    ys = sorted({y0, y1, *(v for _i, b in shown for v in b[2:] if y0 < v < y1)})
    regions: dict[tuple[int, ...], list] = {}
    for ya, yb in zip(ys, ys[1:]):
        row_start, row_key = xs[0], None
        for xa, xb in zip(xs, xs[1:]):
            key = tuple(i for i, b in shown if b[0] <= xa and xb <= b[1] and b[2] <= ya and yb <= b[3])
            if row_key is not None and key != row_key:
                regions.setdefault(row_key, []).append((row_start, xa, ya, yb))
                row_start = xa
            row_key = key
        regions.setdefault(row_key, []).append((row_start, xs[-1], ya, yb))
    return list(regions.items())
