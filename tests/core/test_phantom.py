import numpy as np
import pytest
from scipy import ndimage

import vol3d_gui.core.phantom as phantom_mod
from vol3d_gui.core.phantom import lesion_phantom, phantom_arrays, phantom_study

SMALL = (64, 64, 40)
# the demo's field of view (128 x 128 x 144 mm) on a coarse, quick grid
DEMO_FOV_COARSE = dict(shape=(64, 64, 48), spacing=(2.0, 2.0, 3.0))


def test_deterministic_per_seed():
    a, ma = lesion_phantom(3, True, SMALL)
    b, mb = lesion_phantom(3, True, SMALL)
    c, _ = lesion_phantom(4, True, SMALL)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(ma.data, mb.data)
    assert not np.array_equal(a.data, c.data)


def test_hu_ranges_are_ct_like():
    vol, _ = lesion_phantom(1, False, SMALL)
    assert vol.dtype == np.int16
    d = vol.data
    assert d.min() <= -950  # air
    assert d.max() >= 500  # bone
    body = d > -500
    assert 0.25 < body.mean() < 0.8
    assert abs(np.median(d[body])) < 120  # mostly soft tissue
    # noise, not piecewise-flat regions: air far from the body still varies by ~12 HU
    corner = d[:6, :6, :].astype(float)
    assert 6 < corner.std() < 20


def test_geometry_is_ras_and_centred():
    """Asymmetric anatomy pins the orientation: liver on the patient's right (+x),
    spine posterior (-y), lung bases superior (+z); the body sits at world (0, 0, 0)."""
    vol, _ = lesion_phantom(5, False, noise_hu=0, **DEMO_FOV_COARSE)
    np.testing.assert_allclose(vol.spacing, (2.0, 2.0, 3.0))
    np.testing.assert_allclose(vol.center_world, 0.0, atol=1e-9)
    d = vol.data

    def centroid(sel):
        return vol.voxel_to_world(np.argwhere(sel).mean(axis=0))

    liver = centroid((d >= 55) & (d <= 65))
    bone = centroid(d > 500)
    # lungs: air-like voxels enclosed by the body in their axial slice
    body_filled = np.stack([ndimage.binary_fill_holes(d[:, :, k] > -500) for k in range(d.shape[2])], axis=2)
    lung = centroid(body_filled & (d < -500))
    assert liver[0] > 10
    assert bone[1] < -10 and abs(bone[0]) < 3
    assert lung[2] > 20
    body = centroid(d > -500)
    assert np.all(np.abs(body[:2]) < 8)


def test_organs_vary_between_seeds():
    livers = []
    for seed in range(4):
        d = lesion_phantom(seed, False, noise_hu=0, **DEMO_FOV_COARSE)[0].data
        livers.append(np.argwhere((d >= 55) & (d <= 65)).mean(axis=0))
    spread = np.ptp(np.array(livers), axis=0)
    assert spread.max() > 1.0  # voxels: the layout is not one template


@pytest.mark.parametrize("shape, spacing", [((64, 64, 48), (2.0, 2.0, 3.0)), (SMALL, (1.0, 1.0, 1.5))])
@pytest.mark.parametrize("seed", range(6))
def test_lesion_lies_in_soft_tissue_and_the_mask_is_what_changed(seed, shape, spacing):
    vol, mask = lesion_phantom(seed, True, shape, spacing, noise_hu=0)
    base, none = lesion_phantom(seed, False, shape, spacing, noise_hu=0)
    assert none is None
    assert mask is not None and mask.shape == vol.shape and mask.dtype == np.uint8
    np.testing.assert_array_equal(mask.affine, vol.affine)
    m = mask.data.astype(bool)
    assert m.sum() >= 1
    # never in air, lung or bone: the lesion-free image there is soft tissue or fat
    assert np.all((base.data[m] > -300) & (base.data[m] < 300))
    diff = vol.data.astype(np.int32) - base.data
    # the only change is the lesion (the smoothing kernel reaches one voxel)
    assert not np.any(diff[~ndimage.binary_dilation(m, np.ones((3, 3, 3), bool))])
    core = ndimage.binary_erosion(m)
    if core.any():
        assert 45 <= np.abs(diff[core]).mean() <= 85
    # the lesion's metadata and its mask agree on where it is
    centre = vol.voxel_to_world(np.argwhere(m).mean(axis=0))
    assert np.linalg.norm(centre - mask.meta["lesion_center_mm"]) < 3 * max(spacing)
    assert vol.meta["lesion_organ"] in ("liver", "left kidney", "right kidney")


def test_lesion_size_and_contrast_sign_follow_the_spec():
    radii, signs = [], []
    for seed in range(12):
        vol, mask = lesion_phantom(seed, True, noise_hu=0, **DEMO_FOV_COARSE)
        radii.append(max(mask.meta["lesion_radii_mm"]))
        signs.append(np.sign(mask.meta["lesion_delta_hu"]))
        assert 50 <= abs(mask.meta["lesion_delta_hu"]) <= 80
    assert max(radii) <= 14.0 * 1.2 + 1e-6 and min(radii) >= 3.0
    assert {-1.0, 1.0} <= set(signs)  # both hypo- and hyperdense lesions occur


