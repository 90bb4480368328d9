"""Memory budget and shape checks, applied from the header before any voxel is decoded."""

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
