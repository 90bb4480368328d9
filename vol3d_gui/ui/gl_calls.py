"""The GL calls a slice view makes on every paint, as plain ctypes functions.

PyOpenGL wraps each call in Python: argument conversion, then a ``glGetError`` after every
call. Measured under llvmpipe (one process, 20000 calls each): ``glActiveTexture`` 1.2 us
through PyOpenGL against 0.8 us called here, ``glVertexAttribPointer`` from a numpy array
8-11 us against 2.3 us (+1 us to build the float array), and a crosshair move makes about
two hundred such calls across its three views. Here the
same entry points (the ones PyOpenGL itself resolves: the GL library's symbol, else the
platform's GetProcAddress) are called with fixed C signatures, and the errors of a whole
paint are read once at its end (``raise_errors``), which the canvas reports as it reported
a failed call before. Set-up (shaders, new textures) still goes through PyOpenGL.
"""

from __future__ import annotations

import array
import ctypes
from ctypes import c_float, c_int, c_ubyte, c_uint, c_void_p

from OpenGL import platform as _platform

_enum = c_uint
_SIGNATURES = {
    "glActiveTexture": (None, (_enum,)),
    "glBindBuffer": (None, (_enum, c_uint)),
    "glBindFramebuffer": (None, (_enum, c_uint)),
    "glBindTexture": (None, (_enum, c_uint)),
    "glBlendFunc": (None, (_enum, _enum)),
    "glClear": (None, (c_uint,)),
    "glDisable": (None, (_enum,)),
    "glDisableVertexAttribArray": (None, (c_uint,)),
    "glDrawArrays": (None, (_enum, c_int, c_int)),
    "glEnable": (None, (_enum,)),
    "glEnableVertexAttribArray": (None, (c_uint,)),
    "glFlush": (None, ()),
    "glGetError": (_enum, ()),
    "glPixelStorei": (None, (_enum, c_int)),
    "glReadPixels": (None, (c_int, c_int, c_int, c_int, _enum, _enum, c_void_p)),
    "glScissor": (None, (c_int, c_int, c_int, c_int)),
    "glTexSubImage2D": (None, (_enum, c_int, c_int, c_int, c_int, c_int, _enum, _enum, c_void_p)),
    "glUniform1f": (None, (c_int, c_float)),
    "glUniform1i": (None, (c_int, c_int)),
    "glUniform2f": (None, (c_int, c_float, c_float)),
    "glUniform2i": (None, (c_int, c_int, c_int)),
    "glUniform3f": (None, (c_int, c_float, c_float, c_float)),
    "glUniform4f": (None, (c_int, c_float, c_float, c_float, c_float)),
    "glUseProgram": (None, (c_uint,)),
    "glVertexAttribPointer": (None, (c_uint, c_int, _enum, c_ubyte, c_int, c_void_p)),
    "glViewport": (None, (c_int, c_int, c_int, c_int)),
}


class GLError(RuntimeError):
    """A GL call of a paint failed (the codes glGetError returned)."""


def _address(name: str) -> int:
    plat = _platform.PLATFORM
    try:
        return ctypes.cast(getattr(plat.GL, name), c_void_p).value or 0
    except AttributeError:  # not exported by the library: the platform resolves it
        return int(plat.getExtensionProcedure(name.encode()) or 0)


class _Calls:
    """``gl.glUniform1f(...)`` and so on: each resolved on first use."""

    def __getattr__(self, name: str):
        if name not in _SIGNATURES:
            raise AttributeError(name)
        address = _address(name)
        if not address:
            raise GLError(f"{name} is not available from this GL library")
        restype, argtypes = _SIGNATURES[name]
        func = _platform.PLATFORM.functionTypeFor(_platform.PLATFORM.GL)(restype, *argtypes)(address)
        setattr(self, name, func)
        return func


gl = _Calls()


def raise_errors(what: str) -> None:
    """Raise GLError when a GL call since the last check failed (the current context's
    error flags, all of them: GL keeps one per kind until it is read)."""
    codes = []
    for _ in range(8):
        code = gl.glGetError()
        if not code:
            break
        codes.append(code)
    if codes:
        raise GLError(f"{what}: GL error {', '.join(f'0x{c:04x}' for c in codes)}")


def floats(values) -> array.array:
    """float32 (vertices for glVertexAttribPointer) from a flat sequence; its address is
    ``buffer_info()[0]`` (a ctypes array is 4x slower to build)."""
    return array.array("f", values)


def pixel_buffer(n: int) -> ctypes.Array:
    return (c_ubyte * n)()
