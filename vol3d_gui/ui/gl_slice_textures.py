"""GL state of the slice views: the plane on screen as a texture of raw values, the planes of
the overlays it cuts, the 3-D textures of oblique overlays, and colour tables.

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

An overlay on a grid aligned with the volume's (a mask, a Grad-CAM map) is cut the same way:
the plane of it the slice crosses (core.resample.cut_axis_plane: interpolated between two of
its planes for a map), a few kB, sampled in-plane by the plane's own shader (gl_slice_shaders).
An oblique one keeps a 3-D texture and a pass of its own. A binary mask is kept as its
bounding box only.
"""

from __future__ import annotations

import ctypes

import numpy as np
from OpenGL import GL

from vol3d_gui.core.resample import (
    PLANE_AXES,
    aligned_axes,
    base_slice,
    cut_axis_plane,
    plane_voxel_to_overlay,
)
from vol3d_gui.core.volume import Volume
from vol3d_gui.ui import gl_slice_shaders
from vol3d_gui.ui.gl_calls import gl
from vol3d_gui.ui.gl_slice_shaders import MAX_FUSED, Program
from vol3d_gui.ui.plane_rows import Gather, as_rows, upload_form
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


def _upload_2d(tex: int | None, plane: np.ndarray, formats, filt, same_shape: bool,
               row_length: int = 0) -> int:
    """``plane`` (rows x columns; rows ``row_length`` elements apart, 0: packed) into 2-D
    texture ``tex`` (made when None)."""
    ifmt, fmt, typ = formats
    if tex is None:
        tex = int(GL.glGenTextures(1))
        GL.glBindTexture(GL.GL_TEXTURE_2D, tex)
        _texture_params(GL.GL_TEXTURE_2D, filt)
    gl.glBindTexture(GL.GL_TEXTURE_2D, tex)
    gl.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
    gl.glPixelStorei(GL.GL_UNPACK_ROW_LENGTH, row_length)
    rows, cols = plane.shape
    # a pointer, not the array: PyOpenGL would copy a view whose rows are apart
    pixels = plane.ctypes.data
    try:
        if same_shape:  # every new slice: straight to the C call (gl_calls)
            gl.glTexSubImage2D(GL.GL_TEXTURE_2D, 0, 0, 0, cols, rows, fmt, typ, pixels)
        else:
            GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, ifmt, cols, rows, 0, fmt, typ, ctypes.c_void_p(pixels))
    finally:
        gl.glPixelStorei(GL.GL_UNPACK_ROW_LENGTH, 0)
        gl.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 4)
        gl.glBindTexture(GL.GL_TEXTURE_2D, 0)
    return tex


def _plane_rows(volume: Volume, axis: int, index: int, dtype) -> tuple[np.ndarray, bool, int]:
    plane = base_slice(volume, axis, index)
    if plane.dtype != dtype:
        plane = plane.astype(dtype)
    return upload_form(plane)


class PlaneTexture:
    """One view's plane of raw values (a 2-D texture of the volume's dtype), replaced when the
    view shows another slice or volume. Textures are made in the view's own context."""

    def __init__(self):
        self.id: int | None = None
        self.key = None  # (volume id, axis, index) of the plane uploaded
        self.shape = (0, 0)  # (na, nb): the plane's in-plane sizes
        self.transposed = False  # texture rows run along b (else along a)
        self._texture_shape = (0, 0)
        self.dtype = None
        self.uploads = 0
        self._pending = None  # (key, a Gather) started by prefetch

    def prefetch(self, volume: Volume, axis: int, index: int) -> None:
        """Start cutting a plane this view is about to show, when cutting it means a copy."""
        key = (id(volume), axis, index)
        if key == self.key or (self._pending is not None and self._pending[0] == key):
            return
        plane = base_slice(volume, axis, index)
        dtype = _upload_dtype(volume.dtype)
        if plane.dtype == dtype and as_rows(plane) is not None:
            self._pending = None  # uploaded as it lies: nothing to cut ahead
            return
        self._pending = (key, Gather(plane, dtype))

    def gathering(self) -> bool:
        """Whether a plane prefetch started is still being cut."""
        return self._pending is not None and not self._pending[1].done()

    def show(self, volume: Volume, axis: int, index: int) -> None:
        key = (id(volume), axis, index)
        if key == self.key:
            return
        dtype = _upload_dtype(volume.dtype)
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] == key:
            rows, transposed, row_length = pending[1].result()
        else:
            rows, transposed, row_length = _plane_rows(volume, axis, index, dtype)
        same = rows.shape == self._texture_shape and dtype == self.dtype
        self.id = _upload_2d(self.id, rows, _FORMATS[dtype][:3], GL.GL_NEAREST, same, row_length)
        self.key, self.dtype = key, dtype
        self.shape = rows.shape[::-1] if transposed else rows.shape
        self.transposed, self._texture_shape = transposed, rows.shape
        self.uploads += 1

    def release(self) -> None:
        if self.id is not None:
            GL.glDeleteTextures([self.id])
        self.id, self.key, self.shape, self._texture_shape = None, None, (0, 0), (0, 0)
        self._pending = None


