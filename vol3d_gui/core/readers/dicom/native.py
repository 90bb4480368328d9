"""Uncompressed little-endian pixel data read straight into the volume, header not parsed again.

Decoding a classic series through pydicom parses every file's header a second time: pure Python,
about a millisecond a file, during which a GUI thread waiting for the interpreter lock stalls
(core.cooperate). For native pixel data the header read already knows where the pixels start
(``mark_pixel_offset``); here the element's own tag and length are checked at that offset and
the frames are read with ``readinto`` into their slots, the lock released for the whole read.
The result equals pydicom's own native decoding with its defaults (``iter_pixels(raw=True)``:
the stored bytes as the header's dtype, unused high bits left as they are). Anything else
(compressed, big endian, an offset that no longer holds the pixel element) returns False and
the caller uses pydicom.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

from vol3d_gui.core.errors import VolumeReadError
from vol3d_gui.core.readers.dicom.files import open_regular
from vol3d_gui.core.readers.dicom.frames import number_of_frames

_OFFSET_ATTR = "_vol3d_pixel_offset"
_PIXEL_TAG = struct.pack("<HH", 0x7FE0, 0x0010)
_NATIVE_LE = {"1.2.840.10008.1.2": True, "1.2.840.10008.1.2.1": False}  # uid -> implicit VR
_UNDEFINED = 0xFFFFFFFF


def mark_pixel_offset(ds, fh) -> None:
    """Remember where the pixel data element starts: a header read with stop_before_pixels
    leaves the file at that element (pydicom rewinds to its tag)."""
    object.__setattr__(ds, _OFFSET_ATTR, fh.tell())


def _element_start(fh, offset: int, implicit: bool) -> tuple[int, int]:
    """(start of the value, its length) of the pixel data element at ``offset``, or (-1, 0)."""
    fh.seek(offset)
    head = fh.read(8)
    if len(head) < 8 or head[:4] != _PIXEL_TAG:
        return -1, 0
    if implicit:
        return offset + 8, struct.unpack("<I", head[4:8])[0]
    if head[4:6] not in (b"OB", b"OW"):
        return -1, 0
    more = fh.read(4)
    if len(more) < 4:
        return -1, 0
    return offset + 12, struct.unpack("<I", more)[0]


def read_native_frames(path: Path, ds, wanted: list[tuple[int | None, int]], raw: np.ndarray) -> bool:
    """Read the frames ``wanted`` ((frame index or None, slot)) of ``path`` into ``raw[slot]``.

    False, with nothing read, when the file is not native little-endian pixel data laid out as
    its header says; VolumeReadError when it is but ends before its frames do."""
    offset = getattr(ds, _OFFSET_ATTR, None)
    file_meta = getattr(ds, "file_meta", None)
    ts = str(file_meta.get("TransferSyntaxUID", "")) if file_meta is not None else ""
    if offset is None or ts not in _NATIVE_LE or sys.byteorder != "little":
        return False
    if raw.dtype.byteorder not in ("=", "<", "|") or not raw.flags.c_contiguous:
        return False
    frame_bytes = int(raw[0].nbytes)
    n_frames = number_of_frames(ds)  # the scan's reading of it (a malformed value is one frame)
    with open_regular(path) as fh:
        start, length = _element_start(fh, offset, _NATIVE_LE[ts])
        if start < 0 or length == _UNDEFINED or length < n_frames * frame_bytes:
            return False
        for index, slot in wanted:
            fh.seek(start + (index or 0) * frame_bytes)
            got = fh.readinto(memoryview(raw[slot]).cast("B"))
            if got != frame_bytes:
                raise VolumeReadError(path, f"the pixel data ends after {got} of a frame's {frame_bytes} bytes")
    return True
