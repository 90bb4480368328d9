"""Hostile inputs to the readers: decoders bounded by what the header declares (run under an
address-space limit), detached data files confined to the header's folder, no FIFO opened."""

from __future__ import annotations

import gzip
import os
import struct
import zlib

import nibabel as nib
import nrrd
import numpy as np
import pytest

from tests.core.limited_child import LOAD_VOLUME, run_limited
from vol3d_gui.core.io import VolumeReadError, load_volume


def _deflate_bomb(n_bytes: int) -> bytes:
    """A gzip stream of ``n_bytes`` zeros built from one repeated full-flush segment: a few
    kilobytes per 16 MiB, made in milliseconds."""
    seg_len = 16 << 20
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    seg = c.compress(b"\0" * seg_len) + c.flush(zlib.Z_FULL_FLUSH)
    body = seg * (n_bytes // seg_len) + c.flush(zlib.Z_FINISH)
    # CRC and size are those of an empty stream: a decoder that stops in time never checks them
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + body + struct.pack("<II", 0, 0)


def _nrrd_header(sizes, encoding="raw", extra="") -> bytes:
    return (f"NRRD0004\ntype: uint8\ndimension: {len(sizes)}\nsizes: {' '.join(map(str, sizes))}\n"
            f"encoding: {encoding}\nspace: left-posterior-superior\n"
            "space directions: (1,0,0) (0,1,0) (0,0,1)\nspace origin: (0,0,0)\n" + extra + "\n").encode()


@pytest.mark.parametrize("encoding", ["raw", "gzip", "bzip2", "ascii"])
def test_every_encoding_and_a_detached_file_still_read(tmp_path, encoding):
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) - 60
    hdr = {"space": "right-anterior-superior", "space directions": np.eye(3), "encoding": encoding}
    nrrd.write(str(tmp_path / "a.nrrd"), data, hdr, index_order="F")
    np.testing.assert_array_equal(load_volume(tmp_path / "a.nrrd").data, data)
    (tmp_path / "sub").mkdir()
    nrrd.write(str(tmp_path / "a.nhdr"), data, hdr, detached_header=True, index_order="F",
               relative_data_path=True)
    np.testing.assert_array_equal(load_volume(tmp_path / "a.nhdr").data, data)


def test_gzip_bomb_stops_at_the_declared_size(tmp_path):
    path = tmp_path / "bomb.nrrd"
    path.write_bytes(_nrrd_header([64, 64, 64], "gzip") + _deflate_bomb(2 << 30))
    assert path.stat().st_size < 2 << 20  # 2 MB on disk, 2 GiB inflated
    out = run_limited(LOAD_VOLUME, path)
    assert "more data than the header" in out.get("error", ""), out


def test_raw_file_longer_than_its_header_reads_only_the_declared_bytes(tmp_path):
    path = tmp_path / "long.nrrd"
    with open(path, "wb") as fh:
        fh.write(_nrrd_header([32, 32, 32]))
        fh.write(np.arange(32 ** 3, dtype=np.uint8).tobytes())
        fh.truncate(fh.tell() + (2 << 30))  # sparse: 2 GiB of trailing zeros, no disk used
    assert run_limited(LOAD_VOLUME, path) == {"ok": "(32, 32, 32)"}


def test_truncated_raw_is_refused_before_allocating(tmp_path):
    path = tmp_path / "short.nrrd"
    path.write_bytes(_nrrd_header([400, 400, 400]) + b"\0" * 100)  # 61 MiB declared, under the budget
    assert "truncated" in run_limited(LOAD_VOLUME, path)["error"]


def test_four_d_total_is_budgeted(tmp_path):
    # each volume 16 MiB (under the 64 MiB budget), all eight 128 MiB: decoding them all must be refused
    path = tmp_path / "series.nrrd"
    path.write_bytes(_nrrd_header([256, 256, 256, 8], "gzip").replace(
        b"space directions: (1,0,0) (0,1,0) (0,0,1)", b"space directions: (1,0,0) (0,1,0) (0,0,1) none")
        + _deflate_bomb(512 << 20))
    assert "memory budget" in run_limited(LOAD_VOLUME, path)["error"]


