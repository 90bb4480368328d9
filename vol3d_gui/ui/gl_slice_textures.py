"""GL state of the slice views: the plane on screen as a texture of raw values, the overlays'
3-D textures (shared by the three views), colour tables, and the shaders that draw them.

As napari/vispy draw an image: the plane is cut from the volume on the CPU (numpy: the
axial plane of a C-ordered 512x512x300 volume is a strided gather, 0.7 ms when its cache
lines are warm, as when scrolling, ~2 ms after a jump; the others well under) and uploaded in its own dtype
(int16 stays int16, read exactly with texelFetch), and everything a reader changes while
reading is a uniform: window/level, the overlays' colour map, opacity, threshold and
visibility. A W/L step or a crosshair move within the slice uploads nothing; a new slice
uploads one plane (0.5 MB). Measured under llvmpipe, this beats drawing the planes from one
3-D texture of the volume (the first design): a 3-D texelFetch across the volume's two slow
axes costs llvmpipe ~2-5 ms per view, a cache-friendly 2-D one well under that, and the
volume is not held a second time in the GL driver (llvmpipe keeps textures in host memory).

An overlay is sampled on its own grid through a base-voxel -> overlay-voxel matrix (the same
nearest / trilinear rule as core.resample), in its own pass over the screen box its grid
covers (a lesion mask is a few percent of a view; a slice it does not reach costs nothing);
a binary mask is uploaded as its bounding box only.
"""

from __future__ import annotations

import numpy as np
from OpenGL import GL
from OpenGL.GL import shaders
from PySide6 import QtGui

from vol3d_gui.core.resample import base_slice, plane_voxel_to_overlay
from vol3d_gui.core.volume import Volume
from vol3d_gui.viewer.colormaps import lut

MAX_OVERLAYS = 8  # drawn (the top ones when there are more)

# numpy dtype -> (internal format, format, type, sampler kind); anything else goes as float32
_FORMATS = {
    np.dtype(np.int16): (GL.GL_R16I, GL.GL_RED_INTEGER, GL.GL_SHORT, "i"),
    np.dtype(np.uint16): (GL.GL_R16UI, GL.GL_RED_INTEGER, GL.GL_UNSIGNED_SHORT, "u"),
    np.dtype(np.uint8): (GL.GL_R8UI, GL.GL_RED_INTEGER, GL.GL_UNSIGNED_BYTE, "u"),
    np.dtype(np.int8): (GL.GL_R8I, GL.GL_RED_INTEGER, GL.GL_BYTE, "i"),
    np.dtype(np.int32): (GL.GL_R32I, GL.GL_RED_INTEGER, GL.GL_INT, "i"),
    np.dtype(np.uint32): (GL.GL_R32UI, GL.GL_RED_INTEGER, GL.GL_UNSIGNED_INT, "u"),
    np.dtype(np.float32): (GL.GL_R32F, GL.GL_RED, GL.GL_FLOAT, "f"),
}

_VERT = """#version 140
in vec2 a_position;
void main() { gl_Position = vec4(a_position, 0.0, 1.0); }
"""

_FRAG_HEAD = """#version 140
out vec4 fragColor;
uniform {kind}sampler2D u_plane;  // the plane's raw values, (na, nb) row-major: texel (b, a)
uniform ivec2 u_size;        // (na, nb)
uniform vec3 u_fa;           // gl_FragCoord -> in-plane index a (slice, zoom, pan and flip)
uniform vec3 u_fb;           // gl_FragCoord -> in-plane index b
uniform float u_low;
uniform float u_scale;       // 255 / window width
uniform sampler2D u_lut;     // base colour map, 256 x 1
void main() {{
    vec3 f = vec3(gl_FragCoord.xy, 1.0);
    vec2 ab = floor(vec2(dot(u_fa, f), dot(u_fb, f)) + 0.5);
    vec3 col = vec3(0.0);
    if (all(greaterThanEqual(ab, vec2(0.0))) && all(lessThan(ab, vec2(u_size)))) {{
        float value = float(texelFetch(u_plane, ivec2(ab.y, ab.x), 0).r);
        // as core.windowing.apply_window: truncated to 8 bits
        float g = isnan(value) ? 0.0 : floor(clamp((value - u_low) * u_scale, 0.0, 255.0));  // NaN: black
        col = {base_colour};
    }}
    fragColor = vec4(col, 1.0);
}}
"""

