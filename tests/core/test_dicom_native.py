"""Native pixel data read at the offset the header read found equals pydicom's own decoding."""

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from vol3d_gui.core.errors import VolumeReadError
from vol3d_gui.core.readers.dicom import decode, load_dicom
from vol3d_gui.core.readers.dicom.native import read_native_frames as native_read

_DATA = Path(pydicom.__file__).parent / "data" / "test_files"
# native little endian (explicit, implicit, padded, 32-bit multi-frame), then big endian and
# compressed, which must go through pydicom
NATIVE_LE = ["CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_padded.dcm",
             "rtdose_1frame.dcm"]
OTHER = ["MR_small_bigendian.dcm", "MR_small_RLE.dcm"]


def _alone(name: str, tmp_path: Path) -> Path:
    folder = tmp_path / name.replace(".", "_")
    folder.mkdir()
    return Path(shutil.copy(_DATA / name, folder / name))


def _load(path, monkeypatch, *, native: bool):
    used = []
    real = native_read

    def spy(*a):
        done = real(*a) if native else False
        used.append(done)
        return done

    monkeypatch.setattr(decode, "read_native_frames", spy)
    return load_dicom(path), used


@pytest.mark.parametrize("name", NATIVE_LE + OTHER)
def test_native_read_equals_pydicom(name, tmp_path, monkeypatch):
    path = _alone(name, tmp_path)
    slow, _ = _load(path, monkeypatch, native=False)
    fast, used = _load(path, monkeypatch, native=True)
    assert used and all(used) == (name in NATIVE_LE)
    assert fast.data.dtype == slow.data.dtype
    np.testing.assert_array_equal(fast.data, slow.data)
    np.testing.assert_array_equal(fast.affine, slow.affine)


def test_unused_high_bits_are_kept_as_pydicom_keeps_them(tmp_path, monkeypatch):
    """12 bits stored in 16 with the sign in the unused bits: the same stored values both ways."""
    from tests.core.io_fixtures import write_dicom_series

    hu = np.random.default_rng(5).integers(-1500, 1500, size=(9, 8, 5)).astype(np.int16)
    paths = write_dicom_series(tmp_path / "s", hu, intercept=0.0)
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 1
        ds.save_as(p)
    slow, _ = _load(tmp_path / "s", monkeypatch, native=False)
    fast, used = _load(tmp_path / "s", monkeypatch, native=True)
    assert used == [True] * len(paths)
    np.testing.assert_array_equal(fast.data, slow.data)


def test_native_multiframe_equals_pydicom(tmp_path, monkeypatch):
    """A native enhanced multi-frame file: every frame from its own offset, in the right slot."""
    from tests.core.dicom_fixtures import enhanced_from_classic
    from tests.core.io_fixtures import write_dicom_series

    rng = np.random.default_rng(3)
    hu = rng.integers(-1000, 2000, size=(12, 10, 7)).astype(np.int16)
    classic = write_dicom_series(tmp_path / "classic", hu)
    out = tmp_path / "enhanced" / "mf.dcm"
    out.parent.mkdir()
    enhanced_from_classic(sorted(classic), out)
    slow, _ = _load(out, monkeypatch, native=False)
    fast, used = _load(out, monkeypatch, native=True)
    assert used == [True]
    np.testing.assert_array_equal(fast.data, slow.data)


def test_pixels_cut_after_the_scan_are_refused(tmp_path, monkeypatch):
    """The file shrinks between the folder scan and the decode: a typed error, not a short read."""
    from vol3d_gui.core.readers.dicom import list_series, load_series

    path = _alone("CT_small.dcm", tmp_path)
    found = list_series(path.parent)
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size - 1000)
    with pytest.raises(VolumeReadError):
        load_series(found[0])


def test_a_file_rewritten_after_the_scan_falls_back_to_pydicom(tmp_path, monkeypatch):
    """The remembered offset no longer holds the pixel element: pydicom reads the new file."""
    from vol3d_gui.core.readers.dicom import list_series, load_series

    path = _alone("CT_small.dcm", tmp_path)
    found = list_series(path.parent)
    ds = pydicom.dcmread(path)
    ds.add_new((0x0011, 0x0010), "LO", "a private block that moves the pixel data")
    ds.PixelData = (ds.pixel_array[::-1] + 7).astype(ds.pixel_array.dtype).tobytes()
    ds.save_as(path)
    used = []
    real = native_read
    monkeypatch.setattr(decode, "read_native_frames", lambda *a: used.append(real(*a)) or used[-1])
    vol = load_series(found[0])
    assert used == [False]
    expected, _ = _load(path, monkeypatch, native=False)
    np.testing.assert_array_equal(vol.data, expected.data)
