"""Memory budget and shape checks, applied from the header before any voxel is decoded, and
opening only regular files inside the folder a header names them from."""

from __future__ import annotations

import os

import numpy as np

from vol3d_gui.core.errors import VolumeReadError

_budget: int | None = None


def _available_ram() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def memory_budget() -> int:
    """Bytes one decoded volume may take: set_memory_budget(), else $VOL3D_MEMORY_BUDGET,
    else half of the RAM available now."""
    if _budget is not None:
        return _budget
    env = os.environ.get("VOL3D_MEMORY_BUDGET")
    if env:
        try:
            return int(float(env))
        except ValueError:
            pass
    return _available_ram() // 2


def set_memory_budget(nbytes: int | None) -> None:
    """Override the budget (None restores the default)."""
    global _budget
    _budget = None if nbytes is None else int(nbytes)


def check_shape(path, shape) -> tuple[int, ...]:
    """Refuse shapes that are not a 3-D image: empty axes, 1-voxel axes (a 2-D image), >4-D."""
    shape = tuple(int(s) for s in shape)
    if len(shape) < 3:
        raise VolumeReadError(path, f"not a 3-D volume: shape {shape}")
    if len(shape) > 4 and any(s != 1 for s in shape[4:]):
        raise VolumeReadError(path, f"{len(shape)}-D data {shape} is not supported (3-D or 4-D only)")
    if any(s <= 0 for s in shape):
        raise VolumeReadError(path, f"an axis has no voxels: shape {shape}")
    if any(s == 1 for s in shape[:3]):
        raise VolumeReadError(path, f"a spatial axis has a single voxel: shape {shape[:3]} is a 2-D image, not a volume")
    return shape


def check_budget(path, shape, dtype) -> None:
    """Raise before allocating when the decoded 3-D volume would exceed the memory budget."""
    nbytes = int(np.prod([int(s) for s in shape[:3]], dtype=np.float64)) * np.dtype(dtype).itemsize
    budget = memory_budget()
    if nbytes > budget:
        raise VolumeReadError(
            path, f"decoded volume needs {nbytes / 2**20:.0f} MiB, more than the memory budget "
                  f"of {budget / 2**20:.0f} MiB (set VOL3D_MEMORY_BUDGET to change it)")


def check_nbytes(path, nbytes: int, what: str = "decoded data") -> None:
    """Raise when ``nbytes`` (everything a reader will allocate: all volumes of a 4-D series,
    a whole .npz split) exceeds the memory budget."""
    budget = memory_budget()
    if int(nbytes) > budget:
        raise VolumeReadError(
            path, f"{what} needs {int(nbytes) / 2**20:.0f} MiB, more than the memory budget "
                  f"of {budget / 2**20:.0f} MiB (set VOL3D_MEMORY_BUDGET to change it)")


def open_regular(path, what: str = "file"):
    """Open ``path`` for binary reading only if it is a regular file.

    A FIFO would block open() and read() forever, a device reads without end: the file is
    opened non-blocking and checked with fstat on the open descriptor (no race between a
    check and the open), then switched back to blocking reads."""
    import stat

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise VolumeReadError(path, f"the {what} is not a regular file (a FIFO, device or folder)")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except VolumeReadError:
        raise
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in a name read from a header
        raise VolumeReadError(path, f"cannot open the {what} ({getattr(exc, 'strerror', None) or exc})") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise VolumeReadError(path, f"the {what} is not a regular file (a FIFO, device or folder)")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def resolve_inside(folder, name: str, path_for_errors, what: str = "data file"):
    """``name`` (a path written inside a file) as a regular file inside ``folder``.

    Refuses absolute paths, '..' components and links that lead out of the folder: a header
    must not make us read /etc/passwd or another study's data and show it as voxels."""
    from pathlib import Path, PurePosixPath, PureWindowsPath

    text = str(name).strip()
    if not text:
        raise VolumeReadError(path_for_errors, f"the {what} name is empty")
    for pure in (PurePosixPath(text), PureWindowsPath(text)):
        if pure.is_absolute() or pure.anchor or ".." in pure.parts:
            raise VolumeReadError(path_for_errors, f"the {what} {text!r} is outside the header's folder "
                                                   "(absolute paths and '..' are refused)")
    if "\0" in text:
        raise VolumeReadError(path_for_errors, f"the {what} name {text!r} holds a NUL byte")
    try:
        root = Path(folder).resolve()
        target = (root / text).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise VolumeReadError(path_for_errors, f"the {what} {text!r} cannot be resolved ({exc})") from exc
    if target != root and root not in target.parents:
        raise VolumeReadError(path_for_errors, f"the {what} {text!r} links outside the header's folder")
    return target
