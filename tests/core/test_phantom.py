import numpy as np
import pytest

from vol3d_gui.core.phantom import lesion_phantom, phantom_arrays, phantom_study

SMALL = (64, 64, 40)


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


def test_lesion_inside_the_body_and_mask_matches():
    vol, mask = lesion_phantom(7, True, SMALL)
    assert mask is not None and mask.shape == vol.shape and mask.dtype == np.uint8
    inside = mask.data.astype(bool)
    assert inside.sum() > 50
    assert np.all(vol.data[inside] > -300)  # never in air or lung
    assert lesion_phantom(7, False, SMALL)[1] is None


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


def test_coarse_mask_covers_the_same_lesion():
    vol, fine = lesion_phantom(2, True, SMALL)
    _, coarse = lesion_phantom(2, True, SMALL, mask_spacing=(4.0, 4.0, 6.0))
    assert coarse.shape != fine.shape
    centroid_fine = vol.voxel_to_world(np.argwhere(fine.data).mean(axis=0))
    centroid_coarse = coarse.voxel_to_world(np.argwhere(coarse.data).mean(axis=0))
    np.testing.assert_allclose(centroid_fine, centroid_coarse, atol=4.0)


def test_study_items_are_lazy_and_labelled():
    study = phantom_study(n=10, seed=0, shape=SMALL)
    assert len(study) == 10 and study.class_names == ["no lesion", "lesion"]
    assert sorted({it.split for it in study}) == ["test", "train", "val"]
    assert sum(it.label for it in study) == 5
    for it in study.items[:4]:
        vol, mask = it.load(), it.load_mask()
        assert vol.shape == SMALL
        assert (mask is not None) == bool(it.label)
    assert len({it.id for it in study}) == 10


def test_phantom_arrays():
    x, y = phantom_arrays(6, seed=1, shape=(32, 32, 24))
    assert x.shape == (6, 32, 32, 24) and x.dtype == np.int16 and set(y) <= {0, 1}
