"""NRRD (.nrrd, .nhdr): pynrrd parses the header, the data is decoded here.

pynrrd's ``read_data`` inflates the whole compressed stream before it compares its size with
the header, reads a raw file to its end, and opens whatever path ``data file`` names. Here the
output buffer is sized from the header (checked against the memory budget first) and the
decoders stop when it is full; a detached data file must be a regular file inside the
header's folder. Orientation honours ``space``, ``space directions`` and ``space origin``.
"""

from __future__ import annotations

import bz2
import os
from pathlib import Path

import numpy as np
from isal import igzip_lib

from vol3d_gui.core.cooperate import checkpoint
from vol3d_gui.core.errors import VolumeReadError
from vol3d_gui.core.readers.budget import (
    check_budget,
    check_nbytes,
    check_shape,
    open_regular,
    resolve_inside,
)
from vol3d_gui.core.readers.nifti import check_affine, reorient_to_ras
from vol3d_gui.core.volume import Volume

# sign flips that take each NRRD space to RAS+
_SPACE_TO_RAS = {
    "right-anterior-superior": (1, 1, 1), "ras": (1, 1, 1),
    "left-anterior-superior": (-1, 1, 1), "las": (-1, 1, 1),
    "left-posterior-superior": (-1, -1, 1), "lps": (-1, -1, 1),
    "scanner-xyz": (1, 1, 1), "3d-right-handed": (1, 1, 1),
}
_MAX_HEADER_LINE = 1 << 16
_MAX_HEADER_LINES = 10_000
_CHUNK = 1 << 20
_TEXT_ENCODINGS = ("ascii", "text", "txt")
_COMPRESSED = ("gzip", "gz", "bzip2", "bz2")


def _affine(path: Path, header: dict, ndim: int) -> tuple[np.ndarray, list[str]]:
    warnings: list[str] = []
    space = str(header.get("space", "")).lower()
    dirs = header.get("space directions")
    aff = np.eye(4)
    if dirs is not None:
        dirs = np.asarray(dirs, dtype=np.float64)
        if dirs.ndim != 2 or dirs.shape[0] != ndim or dirs.shape[1] != 3:
            raise VolumeReadError(path, f"'space directions' must give one 3-vector (or 'none') per axis "
                                        f"of the {ndim}-D data, got shape {dirs.shape}")
        # pynrrd gives NaN rows for non-spatial axes ("none")
        spatial = [i for i in range(dirs.shape[0]) if np.all(np.isfinite(dirs[i]))]
        if len(spatial) != 3:
            raise VolumeReadError(path, f"expected 3 spatial axes in 'space directions', got {len(spatial)}")
        aff[:3, :3] = dirs[spatial].T
        origin = header.get("space origin")
        if origin is not None:
            origin = np.asarray(origin, dtype=np.float64).reshape(-1)
            if origin.shape != (3,) or not np.all(np.isfinite(origin)):
                raise VolumeReadError(path, f"'space origin' must be 3 finite numbers, got {origin.tolist()}")
            aff[:3, 3] = origin
        with np.errstate(all="ignore"):
            det = np.linalg.det(aff[:3, :3])
        if not np.isfinite(det) or abs(det) < 1e-12:
            raise VolumeReadError(path, "'space directions' are singular or not finite")
        if space and space not in _SPACE_TO_RAS:
            raise VolumeReadError(path, f"unsupported NRRD space {space!r}")
        flips = _SPACE_TO_RAS.get(space, (1, 1, 1))
        if not space:
            warnings.append("NRRD has no 'space' field: axes taken as RAS")
        aff = np.diag([*flips, 1.0]) @ aff
    else:
        spacings = header.get("spacings")
        if spacings is not None:
            sp = np.asarray(spacings, dtype=np.float64).reshape(-1)[:3]
            if sp.size == 3:
                plausible = np.isfinite(sp) & (np.abs(sp) >= 1e-6) & (np.abs(sp) <= 1e6)
                sp = np.where(plausible, np.abs(sp), 1.0)
                aff[:3, :3] = np.diag(sp)
            else:
                warnings.append(f"NRRD 'spacings' has {sp.size} values: 1 mm taken")
        warnings.append("NRRD has no orientation: axes taken as RAS")
    return aff, warnings