def test_nifti_gz_with_a_huge_vox_offset_costs_no_memory(tmp_path):
    data = np.arange(8 * 9 * 10, dtype=np.int16).reshape(8, 9, 10)
    img = nib.Nifti1Image(data, np.eye(4))
    offset = (1 << 30) + 1024  # vox_offset is a float32: a multiple of 64 here
    img.header.set_data_offset(offset)
    hdr_bytes = img.header.binaryblock
    zeros = gzip.compress(b"\0" * (16 << 20), 1)
    pad = offset - len(hdr_bytes)
    members = [gzip.compress(hdr_bytes), zeros * (pad // (16 << 20)), gzip.compress(b"\0" * (pad % (16 << 20))),
               gzip.compress(data.tobytes(order="F"))]
    path = tmp_path / "offset.nii.gz"
    path.write_bytes(b"".join(members))
    assert run_limited(LOAD_VOLUME, path) == {"ok": "(8, 9, 10)"}


def test_nifti_truncated_plain_file_refused_before_allocating(tmp_path):
    img = nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4))
    img.header.set_data_shape((400, 400, 400))
    path = tmp_path / "short.nii"
    path.write_bytes(img.header.binaryblock + b"\0" * 4 + b"\0" * 100)
    assert "truncated" in run_limited(LOAD_VOLUME, path)["error"]


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside.raw", "sub/../../outside.raw", "link.raw",
                                  "C:\\\\x.raw"])
def test_detached_data_file_must_stay_in_the_header_folder(tmp_path, name):
    study = tmp_path / "study"
    (study / "sub").mkdir(parents=True)
    (tmp_path / "outside.raw").write_bytes(bytes(range(64)) * 2)
    (study / "link.raw").symlink_to(tmp_path / "outside.raw")
    hdr = study / "h.nhdr"
    hdr.write_bytes(_nrrd_header([4, 4, 8], extra=f"data file: {name}\n"))
    with pytest.raises(VolumeReadError, match="outside the header's folder"):
        load_volume(hdr)


def test_detached_data_file_in_a_subfolder_and_a_link_inside_are_fine(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.raw").write_bytes(bytes(range(128)))
    (tmp_path / "inner.raw").symlink_to(tmp_path / "sub" / "d.raw")
    for name in ("sub/d.raw", "inner.raw"):
        hdr = tmp_path / f"h-{name.replace('/', '_')}.nhdr"
        hdr.write_bytes(_nrrd_header([4, 4, 8], extra=f"data file: {name}\n"))
        assert load_volume(hdr).shape == (4, 4, 8)


def test_fifos_and_devices_are_never_opened(tmp_path):
    fifo = tmp_path / "data.raw"
    os.mkfifo(fifo)
    hdr = tmp_path / "h.nhdr"
    hdr.write_bytes(_nrrd_header([4, 4, 8], extra="data file: data.raw\n"))
    dev_hdr = tmp_path / "dev.nhdr"
    os.symlink("/dev/zero", tmp_path / "zero.raw")
    dev_hdr.write_bytes(_nrrd_header([4, 4, 8], extra="data file: zero.raw\n"))
    fifo_nii = tmp_path / "pipe.nii.gz"
    os.mkfifo(fifo_nii)
    fifo_nrrd = tmp_path / "pipe.nrrd"
    os.mkfifo(fifo_nrrd)
    for path in (hdr, fifo_nii, fifo_nrrd):  # a FIFO nobody writes to: open() would block forever
        out = run_limited(LOAD_VOLUME, path, timeout=60)
        assert "not a regular file" in out.get("error", ""), (path, out)
    with pytest.raises(VolumeReadError, match="outside the header's folder|not a regular file"):
        load_volume(dev_hdr)


def test_multi_file_data_is_refused_clearly(tmp_path):
    hdr = tmp_path / "m.nhdr"
    hdr.write_bytes(_nrrd_header([4, 4, 2], extra="data file: LIST\n")[:-1] + b"a.raw\nb.raw\n")
    with pytest.raises(VolumeReadError):
        load_volume(hdr)


def test_header_without_end_is_not_read_whole(tmp_path):
    path = tmp_path / "endless.nrrd"
    path.write_bytes(b"NRRD0004\n# " + b"x" * (4 << 20))
    with pytest.raises(VolumeReadError, match="longer than"):
        load_volume(path)


def test_a_fifo_without_a_known_suffix_is_not_sniffed(tmp_path):
    fifo = tmp_path / "pipe.bin"
    os.mkfifo(fifo)
    out = run_limited(LOAD_VOLUME, fifo, timeout=60)  # sniffing for DICM would block on open()
    assert "error" in out, out
    out = run_limited("lambda p: __import__('vol3d_gui.core.study', fromlist=['x']).open_study(p)", fifo,
                      timeout=60)
    assert "not a study" in out.get("error", ""), out


@pytest.mark.parametrize("name", ["a\0b.raw", "loop.raw"])
def test_odd_data_file_names_are_volume_read_errors(tmp_path, name):
    os.symlink("loop.raw", tmp_path / "loop.raw")  # a link to itself
    hdr = tmp_path / "h.nhdr"
    hdr.write_bytes(_nrrd_header([4, 4, 8], extra=f"data file: {name}\n"))
    from vol3d_gui.core.readers.nrrd import load_nrrd

    with pytest.raises(VolumeReadError):
        load_nrrd(hdr)  # the reader itself, not load_volume's catch-all
