import numpy as np
import pytest

from vol3d_gui.core.volume import Volume, axis_codes, centered_affine


def _oblique_affine():
    theta = np.deg2rad(20)
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([0.8, 0.8, 2.5])
    aff[:3, 3] = [-100.0, 20.0, 5.0]
    return aff


def test_spacing_and_round_trip_on_oblique_affine():
    vol = Volume(np.zeros((10, 12, 14), np.int16), _oblique_affine())
    np.testing.assert_allclose(vol.spacing, [0.8, 0.8, 2.5])
    ijk = np.array([[1.5, 2, 3], [9, 11, 13]])
    np.testing.assert_allclose(vol.world_to_voxel(vol.voxel_to_world(ijk)), ijk, atol=1e-9)


def test_value_at_world_point_and_outside():
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    vol = Volume(data, centered_affine(data.shape, (2.0, 1.0, 3.0)))
    xyz = vol.voxel_to_world([3, 1, 5])
    assert vol.value_at(xyz) == data[3, 1, 5]
    assert vol.value_at(xyz + [100, 0, 0]) is None
    assert vol.dtype == np.int16  # native dtype kept


def test_bad_shapes_and_affines_are_refused():
    with pytest.raises(ValueError):
        Volume(np.zeros((3, 3)), np.eye(4))
    with pytest.raises(ValueError):
        Volume(np.zeros((3, 3, 3)), np.diag([1, 0, 1, 1]))
    with pytest.raises(ValueError):
        Volume(np.zeros((3, 3, 3)), np.full((4, 4), np.nan))


def test_content_hash_follows_voxels_not_name():
    a = Volume(np.ones((3, 3, 3), np.uint8), np.eye(4), name="a")
    b = Volume(np.ones((3, 3, 3), np.uint8), np.eye(4), name="b")
    c = b.with_data(np.zeros((3, 3, 3), np.uint8))
    assert a.content_hash() == b.content_hash() != c.content_hash()


def test_axis_codes_and_centre():
    vol = Volume(np.zeros((5, 5, 5)), centered_affine((5, 5, 5)))
    assert axis_codes(vol.affine) == ("R", "A", "S")
    np.testing.assert_allclose(vol.center_world, 0, atol=1e-12)