def _header_lines(fh, path: Path):
    """The header's lines for pynrrd, bounded: a file without a blank line, or with one endless
    line, must not be read whole into memory as its 'header'."""
    for _ in range(_MAX_HEADER_LINES):
        line = fh.readline(_MAX_HEADER_LINE + 1)
        if not line:
            return
        if len(line) > _MAX_HEADER_LINE:
            raise VolumeReadError(path, f"invalid NRRD header (a line longer than {_MAX_HEADER_LINE} bytes)")
        yield line
        if not line.strip():
            return
    raise VolumeReadError(path, f"invalid NRRD header (more than {_MAX_HEADER_LINES} lines)")


def _read_exact(fh, out: np.ndarray, path: Path) -> None:
    mv = memoryview(out.reshape(-1).view(np.uint8))
    got = 0
    while got < len(mv):
        checkpoint()
        n = fh.readinto(mv[got:got + 4 * _CHUNK])
        if not n:
            raise VolumeReadError(path, f"data is truncated: {got} of {len(mv)} bytes present")
        got += n


def _inflated(fh, encoding: str):
    """Decompressed pieces of at most _CHUNK bytes, reading the input as they are taken."""
    d = (igzip_lib.IgzipDecompressor(flag=igzip_lib.DECOMP_GZIP) if encoding in ("gzip", "gz")
         else bz2.BZ2Decompressor())
    while not d.eof:
        checkpoint()
        data = b""
        if d.needs_input:
            data = fh.read(_CHUNK)
            if not data:
                return
        piece = d.decompress(data, _CHUNK)
        if piece:
            yield piece


def _inflate_into(fh, out: np.ndarray, skip: int, encoding: str, path: Path) -> None:
    """Decompress into ``out`` and stop there: never more output than the header declares (a
    small gzip stream can inflate a thousandfold); a stream that holds more is refused."""
    mv = memoryview(out.reshape(-1).view(np.uint8))
    got = -skip  # 'byte skip' counts decompressed bytes
    pieces = _inflated(fh, encoding)
    for piece in pieces:
        if got < 0:
            drop = min(-got, len(piece))
            got += drop
            piece = piece[drop:]
        take = min(len(piece), len(mv) - got)
        mv[got:got + take] = piece[:take]
        got += take
        if take < len(piece) or (got == len(mv) and next(pieces, b"")):
            raise VolumeReadError(path, f"the {encoding} stream holds more data than the header's sizes "
                                        f"declare ({len(mv)} bytes)")
        if got == len(mv):
            return
    if got < len(mv):
        raise VolumeReadError(path, f"data is truncated: {max(got, 0)} of {len(mv)} bytes present")


def _data_source(path: Path, header: dict, fh):
    """(file object positioned at the data, whether we opened it): the attached data, or a
    detached 'data file' that must be a regular file inside the header's folder."""
    name = header.get("data file", header.get("datafile"))
    if name is None:
        return fh, False
    name = str(name).strip()
    if name.upper().startswith("LIST") or len(name.split()) >= 4 and "%" in name:
        raise VolumeReadError(path, "NRRD data split over several files is not supported")
    target = resolve_inside(path.parent, name, path)
    return open_regular(target, "NRRD data file"), True