_OVERLAY_FRAG = """#version 140
out vec4 fragColor;
uniform ivec3 u_n;
uniform mat4 u_frag_to_voxel;
uniform mat4 u_ovm;          // base voxel -> overlay voxel
uniform vec3 u_ovn;          // overlay shape, numpy order
uniform vec4 u_ovp;          // threshold, vmin, 255 / (vmax - vmin), opacity
uniform vec3 u_ovcol;        // a binary mask's one colour
uniform vec2 u_ovrange;      // a quantised map: value = x + fraction * y
uniform sampler2D u_ovlut;   // its colour map, 256 x 1
uniform sampler3D u_ov;

void main() {{
    // sampled at the centre of the base voxel drawn here, as core.resample does on the CPU
    vec3 ijk = floor((u_frag_to_voxel * vec4(gl_FragCoord.xy, 0.0, 1.0)).xyz + 0.5);
    if (any(lessThan(ijk, vec3(0.0))) || any(greaterThanEqual(ijk, vec3(u_n)))) discard;
    vec3 c = (u_ovm * vec4(ijk, 1.0)).xyz;
    float v;
{sample}
    if (!(v > u_ovp.x)) discard;  // NaN (outside the map) never shows
{colour}
}}
"""
_NEAREST = """    vec3 r = floor(c + 0.5);
    if (any(lessThan(r, vec3(0.0))) || any(greaterThanEqual(r, u_ovn))) discard;
    v = texelFetch(u_ov, ivec3(r).{swz}, 0).r;"""
_LINEAR = """    if (any(lessThan(c, vec3(-0.5))) || any(greaterThan(c, u_ovn - 0.5))) discard;
    v = u_ovrange.x + texture(u_ov, ((c + 0.5) / u_ovn).{swz}).r * u_ovrange.y;"""
_MASK_COLOUR = """    if (!(v > 0.0)) discard;  // a binary mask: 0 is background whatever the threshold
    fragColor = vec4(u_ovcol * u_ovp.w, u_ovp.w);  // premultiplied"""
_MAP_COLOUR = """    vec3 rgb = texelFetch(u_ovlut, ivec2(int(floor(clamp((v - u_ovp.y) * u_ovp.z, 0.0, 255.0))), 0), 0).rgb;
    fragColor = vec4(rgb * u_ovp.w, u_ovp.w);  // premultiplied"""
_COMPOSITE_FRAG = """#version 140
out vec4 fragColor;
uniform sampler2D u_layer;
void main() { fragColor = texelFetch(u_layer, ivec2(gl_FragCoord.xy), 0); }
"""


def overlay_source(order: int, binary: bool, x_fast: bool) -> str:
    """One overlay's pass, drawn blended (premultiplied) on the overlay's screen box only."""
    swz = "xyz" if x_fast else "zyx"
    return _OVERLAY_FRAG.format(sample=(_LINEAR if order == 1 else _NEAREST).format(swz=swz),
                                colour=_MASK_COLOUR if binary else _MAP_COLOUR)


def _link(frag: str):
    vs = shaders.compileShader(_VERT, GL.GL_VERTEX_SHADER)
    fs = shaders.compileShader(frag, GL.GL_FRAGMENT_SHADER)
    program = shaders.compileProgram(vs, fs, validate=False)
    GL.glBindAttribLocation(program, 0, "a_position")
    GL.glLinkProgram(program)
    return program


_LINE_FRAG = """#version 140
out vec4 fragColor;
void main() { fragColor = vec4(1.0, 220.0 / 255.0, 0.0, 180.0 / 255.0); }
"""


def fragment_source(kind: str, grey: bool = True) -> str:
    """The plane's shader for a texture of sampler kind '' (float), 'i' or 'u'. Specialised
    (a grey map needs no table): llvmpipe runs every branch a fragment could take."""
    return _FRAG_HEAD.format(kind=kind, base_colour="vec3(g / 255.0)" if grey
                             else "texelFetch(u_lut, ivec2(int(g), 0), 0).rgb")


def build_slice_program(kind: str, grey: bool = True):
    """Compile and link the plane's shader in the current context (GLSL 1.40: texelFetch and
    integer samplers); raises when the context cannot (the caller falls back to the CPU)."""
    ctx = QtGui.QOpenGLContext.currentContext()
    if ctx is None or ctx.isOpenGLES() or ctx.format().version() < (3, 1):
        version = None if ctx is None else ctx.format().version()
        raise RuntimeError(f"the slice shader needs desktop OpenGL >= 3.1, this context has {version}")
    return _link(fragment_source(kind, grey))


