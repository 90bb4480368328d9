"""NIfTI-1/-2 (.nii, .nii.gz) via nibabel's header and orientation tools.

The header is parsed by nibabel, but the voxels are read straight into one preallocated
buffer (``readinto``) and gzip is inflated with python-isal when it is installed: that is
what makes this faster than ``nibabel.load(...).dataobj`` on large .nii.gz files, while
orientation, scaling and affine handling stay nibabel's own.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation

from vol3d_gui.core.cooperate import checkpoint
from vol3d_gui.core.errors import VolumeReadError
from vol3d_gui.core.readers.budget import check_budget, check_shape, open_regular
from vol3d_gui.core.volume import Volume

try:  # ISA-L inflate is several times faster than zlib's
    from isal import igzip as _gzip
except ImportError:  # pragma: no cover - isal is a declared dependency
    _gzip = gzip

_HEADER_BYTES = 540  # NIfTI-2's header size; NIfTI-1's is 348


_SKIP_CHUNK = 1 << 20


_READ_CHUNK = 4 << 20


@contextlib.contextmanager
def _open(path: Path):
    """(stream, size of the voxel file or None when it is compressed); a FIFO or a device
    is refused before anything is read from it."""
    with open_regular(path, "NIfTI file") as raw:
        if path.name.lower().endswith(".gz"):
            with _gzip.open(raw, "rb") as fh:
                yield fh, None
        else:
            yield raw, os.fstat(raw.fileno()).st_size


def _skip(fh, n: int, path: Path) -> None:
    """Read past ``n`` bytes through a small buffer: a vox_offset of 1 GiB costs reading, not
    1 GiB of memory."""
    scratch = bytearray(min(n, _SKIP_CHUNK))
    while n > 0:
        got = fh.readinto(memoryview(scratch)[: min(n, len(scratch))])
        if not got:
            raise VolumeReadError(path, "file is truncated: it ends before the voxel data (vox_offset)")
        n -= got


def _parse_header(path: Path, head: bytes):
    if len(head) < 348:
        raise VolumeReadError(path, "file too short for a NIfTI header")
    for klass, size in ((nib.Nifti1Header, 348), (nib.Nifti2Header, 540)):
        for order in ("<", ">"):
            if int(np.frombuffer(head[:4], dtype=f"{order}i4")[0]) == size:
                if len(head) < size:
                    raise VolumeReadError(path, "file too short for a NIfTI-2 header")
                try:
                    hdr = klass.from_fileobj(io.BytesIO(head[:size]), check=True)
                except Exception as exc:
                    raise VolumeReadError(path, f"invalid NIfTI header ({exc})") from exc
                return hdr
    raise VolumeReadError(path, "not a NIfTI file (header size field is neither 348 nor 540)")


def check_affine(path, affine: np.ndarray) -> None:
    """Refuse an affine that places no voxel sensibly: not finite, singular, or a voxel size
    outside 1e-6..1e6 mm (a spacing of 1e-180 leaves an axis with no orientation)."""
    affine = np.asarray(affine, dtype=np.float64)
    with np.errstate(all="ignore"):
        sizes = np.sqrt(np.sum(affine[:3, :3] ** 2, axis=0))
        det = np.linalg.det(affine[:3, :3]) if np.all(np.isfinite(affine)) else np.nan
    # singular or nearly so: axes (almost) parallel, judged against the voxel size, so that
    # reorienting (flips and swaps, rounding) cannot push it over Volume's own check
    if (not np.all(np.isfinite(affine)) or not np.isfinite(det) or abs(det) < 1e-12
            or abs(det) < 1e-9 * float(np.prod(sizes))):
        raise VolumeReadError(path, "the header's affine is singular or not finite")
    if np.any(sizes < 1e-6) or np.any(sizes > 1e6):
        raise VolumeReadError(path, f"voxel sizes {sizes.tolist()} mm are not plausible")


def reorient_to_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """Closest-canonical RAS+ order by flips and axis swaps only (no resampling), via nibabel.

    Returns the (possibly view) array, its new affine, and the original axis codes."""
    orig = "".join(nib.aff2axcodes(affine))
    ornt = io_orientation(affine)
    if np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]):
        return data, affine, orig
    new = apply_orientation(data, ornt)
    new_affine = affine @ inv_ornt_aff(ornt, data.shape)
    return new, new_affine, orig


def load_nifti(path: Path) -> Volume:
    path = Path(path)
    try:
        with _open(path) as (fh, file_size):
            head = fh.read(_HEADER_BYTES)
            hdr = _parse_header(path, head)
            shape = check_shape(path, hdr.get_data_shape())
            raw_dtype = hdr.get_data_dtype()
            if raw_dtype.kind not in "biuf":
                raise VolumeReadError(path, f"unsupported NIfTI data type {raw_dtype}")
            slope, inter = hdr.get_slope_inter()
            scaled = not (slope in (None, 1.0) and inter in (None, 0.0)) and np.isfinite(slope or 0)
            out_dtype = np.dtype(np.float32) if scaled else raw_dtype.newbyteorder("=")
            check_budget(path, shape, out_dtype)

            offset = int(hdr.get_data_offset())
            n_first = int(np.prod(shape[:3]))  # a 4-D series: only its first volume is read
            nbytes = n_first * raw_dtype.itemsize
            if file_size is not None and file_size < offset + nbytes:  # refused before allocating
                raise VolumeReadError(path, f"file is truncated: {max(file_size - offset, 0)} of "
                                            f"{nbytes} voxel bytes present")
            buf = np.empty(nbytes, dtype=np.uint8)
            have = head[offset:offset + nbytes] if offset < len(head) else b""
            buf[: len(have)] = np.frombuffer(have, np.uint8)
            _skip(fh, max(offset - len(head), 0), path)
            got = len(have)
            mv = memoryview(buf)
            while got < buf.size:
                checkpoint()
                # bounded reads: a decompressor holds the GIL for one call (isal inflating 150 MB
                # in one go held it 134 ms, stalling the window); 4 MiB at a time, about 10 ms
                n = fh.readinto(mv[got:got + _READ_CHUNK])
                if not n:
                    raise VolumeReadError(
                        path, f"file is truncated: {got} of {nbytes} voxel bytes present")
                got += n
    except VolumeReadError:
        raise
    except (EOFError, OSError, gzip.BadGzipFile, ValueError) as exc:
        raise VolumeReadError(path, f"corrupt or truncated file ({type(exc).__name__}: {exc})") from exc

    data = buf.view(raw_dtype).reshape(shape[:3], order="F")
    if not raw_dtype.isnative:
        data = data.astype(raw_dtype.newbyteorder("="))
    if scaled:
        data = data.astype(np.float32) * np.float32(slope if slope is not None else 1.0)
        if inter:
            data += np.float32(inter)

    meta: dict = {"format": "NIfTI-2" if isinstance(hdr, nib.Nifti2Header) else "NIfTI-1",
                  "warnings": []}
    if len(shape) == 4 and shape[3] > 1:
        meta["warnings"].append(f"4-D series of {shape[3]} volumes: showing the first")
    descrip = hdr.get("descrip")
    if descrip is not None:
        text = np.asarray(descrip).tobytes().rstrip(b"\0").decode("latin-1", "replace").strip()
        if text:
            meta["description"] = text

    affine = hdr.get_best_affine()
    check_affine(path, affine)
    data, affine, orig = reorient_to_ras(data, affine)
    meta["original_orientation"] = orig
    name = path.name[: -len(".nii.gz")] if path.name.lower().endswith(".nii.gz") else path.stem
    return Volume(data, affine, name=name, source=str(path), meta=meta)


def save_nifti(volume: Volume, path) -> Path:
    """Write a Volume as NIfTI-1 with its affine in sform and qform, atomically."""
    path = Path(path)
    img = nib.Nifti1Image(np.asarray(volume.data), volume.affine)
    img.set_sform(volume.affine, code="scanner")
    img.set_qform(volume.affine, code="scanner")
    if volume.name:
        img.header["descrip"] = volume.name[:79].encode("ascii", "replace")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{''.join(path.suffixes[-2:])}")
    try:
        nib.save(img, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