def _read_data(path: Path, header: dict, fh, dtype: np.dtype, count: int) -> np.ndarray:
    """The ``count`` samples of the data, flat, decoded into one buffer of exactly that size."""
    encoding = str(header.get("encoding", "raw")).lower()
    if encoding not in ("raw", *_TEXT_ENCODINGS, *_COMPRESSED):
        raise VolumeReadError(path, f"unsupported NRRD encoding {encoding!r}")
    line_skip = int(header.get("line skip", header.get("lineskip", 0)))
    byte_skip = int(header.get("byte skip", header.get("byteskip", 0)))
    if line_skip < 0 or byte_skip < -1:
        raise VolumeReadError(path, f"invalid line skip {line_skip} or byte skip {byte_skip}")
    src, opened = _data_source(path, header, fh)
    try:
        for _ in range(line_skip):
            if not src.readline(_MAX_HEADER_LINE):
                raise VolumeReadError(path, "data is truncated (line skip passes the end of the file)")
        nbytes = count * dtype.itemsize
        if encoding in _TEXT_ENCODINGS:
            if byte_skip > 0:
                src.seek(byte_skip, os.SEEK_CUR)
            out = np.fromfile(src, dtype=dtype.newbyteorder("="), count=count, sep=" ")
            if out.size != count:
                raise VolumeReadError(path, f"data is truncated: {out.size} of {count} values present")
        elif encoding == "raw":
            size = os.fstat(src.fileno()).st_size
            if byte_skip == -1:  # the data is the file's last bytes
                if size < nbytes:
                    raise VolumeReadError(path, f"data is truncated: {size} of {nbytes} bytes present")
                src.seek(size - nbytes)
            else:
                src.seek(byte_skip, os.SEEK_CUR)
            left = size - src.tell()
            if left < nbytes:  # before allocating: a truncated file costs nothing
                raise VolumeReadError(path, f"data is truncated: {max(left, 0)} of {nbytes} bytes present")
            out = np.empty(count, dtype=dtype)
            _read_exact(src, out, path)
        else:
            if byte_skip == -1:
                raise VolumeReadError(path, f"'byte skip: -1' with {encoding} data is not supported")
            out = np.empty(count, dtype=dtype)
            try:
                _inflate_into(src, out, byte_skip, encoding, path)
            except (OSError, EOFError, ValueError, igzip_lib.IsalError) as exc:
                raise VolumeReadError(path, f"corrupt {encoding} data ({exc})") from exc
        return out
    finally:
        if opened:
            src.close()


def load_nrrd(path: Path) -> Volume:
    import nrrd

    path = Path(path)
    with open_regular(path, "NRRD file") as fh:
        try:
            header = nrrd.read_header(_header_lines(fh, path))
        except VolumeReadError:
            raise
        except Exception as exc:
            raise VolumeReadError(path, f"invalid NRRD header ({exc})") from exc
        missing = [k for k in ("type", "sizes", "encoding") if k not in header]
        if missing:
            raise VolumeReadError(path, f"invalid NRRD header (no {', '.join(missing)} field)")
        try:
            sizes = [int(s) for s in header["sizes"]]
        except Exception as exc:
            raise VolumeReadError(path, f"invalid NRRD header (sizes {header['sizes']!r})") from exc
        try:
            dtype = np.dtype(nrrd.reader._determine_datatype(header))
        except KeyError as exc:
            raise VolumeReadError(path, f"unsupported NRRD type {header.get('type')!r}") from exc
        except Exception as exc:
            raise VolumeReadError(path, f"invalid NRRD header ({exc})") from exc
        if dtype.kind not in "biuf":
            raise VolumeReadError(path, f"unsupported NRRD type {header.get('type')!r}")
        if len(sizes) > 4:
            raise VolumeReadError(path, f"{len(sizes)}-D data {tuple(sizes)} is not supported (3-D or 4-D only)")
        if int(header.get("dimension", len(sizes))) != len(sizes):
            raise VolumeReadError(path, f"invalid NRRD header (dimension {header.get('dimension')} "
                                        f"but {len(sizes)} sizes)")
        check_shape(path, sizes)
        check_budget(path, sizes, dtype)
        count = int(np.prod(sizes, dtype=np.float64))
        # every volume of a 4-D series is decoded (its non-spatial axis may vary fastest)
        check_nbytes(path, count * dtype.itemsize, f"{len(sizes)}-D data {tuple(sizes)}")
        affine, warnings = _affine(path, header, len(sizes))
        flat = _read_data(path, header, fh, dtype, count)
    data = flat.reshape(sizes, order="F")
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
    check_affine(path, affine)
    data, affine, orig = reorient_to_ras(data, affine)
    meta = {"format": "NRRD", "original_orientation": orig, "warnings": warnings}
    name = path.name.rsplit(".", 1)[0]
    return Volume(data, affine, name=name, source=str(path), meta=meta)