def test_with_and_without_lesion_share_anatomy_and_noise():
    with_l, mask = lesion_phantom(11, True, SMALL)
    without, _ = lesion_phantom(11, False, SMALL)
    far = ~ndimage.binary_dilation(mask.data.astype(bool), np.ones((3, 3, 3), bool))
    np.testing.assert_array_equal(with_l.data[far], without.data[far])


@pytest.mark.parametrize("seed", range(5))
def test_contrast_scales_the_lesion(seed):
    full, mask = lesion_phantom(seed, True, SMALL, contrast=1.0, noise_hu=0)
    faint, _ = lesion_phantom(seed, True, SMALL, contrast=0.3, noise_hu=0)
    m = mask.data.astype(bool)
    # the lesion's difference from the lesion-free phantom scales with contrast
    base, _ = lesion_phantom(seed, False, SMALL, noise_hu=0)
    d_full = np.abs(full.data[m].astype(float) - base.data[m]).mean()
    d_faint = np.abs(faint.data[m].astype(float) - base.data[m]).mean()
    assert d_full > 30 and d_faint == pytest.approx(0.3 * d_full, rel=0.25)
    np.testing.assert_array_equal(mask.data, lesion_phantom(seed, True, SMALL, contrast=0.3)[1].data)


def test_coarse_mask_covers_the_same_lesion():
    vol, fine = lesion_phantom(2, True, SMALL)
    _, coarse = lesion_phantom(2, True, SMALL, mask_spacing=(4.0, 4.0, 6.0))
    assert coarse.shape != fine.shape
    np.testing.assert_allclose(coarse.spacing, (4.0, 4.0, 6.0))
    centroid_fine = vol.voxel_to_world(np.argwhere(fine.data).mean(axis=0))
    centroid_coarse = coarse.voxel_to_world(np.argwhere(coarse.data).mean(axis=0))
    np.testing.assert_allclose(centroid_fine, centroid_coarse, atol=4.0)


def test_study_items_are_lazy_and_labelled(monkeypatch):
    calls = []
    real = phantom_mod.lesion_phantom
    monkeypatch.setattr(phantom_mod, "lesion_phantom", lambda *a, **k: calls.append(a) or real(*a, **k))
    phantom_mod._cached.cache_clear()
    study = phantom_study(n=10, seed=0, shape=SMALL)
    assert calls == []  # building the study generates nothing
    assert len(study) == 10 and study.class_names == ["no lesion", "lesion"]
    assert sum(it.label for it in study) == 5
    for it in study.items[:4]:
        vol, mask = it.load(), it.load_mask()
        assert vol.shape == SMALL
        assert (mask is not None) == bool(it.label)
        if mask is not None:
            assert mask.data.any() and np.array_equal(mask.affine, vol.affine)
    assert len({it.id for it in study}) == 10
    assert study.by_id(study[3].id) is study[3]
    with pytest.raises(ValueError):  # loads share one cached array: it refuses writes
        study[0].load().data[0, 0, 0] = 1


def test_study_is_deterministic_and_splits_are_stratified():
    a, b = phantom_study(n=20, seed=4, shape=SMALL), phantom_study(n=20, seed=4, shape=SMALL)
    assert [(i.id, i.label, i.split) for i in a] == [(i.id, i.label, i.split) for i in b]
    np.testing.assert_array_equal(a[7].load().data, b[7].load().data)
    for split in ("train", "val", "test"):
        assert {it.label for it in a.split(split)} == {0, 1}
    assert [it.split for it in a].count("train") == 12
    assert a.source != phantom_study(n=20, seed=4, shape=SMALL, contrast=0.4).source


def test_study_rejects_nonsense():
    with pytest.raises(ValueError):
        phantom_study(n=0)
    with pytest.raises(ValueError):
        phantom_study(n=4, lesion_fraction=1.5)


def test_phantom_arrays():
    x, y = phantom_arrays(6, seed=1, shape=(32, 32, 24))
    assert x.shape == (6, 32, 32, 24) and x.dtype == np.int16 and set(y) <= {0, 1}
    x2, y2 = phantom_arrays(6, seed=1, shape=(32, 32, 24))
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)


@pytest.mark.parametrize("center, radii", [
    ((0.0, 0.0, 0.0), (10.0, 7.0, 20.0)),
    ((30.0, -31.0, 40.0), (9.0, 9.0, 30.0)),   # cut by the grid's edge
    ((200.0, 0.0, 0.0), (5.0, 5.0, 5.0)),      # wholly outside
    ((0.3, 0.2, 0.1), (0.2, 0.2, 0.2)),        # between voxel centres
])
def test_ellipsoid_bounding_box_equals_the_whole_grid_formula(center, radii):
    xyz = phantom_mod._grid((40, 36, 30), (2.0, 2.0, 3.0))
    x, y, z = xyz
    full = (((x - center[0]) / radii[0]) ** 2 + ((y - center[1]) / radii[1]) ** 2
            + ((z - center[2]) / radii[2]) ** 2) <= 1.0
    np.testing.assert_array_equal(phantom_mod._ellipsoid(xyz, center, radii), full)
