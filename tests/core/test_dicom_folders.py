"""Folders as studies: every series and volume file an item, series split where they must be,
gaps named, headers read once, and nothing but regular files ever opened."""

import os
import shutil
import threading
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from tests.core.io_fixtures import marker_volume, write_dicom_series
from vol3d_gui.core.io import VolumeReadError, list_series, load_volume
from vol3d_gui.core.study import open_study

NIB_DATA = Path(nib.__file__).parent / "tests" / "data"
SPACING, ORIGIN = (0.7, 0.8, 2.5), (-80.0, -90.0, 30.0)


def _hu(shape=(20, 24, 16)):
    hu = marker_volume(shape).astype(np.float64) - 1000.0
    hu[2:6, 3:8, 4:6] = 500.0
    return hu


def _edit(path, **changes):
    ds = pydicom.dcmread(path)
    for k, v in changes.items():
        setattr(ds, k, v)
    ds.save_as(path)


def test_localisers_in_the_series_become_their_own_item(tmp_path):
    hu = _hu()
    write_dicom_series(tmp_path / "s", hu, series_uid="1.2.3.9")
    locs = write_dicom_series(tmp_path / "loc", hu[:, :, :3], series_uid="1.2.3.9")
    for n, p in enumerate(locs):  # coronal slices at three positions
        _edit(p, ImageOrientationPatient=[1, 0, 0, 0, 0, -1], ImagePositionPatient=[0, 10.0 * n, 0])
        shutil.move(p, tmp_path / "s" / f"LOC{n}.dcm")
    series = list_series(tmp_path / "s")
    assert [(s.key, s.n_slices) for s in series] == [("1.2.3.9", 16), ("1.2.3.9~2", 3)]
    assert "orientation" in series[1].note
    np.testing.assert_array_equal(load_volume(tmp_path / "s").data, hu.astype(np.int16))
    assert load_volume(tmp_path / "s", series="1.2.3.9~2").meta["acquisition_orientation"] == "coronal"


def test_a_stray_slice_is_its_own_item_not_a_volume_of_filler(tmp_path):
    hu = _hu()
    paths = write_dicom_series(tmp_path / "s", hu, series_uid="1.2.3.7")
    stray = tmp_path / "s" / "stray.dcm"
    shutil.copy(paths[0], stray)
    ds = pydicom.dcmread(stray)
    pos = [float(v) for v in ds.ImagePositionPatient]
    _edit(stray, ImagePositionPatient=[pos[0], pos[1], pos[2] + 200.0],
          SOPInstanceUID=pydicom.uid.generate_uid())
    series = list_series(tmp_path / "s")
    assert [s.n_slices for s in series] == [16, 1]
    main = load_volume(tmp_path / "s")
    assert main.shape == hu.shape and main.meta["filler_slices"] == []
    lone = load_volume(tmp_path / "s", series=series[1].key)
    assert lone.shape[2] == 1 and lone.meta["single_slice"]
    assert load_volume(stray).meta["series_key"] == series[1].key  # the file given is what opens
    assert load_volume(paths[3]).shape == hu.shape


@pytest.mark.parametrize("flip", [False, True])
def test_missing_slices_are_a_named_gap_and_never_the_opening_slice(tmp_path, flip):
    hu = _hu() + np.arange(20)[:, None, None]  # a ramp: no real slice is constant
    paths = write_dicom_series(tmp_path / "s", hu, spacing=SPACING, origin=ORIGIN, skip={7, 8})
    if flip:  # columns running anterior: the slice normal points inferior, the stack flips
        for p in paths:
            _edit(p, ImageOrientationPatient=[1, 0, 0, 0, -1, 0])
    vol = load_volume(tmp_path / "s")
    assert vol.shape[2] == hu.shape[2]
    assert vol.meta["slice_axis"] == 2
    # independent: the world z of the skipped slices, through the volume's own affine
    expected = sorted(int(round(vol.world_to_voxel([0, 0, ORIGIN[2] + k * SPACING[2]])[2])) for k in (7, 8))
    assert vol.meta["filler_slices"] == expected
    assert vol.meta["notices"] and "missing" in vol.meta["notices"][0]
    for k in range(vol.shape[2]):
        constant = bool(np.all(vol.data[:, :, k] == vol.data.min()))
        assert constant == (k in expected)  # every real slice has the marker or the block