class PreparedOverlay:
    """What the views share of one overlay: the grid drawn (a binary mask's bounding box), its
    values as the shaders read them (a map quantised to 8 bits for filtering; anything else
    as it is), base voxel -> drawn voxel, and ``owner`` (core.resample.aligned_axes: None when
    the grids are oblique, and the overlay needs a 3-D texture and a pass of its own)."""

    def __init__(self, layer, base: Volume):
        self.layer_volume = layer.volume
        self.drawn = mask_box(layer.volume) if layer.is_binary_mask else layer.volume
        self.order = layer.order
        self.binary = layer.is_binary_mask
        self.value_range = (0.0, 1.0)
        self.values = np.asarray(self.drawn.data)
        if self.order == 1:
            self.values, self.value_range = _quantised(np.asarray(self.values, dtype=np.float32))
        self.rebase(base)
        self._texture: _Texture3D | None = None

    def rebase(self, base: Volume) -> None:
        self.base = base
        self.matrix = plane_voxel_to_overlay(base, self.drawn)
        self.owner = aligned_axes(self.matrix)

    @property
    def fusable(self) -> bool:
        return self.owner is not None

    def texture(self) -> _Texture3D:
        """The 3-D texture (oblique overlays only), made in the current context when first asked."""
        if self._texture is None:
            data = self.values if self.order == 1 else np.asarray(self.values, dtype=np.float32)
            self._texture = _Texture3D(data, linear=self.order == 1)
        return self._texture

    def release(self) -> None:
        if self._texture is not None:
            self._texture.delete()
            self._texture = None


class OverlayPlane:
    """One view's plane of one aligned overlay: the 2-D cut of it its slice crosses, and the
    base voxel (a, b) -> texel mapping the shader needs."""

    def __init__(self):
        self.id: int | None = None
        self.key = None
        self.shape = (0, 0)
        self.dtype = None
        self.uploads = 0
        self.sampling = None  # (u_os, u_ot, u_on) of the plane uploaded, None: not on this slice

    def show(self, ov: PreparedOverlay, axis: int, index: int):
        """Upload the plane for base slice ``index`` along ``axis``; returns the sampling
        uniforms (u_os, u_ot, u_on), or None when the slice misses the overlay."""
        key = (id(ov), id(ov.base), axis, index)
        if key == self.key:
            return self.sampling
        self.key = key
        plane = cut_axis_plane(ov.values, ov.matrix, ov.owner, axis, index, ov.order)
        if plane is None:
            self.sampling = None
            return None
        if ov.order == 1:  # 8-bit fractions, filtered by the texture unit
            plane = np.clip(np.rint(plane), 0, 255).astype(np.uint8)
            formats, filt = (GL.GL_R8, GL.GL_RED, GL.GL_UNSIGNED_BYTE), GL.GL_LINEAR
        else:
            plane = np.asarray(plane, dtype=np.float32)
            formats, filt = _FORMATS[np.dtype(np.float32)][:3], GL.GL_NEAREST
        plane = np.ascontiguousarray(plane)
        if self.id is not None and (ov.order == 1) != (self.dtype == np.uint8):
            self.release()  # the filter is a texture parameter: a new texture for the other kind
        same = plane.shape == self.shape and plane.dtype == self.dtype
        self.id = _upload_2d(self.id, plane, formats, filt, same)
        self.shape, self.dtype = plane.shape, plane.dtype
        self.uploads += 1
        m, owner = ov.matrix, ov.owner
        a, b = PLANE_AXES[axis]
        lo, hi = sorted(r for r in range(3) if r != owner[axis])  # the plane's rows, columns

        def along(r):  # (a, b, 1) -> overlay coordinate along overlay axis r
            if owner[a] == r:
                return float(m[r, a]), 0.0, float(m[r, 3])
            return 0.0, float(m[r, b]), float(m[r, 3])

        self.sampling = (along(hi), along(lo), (float(plane.shape[1]), float(plane.shape[0])))
        return self.sampling

    def release(self) -> None:
        if self.id is not None:
            GL.glDeleteTextures([self.id])
        self.id, self.key, self.shape, self.dtype, self.sampling = None, None, (0, 0), None, None


