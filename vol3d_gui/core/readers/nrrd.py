"""NRRD (.nrrd, .nhdr) via pynrrd, honouring `space`, `space directions` and `space origin`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vol3d_gui.core.errors import VolumeReadError
from vol3d_gui.core.readers.budget import check_budget, check_shape
from vol3d_gui.core.readers.nifti import reorient_to_ras
from vol3d_gui.core.volume import Volume

# sign flips that take each NRRD space to RAS+
_SPACE_TO_RAS = {
    "right-anterior-superior": (1, 1, 1), "ras": (1, 1, 1),
    "left-anterior-superior": (-1, 1, 1), "las": (-1, 1, 1),
    "left-posterior-superior": (-1, -1, 1), "lps": (-1, -1, 1),
    "scanner-xyz": (1, 1, 1), "3d-right-handed": (1, 1, 1),
}


def _affine(path: Path, header: dict, ndim: int) -> tuple[np.ndarray, list[str]]:
    warnings: list[str] = []
    space = str(header.get("space", "")).lower()
    dirs = header.get("space directions")
    aff = np.eye(4)
    if dirs is not None:
        dirs = np.asarray(dirs, dtype=np.float64)
        # pynrrd gives NaN rows for non-spatial axes ("none")
        spatial = [i for i in range(dirs.shape[0]) if np.all(np.isfinite(dirs[i]))]
        if len(spatial) != 3 or dirs.shape[1] != 3:
            raise VolumeReadError(path, f"expected 3 spatial axes in 'space directions', got {len(spatial)}")
        aff[:3, :3] = dirs[spatial].T
        origin = header.get("space origin")
        if origin is not None:
            aff[:3, 3] = np.asarray(origin, dtype=np.float64)
        if space and space not in _SPACE_TO_RAS:
            raise VolumeReadError(path, f"unsupported NRRD space {space!r}")
        flips = _SPACE_TO_RAS.get(space, (1, 1, 1))
        if not space:
            warnings.append("NRRD has no 'space' field: axes taken as RAS")
        aff = np.diag([*flips, 1.0]) @ aff
    else:
        spacings = header.get("spacings")
        if spacings is not None:
            sp = np.asarray(spacings, dtype=np.float64)[:3]
            sp = np.where(np.isfinite(sp) & (sp != 0), np.abs(sp), 1.0)
            aff[:3, :3] = np.diag(sp)
        warnings.append("NRRD has no orientation: axes taken as RAS")
    return aff, warnings


def load_nrrd(path: Path) -> Volume:
    import nrrd

    path = Path(path)
    try:
        header = nrrd.read_header(str(path))
    except Exception as exc:
        raise VolumeReadError(path, f"invalid NRRD header ({exc})") from exc
    try:
        sizes = [int(s) for s in header["sizes"]]
        dtype = np.dtype(nrrd.reader._determine_datatype(header))
    except Exception as exc:
        raise VolumeReadError(path, f"invalid NRRD header ({exc})") from exc
    if len(sizes) > 4:
        raise VolumeReadError(path, f"{len(sizes)}-D data {tuple(sizes)} is not supported (3-D or 4-D only)")
    check_shape(path, sizes)
    check_budget(path, sizes, dtype if dtype.kind in "iu" else np.float32)
    affine, warnings = _affine(path, header, len(sizes))
    try:
        data, header = nrrd.read(str(path), index_order="F")
    except Exception as exc:
        raise VolumeReadError(path, f"corrupt or truncated data ({type(exc).__name__}: {exc})") from exc
    if data.ndim == 4:
        # keep the three spatial axes; a non-spatial axis (e.g. time) gives its first volume
        dirs = header.get("space directions")
        nonspatial = [i for i in range(4) if dirs is None or not np.all(np.isfinite(np.asarray(dirs[i], float)))]
        axis = nonspatial[0] if nonspatial else 3
        if data.shape[axis] > 1:
            warnings.append(f"4-D data with {data.shape[axis]} volumes: showing the first")
        data = np.take(data, 0, axis=axis)
    if data.ndim != 3:
        raise VolumeReadError(path, f"not a 3-D volume: shape {data.shape}")
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    orig_affine = affine
    data, affine, orig = reorient_to_ras(data, orig_affine)
    meta = {"format": "NRRD", "original_orientation": orig, "warnings": warnings}
    name = path.name.rsplit(".", 1)[0]
    return Volume(data, affine, name=name, source=str(path), meta=meta)