def texture_layout(data: np.ndarray) -> tuple[np.ndarray, bool]:
    """(C-contiguous array to upload, x_fast): an F-ordered volume (nibabel's usual) goes as
    its transpose without a copy, texture x then running along numpy axis 0."""
    if data.flags.c_contiguous:
        return data, False
    if data.flags.f_contiguous:
        return data.T, True
    return data, False  # strided: copied on upload


def _upload_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    return dtype if dtype in _FORMATS else np.dtype(np.float32)


def sampler_kind(dtype) -> str:
    return {"i": "i", "u": "u", "f": ""}[_FORMATS[_upload_dtype(dtype)][3]]


def mask_box(volume: Volume) -> Volume:
    """A binary mask cut to the bounding box of its nonzero voxels (placed by its affine):
    a lesion is a few percent of the volume, and the texture is that much smaller."""
    data = np.asarray(volume.data)
    nz = [np.flatnonzero(data.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
    if any(n.size == 0 for n in nz):
        lo = hi = np.zeros(3, int)
        hi = hi + 1
    else:
        lo = np.array([n[0] for n in nz])
        hi = np.array([n[-1] + 1 for n in nz])
    shift = np.eye(4)
    shift[:3, 3] = lo
    crop = data[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    return Volume(np.ascontiguousarray(crop), volume.affine @ shift)


def _texture_params(target, filt) -> None:
    for p in (GL.GL_TEXTURE_MIN_FILTER, GL.GL_TEXTURE_MAG_FILTER):
        GL.glTexParameteri(target, p, filt)
    for p in (GL.GL_TEXTURE_WRAP_S, GL.GL_TEXTURE_WRAP_T, GL.GL_TEXTURE_WRAP_R):
        GL.glTexParameteri(target, p, GL.GL_CLAMP_TO_EDGE)


class _Texture3D:
    """An overlay's 3-D texture (uploaded whole: a saliency map or a mask's bounding box)."""

    def __init__(self, data: np.ndarray, *, linear: bool = False):
        data, self.x_fast = texture_layout(data)
        dtype = _upload_dtype(data.dtype)
        ifmt, fmt, typ, _kind = _FORMATS[dtype]
        if linear and dtype == np.uint8:  # a map quantised to 8 bits (_quantised)
            ifmt, fmt = GL.GL_R8, GL.GL_RED
        d, h, w = data.shape
        self.id = int(GL.glGenTextures(1))
        GL.glBindTexture(GL.GL_TEXTURE_3D, self.id)
        _texture_params(GL.GL_TEXTURE_3D, GL.GL_LINEAR if linear else GL.GL_NEAREST)
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
        GL.glTexImage3D(GL.GL_TEXTURE_3D, 0, ifmt, w, h, d, 0, fmt, typ,
                        np.ascontiguousarray(data, dtype=dtype))
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 4)
        GL.glBindTexture(GL.GL_TEXTURE_3D, 0)

    def delete(self) -> None:
        GL.glDeleteTextures([self.id])


class PlaneTexture:
    """One view's plane of raw values (a 2-D texture of the volume's dtype), replaced when the
    view shows another slice or volume. Textures are made in the view's own context."""

    def __init__(self):
        self.id: int | None = None
        self.key = None  # (volume id, axis, index) of the plane uploaded
        self.shape = (0, 0)
        self.dtype = None
        self.uploads = 0

    def show(self, volume: Volume, axis: int, index: int) -> None:
        key = (id(volume), axis, index)
        if key == self.key:
            return
        dtype = _upload_dtype(volume.dtype)
        plane = np.ascontiguousarray(base_slice(volume, axis, index), dtype=dtype)
        ifmt, fmt, typ, _kind = _FORMATS[dtype]
        if self.id is None:
            self.id = int(GL.glGenTextures(1))
            GL.glBindTexture(GL.GL_TEXTURE_2D, self.id)
            _texture_params(GL.GL_TEXTURE_2D, GL.GL_NEAREST)
        GL.glBindTexture(GL.GL_TEXTURE_2D, self.id)
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
        na, nb = plane.shape
        if (na, nb) == self.shape and dtype == self.dtype:
            GL.glTexSubImage2D(GL.GL_TEXTURE_2D, 0, 0, 0, nb, na, fmt, typ, plane)
        else:
            GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, ifmt, nb, na, 0, fmt, typ, plane)
        GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 4)
        GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        self.key, self.shape, self.dtype = key, (na, nb), dtype
        self.uploads += 1

    def release(self) -> None:
        if self.id is not None:
            GL.glDeleteTextures([self.id])
        self.id, self.key, self.shape = None, None, (0, 0)