class SliceTextures:
    """What the three slice views of one viewer model share (one GL share group: made in
    whichever view's context paints first): the prepared overlays, colour tables, programs."""

    def __init__(self):
        self.volume: Volume | None = None  # the base volume the overlay matrices are for
        self.overlays: dict[int, PreparedOverlay] = {}  # id(layer volume) -> prepared
        self.luts: dict[str, int] = {}
        self._programs: dict = {}

    def _program(self, key, build) -> Program:
        prog = self._programs.get(key)
        if prog is None:
            prog = self._programs[key] = build()
        return prog

    def program(self, dtype, grey: bool = True, fused=(), transposed: bool = False) -> Program:
        """The plane's program for a volume of ``dtype`` with ``fused`` overlays ((order,
        binary) each, bottom first), compiled once per combination."""
        key = (sampler_kind(dtype), grey, tuple(fused), transposed)
        return self._program(key, lambda: gl_slice_shaders.build_slice_program(*key))

    def overlay_program(self, layer) -> Program:
        """An oblique overlay's pass (one per kind: nearest or trilinear, mask or map, layout)."""
        ov = self.overlays[id(layer.volume)]
        key = ("overlay", ov.order, ov.binary, ov.texture().x_fast)
        return self._program(key, lambda: gl_slice_shaders.build_overlay_program(*key[1:]))

    def solid_program(self) -> Program:
        return self._program("solid", gl_slice_shaders.build_solid_program)

    def ensure(self, volume: Volume, overlays) -> None:
        """Bring the prepared overlays up to date with what the model shows."""
        wanted = {id(layer.volume): layer for layer in overlays}
        for key in [k for k in self.overlays if k not in wanted]:
            self.overlays.pop(key).release()
        for key, layer in wanted.items():
            ov = self.overlays.get(key)
            if ov is None or ov.order != layer.order or ov.binary != layer.is_binary_mask:
                if ov is not None:
                    ov.release()
                self.overlays[key] = PreparedOverlay(layer, volume)
            elif ov.base is not volume:
                ov.rebase(volume)
        self.volume = volume

    def split(self, layers) -> tuple[list, list]:
        """(fused, own pass): the bottom overlays on aligned grids, up to MAX_FUSED, are drawn
        in the plane's pass; the rest (from the first oblique one up) each in a pass of its
        own, in order, over it."""
        n = 0
        while n < min(len(layers), MAX_FUSED) and self.overlays[id(layers[n].volume)].fusable:
            n += 1
        return list(layers[:n]), list(layers[n:])

    def prepared(self, layer) -> PreparedOverlay:
        return self.overlays[id(layer.volume)]

    def lut_texture(self, name: str) -> int:
        tex = self.luts.get(name)
        if tex is None:
            tex = self.luts[name] = _lut_texture(lut(name)[None])
        return tex


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