def test_headers_are_read_once_per_file_when_a_folder_is_opened(tmp_path, monkeypatch):
    write_dicom_series(tmp_path / "a", _hu(), description="one")
    write_dicom_series(tmp_path / "a", _hu()[:, :, :5], description="two", shuffle_seed=4)
    write_dicom_series(tmp_path / "b" / "c", _hu()[:, :, :6], description="three")
    n_files = sum(1 for p in tmp_path.rglob("*.dcm"))
    reads = []
    real = pydicom.dcmread

    def counting(fp, *a, **kw):
        reads.append(getattr(fp, "name", fp))
        return real(fp, *a, **kw)

    monkeypatch.setattr(pydicom, "dcmread", counting)
    study = open_study(tmp_path)
    assert len(study) == 3
    assert len(reads) == n_files and len(set(map(str, reads))) == n_files
    reads.clear()
    from vol3d_gui.core.readers.dicom import native

    opened = []
    real_open = native.open_regular
    monkeypatch.setattr(native, "open_regular", lambda p: opened.append(p) or real_open(p))
    vol = study.items[0].load()
    # native pixels are read at the offset the scan found: no header is parsed again, and each
    # file of that series (only) is opened once more
    assert reads == []
    assert len(opened) == len(set(opened)) == vol.meta["n_files"]


def test_volume_files_of_every_format_sit_beside_dicom(tmp_path):
    write_dicom_series(tmp_path, _hu(), description="ct")
    nib.save(nib.Nifti1Image(marker_volume(), np.eye(4)), tmp_path / "a.nii.gz")
    for name in ("test.mgz", "small.mnc", "minc1_1_scale.mnc"):
        shutil.copy(NIB_DATA / name, tmp_path / name)
    study = open_study(tmp_path)
    ids = sorted(it.id for it in study)
    assert ids[1:] == ["a.nii.gz", "minc1_1_scale.mnc", "small.mnc", "test.mgz"] and ids[0].startswith("#")
    for name in ("test.mgz", "small.mnc", "minc1_1_scale.mnc"):
        vol = study.by_id(name).load()
        canonical = nib.as_closest_canonical(nib.load(tmp_path / name))
        expected = np.asarray(canonical.dataobj)
        expected = expected[..., 0] if expected.ndim == 4 else expected
        np.testing.assert_allclose(vol.data, expected, rtol=1e-6)
        np.testing.assert_allclose(vol.affine, canonical.affine, atol=1e-5)
        assert vol.dtype != np.float64


def test_four_d_minc_is_refused_with_the_reason(tmp_path):
    shutil.copy(NIB_DATA / "minc1_4d.mnc", tmp_path / "x.mnc")
    with pytest.raises(VolumeReadError, match="4-D MINC"):
        load_volume(tmp_path / "x.mnc")


def _in_thread(fn, timeout=20.0):
    box = {}

    def run():
        try:
            box["value"] = fn()
        except Exception as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "the reader blocked (it opened a FIFO)"
    return box


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifos_in_a_folder_are_never_opened(tmp_path):
    write_dicom_series(tmp_path, _hu(), description="ct")
    for name in ("trap.dcm", "trap.nii.gz", "trap.mgz", "IM0000"):
        os.mkfifo(tmp_path / name)
    box = _in_thread(lambda: open_study(tmp_path))
    assert "error" not in box and [it.extras.get("description") for it in box["value"]] == ["ct"]
    for name in ("trap.dcm", "trap.nii.gz", "trap.mgz"):
        box = _in_thread(lambda name=name: load_volume(tmp_path / name))
        assert isinstance(box.get("error"), VolumeReadError) and "regular file" in str(box["error"])


def test_series_items_carry_what_a_chooser_shows(tmp_path):
    write_dicom_series(tmp_path, _hu(), description="abdomen", spacing=SPACING, modality="CT")
    item = open_study(tmp_path).items[0]
    assert item.extras["description"] == "abdomen" and item.extras["modality"] == "CT"
    assert item.extras["n_slices"] == 16
    np.testing.assert_allclose(item.extras["spacing"], SPACING)


