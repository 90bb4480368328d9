"""The foreground mask finds the body, the saliency map is restricted to it, and the crosshair
only jumps to a peak inside the body of an in-domain case."""

import numpy as np
import pytest

from vol3d_gui.core.foreground import (
    crosshair_target,
    foreground_mask,
    inside,
    mask_saliency,
    otsu_threshold,
    saliency_peak,
)
from vol3d_gui.core.phantom import lesion_phantom
from vol3d_gui.core.volume import Volume, centered_affine


def test_otsu_splits_two_populations():
    rng = np.random.default_rng(0)
    v = np.r_[rng.normal(-1000, 20, 5000), rng.normal(40, 20, 3000)]
    assert -900 < otsu_threshold(v) < -50


def test_mask_of_a_phantom_is_its_body_with_lungs_filled():
    vol, _ = lesion_phantom(3, False)
    mask = foreground_mask(vol)
    assert max(mask.shape) <= 64 and mask.dtype == np.uint8
    # compare with the phantom's own tissue (anything denser than -500 HU), on the mask's grid
    steps = mask.meta["steps"]
    tissue = vol.data[:: steps[0], :: steps[1], :: steps[2]] > -500
    m = mask.data.astype(bool)
    assert (m & tissue).sum() / tissue.sum() > 0.97  # the whole body is in the mask
    assert (m & ~tissue).sum() / m.sum() < 0.15  # lungs and fat rim, not the air around it
    # the corners of the field of view are air, the centre is body (asymmetric: +x is the liver)
    assert not m[0, 0, 0] and not m[-1, -1, -1] and m[tuple(s // 2 for s in m.shape)]
    # world placement: the mask's affine maps its voxels onto the same points of the volume
    ijk = np.array([10, 20, 5])
    np.testing.assert_allclose(mask.voxel_to_world(ijk), vol.voxel_to_world(ijk * np.asarray(steps)))


def test_mask_of_a_large_volume_never_exceeds_the_small_grid():
    vol = Volume(np.zeros((300, 200, 130), np.int16), centered_affine((300, 200, 130), (0.7, 0.7, 2.0)))
    vol.data[100:200, 50:150, 30:100] = 500
    mask = foreground_mask(vol)
    assert max(mask.shape) <= 64
    assert inside(mask, vol.voxel_to_world([150, 100, 65]))
    assert not inside(mask, vol.voxel_to_world([20, 20, 10]))
    assert not inside(mask, [1e4, 0, 0])  # outside the grid


def _cam_with_peak_at(vol, ijk_peak, shape=(6, 6, 6)):
    """A coarse saliency map over ``vol``'s field of view with one hot cell."""
    f = np.asarray(vol.shape, float) / np.asarray(shape, float)
    affine = vol.affine @ np.diag([*f, 1.0])
    affine[:3, 3] = vol.voxel_to_world(0.5 * f - 0.5)
    cam = np.zeros(shape, np.float32)
    cam[2:4, 2:4, 2:4] = 0.5  # evidence in the body
    cam[ijk_peak] = 1.0
    return Volume(cam, affine, name="Grad-CAM", meta={"kind": "saliency"})


def test_a_peak_in_the_air_is_masked_and_the_crosshair_stays():
    vol, _ = lesion_phantom(3, False)
    mask = foreground_mask(vol)
    cam = _cam_with_peak_at(vol, (0, 0, 0))  # a corner of the field of view: air
    assert not inside(mask, saliency_peak(cam))
    masked = mask_saliency(cam, mask)
    assert masked.shape == mask.shape and masked.data.max() == pytest.approx(1.0)
    assert masked.data[~mask.data.astype(bool)].max() == 0
    target = crosshair_target(masked, mask, in_domain=True)
    assert target is not None and inside(mask, target)
    # the new peak is the body's evidence, near the map's centre, not the corner
    assert np.linalg.norm(target - saliency_peak(cam)) > 50
    assert crosshair_target(masked, mask, in_domain=False) is None
    # the raw map's peak in the air is never a target
    assert crosshair_target(cam, mask, in_domain=True) is None


def test_an_all_zero_map_gives_no_target():
    vol, _ = lesion_phantom(3, False)
    mask = foreground_mask(vol)
    cam = _cam_with_peak_at(vol, (0, 0, 0))
    cam.data[:] = 0
    assert crosshair_target(mask_saliency(cam, mask), mask, in_domain=True) is None
