"""A Volume is a 3-D array plus where it sits in the patient.

Axes are in closest-canonical RAS+ order (axis 0 left -> right, axis 1 posterior ->
anterior, axis 2 inferior -> superior) and ``affine`` maps voxel indices (i, j, k) to
RAS+ millimetres. Everything drawn over an image (masks, saliency maps, a second scan)
is a Volume too, placed in the same world space by its own affine.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Keys that may identify a patient: never copied into meta by the readers, and never
# shown by Volume.__repr__ (which ends up in logs).
PHI_KEYS = frozenset(
    {"PatientName", "PatientID", "PatientBirthDate", "PatientAddress", "OtherPatientIDs",
     "ReferringPhysicianName", "InstitutionName", "AccessionNumber"}
)


@dataclass(eq=False)
class Volume:
    data: np.ndarray
    affine: np.ndarray
    name: str = ""
    source: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        data = np.asarray(self.data)
        if data.ndim != 3:
            raise ValueError(f"a Volume is 3-D, got shape {data.shape}")
        if min(data.shape) < 1:
            raise ValueError(f"a Volume needs at least one voxel per axis, got {data.shape}")
        affine = np.asarray(self.affine, dtype=np.float64)
        if affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {affine.shape}")
        if not np.all(np.isfinite(affine)):
            raise ValueError("affine has NaN or Inf entries")
        if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
            raise ValueError("affine is singular (a zero-length or degenerate axis)")
        self.data = data
        self.affine = affine
        self.meta = dict(self.meta)

    # --- geometry -------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def spacing(self) -> np.ndarray:
        """Millimetres per voxel along each array axis (column norms of the affine; read-only,
        cached per affine: every paint of every slice view asks for it)."""
        return spacing_of(self.affine)

    @property
    def inverse_affine(self) -> np.ndarray:
        """World -> voxel (read-only; cached per affine: every cursor move asks for it ~10 times)."""
        return inverse_of(self.affine)

    def voxel_to_world(self, ijk) -> np.ndarray:
        """Map voxel indices (..., 3) to RAS+ mm (..., 3). Fractional indices are allowed."""
        ijk = np.asarray(ijk, dtype=np.float64)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def world_to_voxel(self, xyz) -> np.ndarray:
        """Map RAS+ mm (..., 3) to fractional voxel indices (..., 3)."""
        xyz = np.asarray(xyz, dtype=np.float64)
        inv = self.inverse_affine
        return xyz @ inv[:3, :3].T + inv[:3, 3]

    def contains_voxel(self, ijk) -> bool:
        return all(0 <= i < n for i, n in zip(ijk, self.data.shape, strict=True))

    def nearest_voxel(self, xyz) -> tuple[int, int, int] | None:
        """The voxel whose centre is nearest to a world point, or None outside the volume."""
        ijk = self.world_to_voxel(xyz)
        if not np.all(np.isfinite(ijk)):
            return None
        i, j, k = (round(float(v)) for v in ijk)  # half to even, as np.rint
        if not self.contains_voxel((i, j, k)):
            return None
        return i, j, k

    def value_at(self, xyz):
        """The voxel value at a world point (nearest neighbour), or None outside."""
        ijk = self.nearest_voxel(xyz)
        return None if ijk is None else self.data[ijk]

    @property
    def corners_world(self) -> np.ndarray:
        """World coordinates of the 8 outer voxel centres."""
        n = np.asarray(self.shape) - 1
        corners = np.array([[i, j, k] for i in (0, n[0]) for j in (0, n[1]) for k in (0, n[2])])
        return self.voxel_to_world(corners)

    @property
    def bounds_world(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned world bounding box (min, max) of the voxel centres."""
        c = self.corners_world
        return c.min(axis=0), c.max(axis=0)

    @property
    def center_world(self) -> np.ndarray:
        return self.voxel_to_world((np.asarray(self.shape) - 1) / 2.0)

    # --- identity -------------------------------------------------------------------
    def content_hash(self) -> str:
        """sha256 of shape, dtype, affine and voxels: identifies the image, not the file name.

        Computed once per Volume (a 512x512x300 scan takes ~0.3 s): a Volume's voxels are not
        changed in place; ``with_data`` makes a new one."""
        cached = self.__dict__.get("_content_hash")
        if cached is not None:
            return cached
        h = hashlib.sha256()
        h.update(repr((self.shape, str(self.dtype))).encode())
        h.update(np.ascontiguousarray(self.affine).tobytes())
        data = self.data
        if data.flags.c_contiguous:
            h.update(memoryview(data.reshape(-1).view(np.uint8)))
        else:  # slab by slab: no full-size copy of a reoriented scan
            for k in range(data.shape[0]):
                h.update(np.ascontiguousarray(data[k]).tobytes())
        self.__dict__["_content_hash"] = h.hexdigest()
        return self.__dict__["_content_hash"]

    def with_data(self, data: np.ndarray, **changes) -> Volume:
        """A new Volume on the same grid with other voxels (e.g. a mask or a filtered copy)."""
        if np.shape(data) != self.shape:
            raise ValueError(f"shape {np.shape(data)} does not match {self.shape}")
        kw = {"name": self.name, "source": self.source, "meta": dict(self.meta)}
        kw.update(changes)
        return Volume(data, self.affine.copy(), **kw)

    def __repr__(self) -> str:
        sp = ", ".join(f"{s:.3g}" for s in self.spacing)
        return f"Volume({self.name!r}, shape={self.shape}, dtype={self.dtype}, spacing=({sp}) mm)"


def axis_codes(affine: np.ndarray) -> tuple[str, str, str]:
    """Orientation letters of the array axes (e.g. ('R', 'A', 'S')), via nibabel."""
    import nibabel as nib

    return tuple(nib.aff2axcodes(affine))  # type: ignore[return-value]


def isotropic_affine(spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    """A RAS+ affine with the given voxel size whose voxel (0, 0, 0) sits at ``origin``."""
    aff = np.diag([*map(float, spacing), 1.0])
    aff[:3, 3] = origin
    return aff


def centered_affine(shape, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """A RAS+ affine that puts the volume's centre at world (0, 0, 0)."""
    spacing = np.asarray(spacing, dtype=np.float64)
    origin = -(np.asarray(shape) - 1) / 2.0 * spacing
    return isotropic_affine(spacing, origin)


@functools.lru_cache(maxsize=64)
def _inverse(affine_bytes: bytes) -> np.ndarray:
    # np.linalg.inv costs ~25 us a call (its error-state context)
    inv = np.linalg.inv(np.frombuffer(affine_bytes, np.float64).reshape(4, 4))
    inv.setflags(write=False)
    return inv


@functools.lru_cache(maxsize=64)
def _spacing(affine_bytes: bytes) -> np.ndarray:
    m = np.frombuffer(affine_bytes, np.float64).reshape(4, 4)
    spacing = np.sqrt((m[:3, :3] ** 2).sum(axis=0))
    spacing.setflags(write=False)
    return spacing


def spacing_of(affine: np.ndarray) -> np.ndarray:
    """Column norms of a 4x4 affine's linear part, cached by value (read-only)."""
    return _spacing(np.asarray(affine, np.float64).tobytes())


def inverse_of(affine: np.ndarray) -> np.ndarray:
    """The inverse of a 4x4 affine, cached by value (read-only)."""
    return _inverse(np.asarray(affine, np.float64).tobytes())