class SliceTextures:
    """What the three slice views of one viewer model share (one GL share group: made in
    whichever view's context paints first): overlay textures, colour tables, programs."""

    def __init__(self):
        self.volume: Volume | None = None  # the base volume the overlay matrices are for
        self.overlays: dict[int, tuple] = {}  # id(layer volume) -> (volume, drawn, texture, value range)
        self.luts: dict[str, int] = {}
        self._programs: dict = {}

    def program(self, dtype, grey: bool = True) -> int:
        """The plane's program for a volume of ``dtype`` (compiled once per kind)."""
        key = (sampler_kind(dtype), grey)
        prog = self._programs.get(key)
        if prog is None:
            prog = self._programs[key] = build_slice_program(*key)
        return prog

    def overlay_program(self, layer) -> int:
        """An overlay's pass (one per kind: nearest or trilinear, mask or map, layout)."""
        key = ("overlay", layer.order, layer.is_binary_mask, self.overlays[id(layer.volume)][2].x_fast)
        prog = self._programs.get(key)
        if prog is None:
            prog = self._programs[key] = _link(overlay_source(*key[1:]))
        return prog

    def ensure(self, volume: Volume, overlays) -> None:
        """Bring the overlay textures up to date with what the model shows."""
        self.volume = volume
        wanted = {id(layer.volume): layer for layer in overlays}
        for key in [k for k in self.overlays if k not in wanted]:
            self.overlays.pop(key)[2].delete()
        for key, layer in wanted.items():
            if key not in self.overlays:
                drawn = mask_box(layer.volume) if layer.is_binary_mask else layer.volume
                data, value_range = np.asarray(drawn.data, dtype=np.float32), (0.0, 1.0)
                if layer.order == 1:
                    data, value_range = _quantised(data)
                tex = _Texture3D(data, linear=layer.order == 1)
                self.overlays[key] = (layer.volume, drawn, tex, value_range)

    def line_program(self) -> int:
        prog = self._programs.get("line")
        if prog is None:
            prog = self._programs["line"] = _link(_LINE_FRAG)
        return prog

    def composite_program(self) -> int:
        prog = self._programs.get("composite")
        if prog is None:
            prog = self._programs["composite"] = _link(_COMPOSITE_FRAG)
        return prog

    def lut_texture(self, name: str) -> int:
        tex = self.luts.get(name)
        if tex is None:
            tex = self.luts[name] = _lut_texture(lut(name)[None])
        return tex

    def overlay_matrix(self, layer) -> tuple[np.ndarray, tuple, int, tuple[float, float]]:
        """(base voxel -> drawn overlay voxel, drawn shape, texture id, (value at 0, span))."""
        _vol, drawn, tex, value_range = self.overlays[id(layer.volume)]
        return plane_voxel_to_overlay(self.volume, drawn), drawn.shape, tex.id, value_range


def _quantised(data: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """A map to be filtered (saliency) as 8-bit fractions of its finite range, and (low, span).

    llvmpipe filters 8-bit textures on a fixed-point path several times faster than float
    ones (a full-view trilinear float map cost ~4 ms a view). 256 levels are what the colour
    map has anyway; the threshold falls on the nearest level. NaN becomes the lowest value."""
    finite = data[np.isfinite(data)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    span = hi - lo if hi > lo else 1.0
    q = np.nan_to_num((data - lo) * (255.0 / span), nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(np.rint(q), 0, 255).astype(np.uint8), (lo, span)


def _lut_texture(rows: np.ndarray) -> int:
    """A (rows, 256) RGB uint8 table as a nearest-sampled 2-D texture."""
    tex = int(GL.glGenTextures(1))
    GL.glBindTexture(GL.GL_TEXTURE_2D, tex)
    for p in (GL.GL_TEXTURE_MIN_FILTER, GL.GL_TEXTURE_MAG_FILTER):
        GL.glTexParameteri(GL.GL_TEXTURE_2D, p, GL.GL_NEAREST)
    GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
    GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, GL.GL_RGB8, 256, rows.shape[0], 0, GL.GL_RGB, GL.GL_UNSIGNED_BYTE,
                    np.ascontiguousarray(rows))
    GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 4)
    GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
    return tex
