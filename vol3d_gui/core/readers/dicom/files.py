"""Reading one DICOM file without trusting it.

- Only regular files are opened: a FIFO or a device found in a folder walk would block
  the reader forever or stream without end. The path is stat'ed first and the opened
  descriptor (O_NONBLOCK, so even a FIFO swapped in meanwhile cannot block) is checked again.
- Deflated transfer syntax: pydicom inflates the whole stream into memory before it
  parses a single element (a 1 MB file can inflate to GiBs). Here it is inflated
  incrementally with a limit: a header read inflates only up to HEADER_INFLATE_LIMIT,
  a pixel read only up to what the header says the pixels take.
- Every read goes through ``pydicom.dcmread`` looked up on the module at call time, so a
  test can count reads per file.
"""

from __future__ import annotations

import io
import os
import stat
import zlib
from pathlib import Path

from vol3d_gui.core.errors import VolumeReadError

# A DICOM header (everything before the pixel data) beyond this is not a header we show.
HEADER_INFLATE_LIMIT = 16 << 20
# Elements this large (private blobs, embedded reports) are not loaded with a header.
DEFER_SIZE = 1 << 20
_CHUNK = 1 << 16


def is_regular_file(path) -> bool:
    """True only for a regular file (following links): never a FIFO, socket or device."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def open_regular(path: Path):
    """Open a regular file for reading; refuse anything else before it can block."""
    if not is_regular_file(path):
        raise VolumeReadError(path, "not a regular file (a FIFO, device or folder is never read)")
    def nonblocking(name, flags):
        return os.open(name, flags | getattr(os, "O_NONBLOCK", 0))

    try:
        # keeps the path as its name (pydicom uses it as filename); the caller closes it
        fh = open(path, "rb", opener=nonblocking)  # noqa: SIM115
    except OSError as exc:
        raise VolumeReadError(path, f"cannot open the file ({exc.strerror or exc})") from exc
    if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
        fh.close()
        raise VolumeReadError(path, "not a regular file (a FIFO, device or folder is never read)")
    return fh


def _inflate(path: Path, fh, limit: int, *, truncate: bool) -> bytes:
    """Raw-deflate the rest of fh into at most ``limit`` bytes.

    With ``truncate`` the output is cut at the limit (a header read needs only the start);
    otherwise a stream inflating beyond the limit is refused."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    while not inflater.eof:
        chunk = inflater.unconsumed_tail or fh.read(_CHUNK)
        if not chunk:
            break
        out += inflater.decompress(chunk, limit + 1 - len(out))
        if len(out) > limit:
            if truncate:
                return bytes(out[:limit])
            raise VolumeReadError(path, f"the deflated data inflates beyond {limit / 2**20:.1f} MiB, "
                                        "more than its header declares")
    return bytes(out)


def read_dicom(path, *, header_only: bool, inflate_limit: int | None = None):
    """One pydicom read of ``path`` (header only, or with the pixel data).

    Raises pydicom's InvalidDicomError for a file that is not DICOM, VolumeReadError for one
    that must not be read."""
    import pydicom
    from pydicom.filereader import _read_file_meta_info, read_preamble
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

    path = Path(path)
    with open_regular(path) as fh:
        read_preamble(fh, False)  # InvalidDicomError without the 'DICM' prefix
        file_meta = _read_file_meta_info(fh)
        start = fh.tell()
        if file_meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
            fh.seek(0)
            ds = pydicom.dcmread(fh, stop_before_pixels=header_only,
                                 defer_size=DEFER_SIZE if header_only else None)
            if header_only:
                from vol3d_gui.core.readers.dicom.native import mark_pixel_offset

                mark_pixel_offset(ds, fh)
            return ds
        limit = HEADER_INFLATE_LIMIT if header_only else int(inflate_limit or HEADER_INFLATE_LIMIT)
        fh.seek(start)
        body = _inflate(path, fh, limit, truncate=header_only)
    # hand pydicom an already inflated file: it would otherwise inflate everything itself
    file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = io.BytesIO()
    buf.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(buf, file_meta, enforce_standard=False)
    buf.write(body)
    buf.seek(0)
    ds = pydicom.dcmread(buf, stop_before_pixels=header_only)
    ds.filename = str(path)
    return ds
