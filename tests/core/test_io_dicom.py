import numpy as np
import pytest

from tests.core.io_fixtures import marker_volume, write_dicom_series
from vol3d_gui.core.io import VolumeReadError, list_series, load_volume
from vol3d_gui.core.volume import axis_codes


def _hu():
    hu = marker_volume().astype(np.float64) - 1000.0  # air background, marker at 0 HU
    hu[2:6, 3:8, 4:6] = 500.0  # bone-like block
    return hu


def test_series_loads_with_hu_order_spacing_and_ras(tmp_path):
    hu = _hu()
    write_dicom_series(tmp_path / "s", hu, spacing=(0.7, 0.8, 2.5), origin=(-80.0, -90.0, 30.0))
    vol = load_volume(tmp_path / "s")
    assert axis_codes(vol.affine) == ("R", "A", "S")
    assert vol.dtype == np.int16
    np.testing.assert_array_equal(vol.data, hu.astype(np.int16))  # HU, order, axes
    np.testing.assert_allclose(vol.spacing, [0.7, 0.8, 2.5], atol=1e-4)  # not SliceThickness=99
    np.testing.assert_allclose(vol.voxel_to_world([0, 0, 0]), [-80, -90, 30], atol=1e-3)
    assert vol.meta["modality"] == "CT"
    assert "PatientName" not in vol.meta and "TEST-0001" not in repr(vol.meta)


def test_any_file_of_the_series_opens_it(tmp_path):
    paths = write_dicom_series(tmp_path / "s", _hu())
    vol = load_volume(paths[3])
    assert vol.shape == _hu().shape


def test_fractional_slope_gives_float_hu(tmp_path):
    hu = _hu()
    write_dicom_series(tmp_path / "s", hu, slope=0.5, intercept=-1024.0)
    vol = load_volume(tmp_path / "s")
    assert vol.dtype == np.float32
    np.testing.assert_allclose(vol.data, hu, atol=0.5)


def test_two_series_in_one_folder(tmp_path):
    hu = _hu()
    write_dicom_series(tmp_path, hu, description="big", series_uid="1.2.3.1")
    write_dicom_series(tmp_path, hu[:, :, :6], description="small", series_uid="1.2.3.2", shuffle_seed=1)
    series = list_series(tmp_path)
    assert [(s.uid, s.description, s.n_slices) for s in series] == [
        ("1.2.3.1", "big", hu.shape[2]), ("1.2.3.2", "small", 6)]
    assert load_volume(tmp_path).shape[2] == hu.shape[2]  # default: the largest
    assert load_volume(tmp_path, series="1.2.3.2").shape[2] == 6
    assert load_volume(tmp_path, series="small").shape[2] == 6
    with pytest.raises(VolumeReadError, match="no series"):
        load_volume(tmp_path, series="nope")


def test_missing_slice_is_reported_and_geometry_kept(tmp_path):
    hu = _hu()
    write_dicom_series(tmp_path / "s", hu, skip={7})
    vol = load_volume(tmp_path / "s")
    assert vol.shape == hu.shape
    assert any("missing" in w for w in vol.meta["warnings"])
    np.testing.assert_array_equal(vol.data[:, :, 8:], hu[:, :, 8:].astype(np.int16))


def test_uneven_spacing_is_an_error(tmp_path):
    import pydicom

    paths = write_dicom_series(tmp_path / "s", _hu())
    ds = pydicom.dcmread(paths[0])
    pos = [float(v) for v in ds.ImagePositionPatient]
    ds.ImagePositionPatient = [pos[0], pos[1], pos[2] + 1.1]
    ds.save_as(paths[0])
    with pytest.raises(VolumeReadError, match="uneven"):
        load_volume(tmp_path / "s")


def test_list_series_of_a_folder_without_dicom(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert list_series(tmp_path) == []


def test_the_files_windows_open_first_and_become_named_presets(tmp_path):
    import pydicom

    from vol3d_gui.core.windowing import Window, default_window
    from vol3d_gui.viewer.windows import window_presets

    paths = write_dicom_series(tmp_path / "s", _hu())
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.WindowCenter, ds.WindowWidth = [40, 400], [80, 1800]
        ds.WindowCenterWidthExplanation = ["HEAD", "SKULL"]
        ds.save_as(p)
    vol = load_volume(tmp_path / "s")
    assert default_window(vol) == Window(40, 80)  # not the abdomen preset of any CT
    presets = window_presets(vol)
    assert presets["HEAD"] == Window(40, 80) and presets["SKULL"] == Window(400, 1800)
    assert vol.meta["acquisition_orientation"] == "axial" and vol.meta["series_description"]
