"""World-space plane sampling: an overlay on any grid lands where its affine says."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vol3d_gui.core.resample import PLANE_AXES, base_slice, sample_plane
from vol3d_gui.core.volume import Volume, centered_affine


def _base(shape=(24, 20, 12), spacing=(1.0, 0.8, 2.0)):
    rng = np.random.default_rng(0)
    return Volume(rng.integers(-1000, 1000, shape).astype(np.int16), centered_affine(shape, spacing))


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("order", [0, 1])
def test_a_volume_sampled_on_its_own_grid_is_its_slice(axis, order):
    vol = _base()
    index = vol.shape[axis] // 3
    got = sample_plane(vol, vol, axis, index, order=order)
    np.testing.assert_allclose(got, base_slice(vol, axis, index), atol=1e-3)
    assert got.shape == tuple(vol.shape[a] for a in PLANE_AXES[axis])
    assert got.dtype == np.float32


def test_base_slice_is_a_view_in_plane_axis_order():
    vol = _base()
    sl = base_slice(vol, 2, 5)
    assert np.shares_memory(sl, vol.data)
    np.testing.assert_array_equal(sl, vol.data[:, :, 5])
    np.testing.assert_array_equal(base_slice(vol, 1, 3), vol.data[:, 3, :])
    np.testing.assert_array_equal(base_slice(vol, 0, 99), vol.data[-1])  # clamped


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_a_coarse_mask_lines_up_with_the_fine_grid(axis):
    shape, spacing = (40, 40, 20), (1.0, 1.0, 2.0)
    base = Volume(np.zeros(shape, np.int16), centered_affine(shape, spacing))
    fine = np.zeros(shape, np.uint8)
    fine[8:16, 20:32, 6:14] = 1
    coarse = fine[::2, ::2, ::2].copy()  # each coarse voxel covers 2x2x2 fine voxels
    cvol = Volume(coarse, centered_affine(coarse.shape, np.asarray(spacing) * 2))
    for index in range(shape[axis]):
        got = sample_plane(cvol, base, axis, index, order=0)
        want = base_slice(Volume(fine, base.affine), axis, index)
        # nearest-neighbour on a 2x grid: every fine voxel centre lies 0.25 coarse voxel
        # from a coarse centre, so the block edges must match exactly
        np.testing.assert_array_equal(got, want, err_msg=f"axis {axis} plane {index}")


def test_flipped_and_permuted_storage_samples_the_same_world():
    """An overlay stored LPS with axes permuted (as some writers do) still lands in place."""
    base = _base((16, 18, 10), (1.0, 1.0, 1.0))
    # the overlay is the base's data stored as (z, y, x) with x and y running backwards
    data = np.transpose(base.data[::-1, ::-1, :], (2, 1, 0)).copy()
    perm = np.zeros((4, 4))
    perm[3, 3] = 1
    # overlay index (k, j', i') -> base index (i = 15 - i', j = 17 - j', k)
    perm[0, 2], perm[0, 3] = -1, 15
    perm[1, 1], perm[1, 3] = -1, 17
    perm[2, 0] = 1
    ovl = Volume(data, base.affine @ perm)
    for axis in range(3):
        got = sample_plane(ovl, base, axis, 4, order=0)
        np.testing.assert_array_equal(got, base_slice(base, axis, 4))


def test_points_outside_the_overlay_get_cval():
    base = _base((20, 20, 10), (1.0, 1.0, 1.0))
    small = Volume(np.ones((4, 4, 4), np.float32), base.affine @ _translate(8, 8, 3))
    got = sample_plane(small, base, 2, 5, order=1, cval=np.nan)
    inside = np.isfinite(got)
    assert inside.sum() == 16
    assert np.array_equal(np.argwhere(inside).min(axis=0), [8, 8])
    # a plane that misses the overlay entirely
    assert np.isnan(sample_plane(small, base, 2, 9, order=1, cval=np.nan)).all()
    assert (sample_plane(small, base, 2, 9, order=0, cval=-5) == -5).all()


def _translate(x, y, z):
    t = np.eye(4)
    t[:3, 3] = (x, y, z)
    return t


@settings(max_examples=40, deadline=None)
@given(scale=st.tuples(*[st.floats(0.4, 3.0)] * 3), shift=st.tuples(*[st.floats(-6, 6)] * 3),
       axis=st.integers(0, 2), index=st.integers(0, 11))
def test_trilinear_sampling_reproduces_a_linear_world_field(scale, shift, axis, index):
    """Trilinear interpolation is exact on a linear function: sampling an overlay that holds
    f(world) = a . world + c gives f at the base plane's world points wherever it is inside."""
    base = _base((16, 14, 12), (1.0, 0.8, 1.5))
    oshape = (10, 12, 9)
    oaff = np.diag([*scale, 1.0])
    oaff[:3, 3] = np.asarray(shift) - np.asarray(scale) * (np.asarray(oshape) - 1) / 2
    ovl_grid = np.stack(np.meshgrid(*[np.arange(n) for n in oshape], indexing="ij"), axis=-1)
    world = ovl_grid @ oaff[:3, :3].T + oaff[:3, 3]
    a, c = np.array([0.7, -1.3, 2.1]), 5.0
    ovl = Volume((world @ a + c).astype(np.float64), oaff)

    got = sample_plane(ovl, base, axis, index, order=1, cval=np.nan)
    pa, pb = PLANE_AXES[axis]
    ijk = np.zeros((base.shape[pa], base.shape[pb], 3))
    ijk[..., pa] = np.arange(base.shape[pa])[:, None]
    ijk[..., pb] = np.arange(base.shape[pb])[None, :]
    ijk[..., axis] = index
    pts = ijk @ base.affine[:3, :3].T + base.affine[:3, 3]
    want = pts @ a + c
    ovox = (pts - oaff[:3, 3]) / np.asarray(scale)
    strictly_inside = np.all((ovox >= 0) & (ovox <= np.asarray(oshape) - 1), axis=-1)
    np.testing.assert_allclose(got[strictly_inside], want[strictly_inside], rtol=1e-4, atol=1e-3)
    # more than half a voxel outside the grid: nothing is drawn there
    far = np.any((ovox < -0.5 - 1e-6) | (ovox > np.asarray(oshape) - 0.5 + 1e-6), axis=-1)
    assert np.isnan(got[far]).all()