def test_a_single_slice_opens_as_a_one_slice_volume(tmp_path):
    paths = write_dicom_series(tmp_path / "s", _hu()[:, :, :1])
    vol = load_volume(paths[0])
    assert vol.shape == (20, 24, 1) and vol.meta["single_slice"]
    np.testing.assert_allclose(vol.spacing[:2], [0.7, 0.8], atol=1e-6)


def _mosaic(tmp_path, rows=None):
    src = pydicom.dcmread(NIB_DATA / "0.dcm")
    n, m, s = 48, 7, 36
    tiles = (np.arange(s * s * n, dtype=np.uint16).reshape(n, s, s) * 7) % 4000
    mos = np.zeros((m * s, m * s), np.uint16)
    for k in range(n):
        r, c = divmod(k, m)
        mos[r * s:(r + 1) * s, c * s:(c + 1) * s] = tiles[k]
    src.Rows = src.Columns = rows or m * s
    src.PixelData = mos.tobytes() if rows is None else bytes(rows * rows * 2)
    (tmp_path / "m").mkdir()
    src.save_as(tmp_path / "m" / "mosaic.dcm")
    return tmp_path / "m" / "mosaic.dcm", tiles


@pytest.mark.filterwarnings("ignore:The DICOM readers are highly experimental")
def test_a_siemens_mosaic_is_unpacked(tmp_path):
    from nibabel.nicom.dicomwrappers import wrapper_from_data

    path, tiles = _mosaic(tmp_path)
    assert [s.n_slices for s in list_series(path.parent)] == [48]
    vol = load_volume(path)
    assert vol.shape[2] == 48 or sorted(vol.shape) == [36, 36, 48]
    affine = wrapper_from_data(pydicom.dcmread(path)).affine  # (row, col, slice) -> LPS
    rng = np.random.default_rng(0)
    for r, c, k in rng.integers(0, [36, 36, 48], size=(30, 3)):
        ras = (affine @ [r, c, k, 1])[:3] * [-1, -1, 1]
        assert vol.value_at(ras) == tiles[k, r, c]


def test_a_mosaic_that_cannot_be_unpacked_is_refused_saying_so(tmp_path):
    shutil.copy(NIB_DATA / "0.dcm", tmp_path / "0.dcm")  # pixel data cut down to 256x256
    with pytest.raises(VolumeReadError, match="mosaic"):
        load_volume(tmp_path / "0.dcm")


def test_a_sagittal_gap_is_named_on_the_axis_the_slices_went_to(tmp_path):
    hu = _hu() + np.arange(20)[:, None, None]
    paths = write_dicom_series(tmp_path / "s", hu, spacing=SPACING, origin=ORIGIN, skip={5})
    for p in paths:  # the same images as sagittal slices stacked along patient left
        k = round((float(pydicom.dcmread(p).ImagePositionPatient[2]) - ORIGIN[2]) / SPACING[2])
        _edit(p, ImageOrientationPatient=[0, 1, 0, 0, 0, -1], ImagePositionPatient=[2.5 * k, 0, 0])
    vol = load_volume(tmp_path / "s")
    assert vol.meta["acquisition_orientation"] == "sagittal" and vol.meta["slice_axis"] == 0
    skipped_ras = [-2.5 * 5, 0, 0]  # LPS x = 12.5 mm is RAS x = -12.5 mm
    assert vol.meta["filler_slices"] == [int(round(vol.world_to_voxel(skipped_ras)[0]))]
    for i in range(vol.shape[0]):
        assert bool(np.all(vol.data[i] == vol.data.min())) == (i in vol.meta["filler_slices"])


def test_orientation_jitter_below_the_tolerance_does_not_split_a_series(tmp_path):
    hu = _hu()
    paths = write_dicom_series(tmp_path / "s", hu)
    for p in paths[::2]:  # a scanner writing 0.0009 where the others write 0 (rounds to 0.001)
        _edit(p, ImageOrientationPatient=[0.9999996, 0.0009, 0, -0.0009, 0.9999996, 0])
    assert [s.n_slices for s in list_series(tmp_path / "s")] == [16]
    np.testing.assert_array_equal(load_volume(tmp_path / "s").data, hu.astype(np.int16))
