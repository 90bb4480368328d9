"""Every bad input comes back as VolumeReadError naming the file: never another exception."""

import gzip

import nibabel as nib
import nrrd
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.core.io_fixtures import marker_volume, write_dicom_series
from vol3d_gui.core.io import VolumeReadError, load_volume, set_memory_budget


@pytest.fixture
def good_nifti(tmp_path):
    path = tmp_path / "good.nii.gz"
    nib.save(nib.Nifti1Image(marker_volume(), np.eye(4)), path)
    return path


def _raises(path, match=None, **kw):
    with pytest.raises(VolumeReadError, match=match) as info:
        load_volume(path, **kw)
    assert str(path.name) in str(info.value) or str(path) in str(info.value)
    return info.value


def test_truncated_gzip(tmp_path, good_nifti):
    raw = good_nifti.read_bytes()
    bad = tmp_path / "trunc.nii.gz"
    bad.write_bytes(raw[: len(raw) // 2])
    _raises(bad)


def test_truncated_uncompressed(tmp_path):
    path = tmp_path / "t.nii"
    nib.save(nib.Nifti1Image(marker_volume(), np.eye(4)), path)
    path.write_bytes(path.read_bytes()[:-100])
    _raises(path, "truncated")


def test_garbage_header(tmp_path):
    bad = tmp_path / "garbage.nii"
    bad.write_bytes(np.random.default_rng(0).bytes(4000))
    _raises(bad, "NIfTI")
    gz = tmp_path / "garbage.nii.gz"
    gz.write_bytes(gzip.compress(np.random.default_rng(1).bytes(4000)))
    _raises(gz)
    notgz = tmp_path / "plain.nii.gz"
    notgz.write_bytes(b"not gzip at all" * 100)
    _raises(notgz)


@pytest.mark.parametrize("shape", [(10, 10, 1), (1, 10, 10), (10, 10)])
def test_degenerate_axes(tmp_path, shape):
    path = tmp_path / "deg.nii"
    nib.save(nib.Nifti1Image(np.zeros(shape, np.int16), np.eye(4)), path)
    _raises(path)


def test_zero_size_axis(tmp_path):
    path = tmp_path / "zero.nii"
    img = nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4))
    nib.save(img, path)
    raw = bytearray(path.read_bytes())
    raw[44:46] = np.int16(0).tobytes()  # dim[3] = 0
    path.write_bytes(bytes(raw))
    _raises(path)


def test_five_d(tmp_path):
    path = tmp_path / "five.nii"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 2, 2), np.int16), np.eye(4)), path)
    _raises(path, "5-D")


def test_empty_file_and_unknown_suffix_and_missing(tmp_path):
    empty = tmp_path / "empty.nii"
    empty.write_bytes(b"")
    _raises(empty)
    other = tmp_path / "image.png"
    other.write_bytes(b"\x89PNG....")
    _raises(other, "unsupported")
    _raises(tmp_path / "missing.nii.gz", "no such")


def test_empty_folder_and_folder_without_dicom(tmp_path):
    (tmp_path / "empty").mkdir()
    _raises(tmp_path / "empty", "empty")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.txt").write_text("x")
    _raises(tmp_path / "text", "no DICOM")


def test_dicom_without_pixel_data(tmp_path):
    import pydicom

    paths = write_dicom_series(tmp_path / "s", marker_volume().astype(float))
    for p in paths:
        ds = pydicom.dcmread(p)
        del ds.PixelData
        ds.save_as(p)
    _raises(tmp_path / "s", "no pixel data")


def test_memory_budget_refuses_before_allocating(tmp_path, good_nifti):
    set_memory_budget(1000)
    try:
        _raises(good_nifti, "memory budget")
    finally:
        set_memory_budget(None)


def test_bad_nrrd(tmp_path):
    path = tmp_path / "bad.nrrd"
    path.write_bytes(b"NRRD0004\ntype: int16\ndimension: 3\nsizes: 4 4\n\n" + b"\0" * 100)
    _raises(path)
    path2 = tmp_path / "trunc.nrrd"
    nrrd.write(str(path2), marker_volume())
    path2.write_bytes(path2.read_bytes()[:-500])
    _raises(path2)


def _mutations():
    return st.lists(st.tuples(st.integers(0, 1023), st.integers(0, 255)), min_size=1, max_size=6)


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("valid")
    data = marker_volume((6, 7, 5))
    nib.save(nib.Nifti1Image(data, np.eye(4)), d / "v.nii")
    nrrd.write(str(d / "v.nrrd"), data, {"space": "left-posterior-superior",
                                          "space directions": np.eye(3), "space origin": np.zeros(3)})
    paths = write_dicom_series(d / "dcm", data.astype(float), spacing=(1.0, 1.0, 1.0))
    return {"nii": (d / "v.nii").read_bytes(), "nrrd": (d / "v.nrrd").read_bytes(),
            "dcm": paths[0].read_bytes()}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["nii", "nrrd", "dcm"]), muts=_mutations())
def test_mutated_headers_give_volume_or_volume_read_error(tmp_path, valid_files, kind, muts):
    raw = bytearray(valid_files[kind])
    for pos, val in muts:
        raw[pos % min(len(raw), 1024)] = val
    path = tmp_path / f"mut.{kind}"
    path.write_bytes(bytes(raw))
    set_memory_budget(64 << 20)  # a mutated size field must be refused, not allocated
    try:
        load_volume(path)
    except VolumeReadError:
        pass
    finally:
        set_memory_budget(None)
