import nibabel as nib
import numpy as np
import pytest

from tests.core.io_fixtures import marker_volume, write_nifti_as
from vol3d_gui.core.io import load_volume, save_nifti
from vol3d_gui.core.volume import Volume, axis_codes

RAS_AFFINE = np.array([[0.9, 0, 0, -10.0], [0, 1.1, 0, 20.0], [0, 0, 2.5, -30.0], [0, 0, 0, 1]])


def _marker_index(vol):
    """Centroid of the bright block (argmax alone would pick a different corner after a flip)."""
    return np.argwhere(vol.data == vol.data.max()).mean(axis=0)


@pytest.mark.parametrize("codes", ["RAS", "LPS", "LAS", "SRA", "PIL"])
def test_marker_lands_where_ras_predicts(tmp_path, codes):
    data = marker_volume()
    path = tmp_path / f"m_{codes}.nii.gz"
    write_nifti_as(path, data, RAS_AFFINE, codes)
    vol = load_volume(path)
    assert axis_codes(vol.affine) == ("R", "A", "S")
    np.testing.assert_array_equal(vol.data, data)  # same RAS+ array back
    np.testing.assert_allclose(vol.affine, RAS_AFFINE, atol=1e-5)
    ijk = _marker_index(vol)
    np.testing.assert_allclose(vol.voxel_to_world(ijk), RAS_AFFINE[:3, :3] @ ijk + RAS_AFFINE[:3, 3], atol=1e-5)
    assert vol.meta["original_orientation"] == codes
    assert vol.dtype == np.int16


def test_oblique_affine_is_reoriented_to_closest_canonical(tmp_path):
    data = marker_volume()
    theta = np.deg2rad(25)
    rot = np.array([[np.cos(theta), 0, np.sin(theta)], [0, 1, 0], [-np.sin(theta), 0, np.cos(theta)]])
    # stored as L-P-S-ish, rotated 25 degrees about A-P
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([-1.0, -1.2, 2.0])
    aff[:3, 3] = [12, 40, -7]
    stored = data[::-1, ::-1, :].copy()
    m_stored = np.argwhere(stored == stored.max()).mean(axis=0)
    world = aff[:3, :3] @ m_stored + aff[:3, 3]
    path = tmp_path / "oblique.nii"
    nib.save(nib.Nifti1Image(stored, aff), path)
    vol = load_volume(path)
    assert axis_codes(vol.affine) == ("R", "A", "S")
    ijk = _marker_index(vol)
    np.testing.assert_allclose(vol.voxel_to_world(ijk), world, atol=1e-4)
    # the bright block is at patient right-anterior-superior: high end of each RAS axis
    assert np.all(ijk > np.array(vol.shape) / 2)


def test_scaling_applied_and_integer_kept_when_identity(tmp_path):
    data = marker_volume().astype(np.int16)
    img = nib.Nifti1Image(data, np.eye(4))
    img.header.set_slope_inter(2.0, -1024)
    nib.save(img, tmp_path / "scaled.nii.gz")
    vol = load_volume(tmp_path / "scaled.nii.gz")
    assert vol.dtype == np.float32
    assert vol.data.max() == pytest.approx(1000 * 2 - 1024)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "plain.nii.gz")
    assert load_volume(tmp_path / "plain.nii.gz").dtype == np.int16


def test_four_d_singleton_and_series(tmp_path):
    d3 = marker_volume()
    nib.save(nib.Nifti1Image(d3[..., None], np.eye(4)), tmp_path / "single.nii")
    vol = load_volume(tmp_path / "single.nii")
    assert vol.shape == d3.shape and not vol.meta["warnings"]
    d4 = np.stack([d3, d3 * 0, d3 * 0], axis=-1)
    nib.save(nib.Nifti1Image(d4, np.eye(4)), tmp_path / "series.nii.gz")
    vol = load_volume(tmp_path / "series.nii.gz")
    np.testing.assert_array_equal(vol.data, d3)
    assert "first" in vol.meta["warnings"][0]


def test_nan_and_inf_voxels_load(tmp_path):
    data = marker_volume().astype(np.float32)
    data[0, 0, 0], data[1, 0, 0] = np.nan, np.inf
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "nan.nii.gz")
    vol = load_volume(tmp_path / "nan.nii.gz")
    assert np.isnan(vol.data[0, 0, 0]) and np.isinf(vol.data[1, 0, 0])


def test_save_round_trip_keeps_world_space(tmp_path):
    vol = Volume(marker_volume(), RAS_AFFINE, name="m")
    out = save_nifti(vol, tmp_path / "out.nii.gz")
    back = load_volume(out)
    np.testing.assert_array_equal(back.data, vol.data)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-5)
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary left behind


def test_nifti2_is_read(tmp_path):
    data = marker_volume()
    nib.save(nib.Nifti2Image(data, RAS_AFFINE), tmp_path / "n2.nii")
    vol = load_volume(tmp_path / "n2.nii")
    np.testing.assert_array_equal(vol.data, data)
    assert vol.meta["format"] == "NIfTI-2"
