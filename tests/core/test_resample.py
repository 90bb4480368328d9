"""World-space plane sampling: an overlay on any grid lands where its affine says."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vol3d_gui.core.resample import (
    PLANE_AXES,
    _sample_general,
    base_slice,
    plane_voxel_to_overlay,
    sample_plane,
)
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


def _rotation_z(deg):
    t = np.eye(4)
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    t[:2, :2] = [[c, -s], [s, c]]
    return t


@settings(max_examples=40, deadline=None)
@given(scale=st.tuples(*[st.floats(0.4, 3.0)] * 3), shift=st.tuples(*[st.floats(-6, 6)] * 3),
       axis=st.integers(0, 2), index=st.integers(0, 11), angle=st.sampled_from([0.0, 0.0, 17.0, 90.0, 180.0]))
def test_trilinear_sampling_reproduces_a_linear_world_field(scale, shift, axis, index, angle):
    """Trilinear interpolation is exact on a linear function: sampling an overlay that holds
    f(world) = a . world + c gives f at the base plane's world points wherever it is inside.
    Axis-aligned grids (also rotated by 90/180 degrees: flips and swaps) and an oblique one."""
    base = _base((16, 14, 12), (1.0, 0.8, 1.5))
    oshape = (10, 12, 9)
    oaff = np.diag([*scale, 1.0])
    oaff[:3, 3] = np.asarray(shift) - np.asarray(scale) * (np.asarray(oshape) - 1) / 2
    oaff = _rotation_z(angle) @ oaff
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
    ovox = (pts - oaff[:3, 3]) @ np.linalg.inv(oaff[:3, :3]).T
    strictly_inside = np.all((ovox >= 0) & (ovox <= np.asarray(oshape) - 1), axis=-1)
    np.testing.assert_allclose(got[strictly_inside], want[strictly_inside], rtol=1e-4, atol=1e-3)
    # more than half a voxel outside the grid: nothing is drawn there
    far = np.any((ovox < -0.5 - 1e-6) | (ovox > np.asarray(oshape) - 0.5 + 1e-6), axis=-1)
    assert np.isnan(got[far]).all()


@settings(max_examples=40, deadline=None)
@given(perm=st.permutations([0, 1, 2]), flips=st.tuples(*[st.booleans()] * 3),
       scale=st.tuples(*[st.sampled_from([0.5, 1.0, 1.7, 2.0, 3.0])] * 3),
       shift=st.tuples(*[st.floats(-4, 4)] * 3), axis=st.integers(0, 2), index=st.integers(0, 11),
       order=st.sampled_from([0, 1]))
def test_the_separable_path_agrees_with_map_coordinates(perm, flips, scale, shift, axis, index, order):
    """Axis-aligned overlays (any axis order, flips, scales) take a separable fast path; it
    must give what the general map_coordinates path gives."""
    base = _base((16, 14, 12), (1.0, 0.8, 1.5))
    rng = np.random.default_rng(1)
    oshape = (7, 9, 6)
    data = rng.random(oshape).astype(np.float32)
    if order == 0:
        data = (data > 0.5).astype(np.uint8)
    lin = np.zeros((4, 4))
    lin[3, 3] = 1
    for o_axis, w_axis in enumerate(perm):  # overlay axis o runs along world axis w
        lin[w_axis, o_axis] = (-1 if flips[o_axis] else 1) * scale[o_axis]
    lin[:3, 3] = shift
    ovl = Volume(data, lin)
    got = sample_plane(ovl, base, axis, index, order=order, cval=-1)
    m = plane_voxel_to_overlay(base, ovl)
    want = _sample_general(ovl, base, axis, index, m, order, -1)
    if order == 0:  # a point exactly half-way between two voxels may round either way
        a, b = PLANE_AXES[axis]
        grid = np.zeros((base.shape[a], base.shape[b], 4))
        grid[..., a] = np.arange(base.shape[a])[:, None]
        grid[..., b] = np.arange(base.shape[b])[None, :]
        grid[..., axis] = index
        grid[..., 3] = 1
        frac = np.abs((grid @ m.T)[..., :3] % 1 - 0.5)
        clear = np.all(frac > 1e-6, axis=-1)
        np.testing.assert_array_equal(got[clear], want[clear])
    else:
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("shift", [(0, 0, 0), (3, -2, 1), (-5, 4, -2)])
def test_a_mask_on_its_image_grid_shifted_by_whole_voxels_is_copied_as_a_block(axis, shift):
    """Same spacing and no flip take a block copy; it must agree with the general path,
    also where the mask covers only part of the plane."""
    base = _base((16, 14, 12), (1.0, 0.8, 1.5))
    rng = np.random.default_rng(2)
    mask = Volume((rng.random((9, 11, 7)) > 0.5).astype(np.uint8), base.affine @ _translate(*shift))
    m = plane_voxel_to_overlay(base, mask)
    for index in range(base.shape[axis]):
        got = sample_plane(mask, base, axis, index, order=0, cval=-1)
        np.testing.assert_array_equal(got, _sample_general(mask, base, axis, index, m, 0, -1))

