"""Grad-CAM: geometry (a Volume in the source's world space), export, class switching, and
whether it is right: the pointing game and the weight-randomisation sanity check."""


import numpy as np
import pytest
from scipy import ndimage
from scipy.stats import spearmanr

from vol3d_gui.core.io import load_volume, save_nifti
from vol3d_gui.core.phantom import lesion_phantom
from vol3d_gui.core.resample import sample_plane
from vol3d_gui.ml.bundle import ModelBundle, load_bundle
from vol3d_gui.ml.gradcam import gradcam, gradcam_batch

SMALL = (48, 48, 36)


def test_map_is_a_small_volume_over_the_source(tiny_bundle_path):
    bundle = load_bundle(tiny_bundle_path)
    vol, _ = lesion_phantom(1, True, SMALL, spacing=(2.0, 2.0, 3.0))
    sal = gradcam(bundle, vol)
    assert sal.dtype == np.float32 and sal.data.min() >= 0.0 and sal.data.max() <= 1.0
    layer_shape = bundle.model.get_layer(bundle.gradcam_layer).output.shape[1:4]
    assert sal.shape == tuple(layer_shape)
    # the map's grid covers the same field of view as the source (edges aligned)
    lo_s, hi_s = vol.bounds_world
    lo_m, hi_m = sal.bounds_world
    half_src, half_map = vol.spacing / 2, sal.spacing / 2
    np.testing.assert_allclose(lo_m - half_map, lo_s - half_src, atol=1e-6)
    np.testing.assert_allclose(hi_m + half_map, hi_s + half_src, atol=1e-6)
    assert sal.meta["kind"] == "saliency" and sal.meta["class_name"] in bundle.class_names


def test_explained_class_changes_the_map(tiny_bundle_path):
    bundle = load_bundle(tiny_bundle_path)
    vol, _ = lesion_phantom(2, True, SMALL)
    a, b = gradcam(bundle, vol, 0), gradcam(bundle, vol, 1)
    assert a.meta["class_index"] == 0 and b.meta["class_index"] == 1
    assert not np.allclose(a.data, b.data)
    batch = gradcam_batch(bundle, [vol, vol], [0, 1])
    np.testing.assert_allclose(batch[0][0].data, a.data, atol=1e-5)
    plus = gradcam(bundle, vol, 1, plus=True)
    assert plus.meta["method"] == "Grad-CAM++" and plus.shape == b.shape


def test_exported_nifti_sits_where_the_map_was(tiny_bundle_path, tmp_path):
    bundle = load_bundle(tiny_bundle_path)
    vol, _ = lesion_phantom(3, True, SMALL)
    sal = gradcam(bundle, vol)
    back = load_volume(save_nifti(sal, tmp_path / "sal.nii.gz"))
    np.testing.assert_allclose(back.affine, sal.affine, atol=1e-4)
    np.testing.assert_allclose(back.data, sal.data, atol=1e-6)
    # sampled on the source's own grid, both give the same picture
    k = vol.shape[2] // 2
    np.testing.assert_allclose(sample_plane(back, vol, 2, k), sample_plane(sal, vol, 2, k), atol=1e-5)


def test_cli_writes_the_map(tiny_bundle_path, tmp_path):
    from vol3d_gui.cli import main

    vol, _ = lesion_phantom(4, True, SMALL)
    src = save_nifti(vol, tmp_path / "ct.nii.gz")
    out = tmp_path / "sal.nii.gz"
    assert main(["gradcam", "--model", str(tiny_bundle_path), str(src), "-o", str(out), "--class", "lesion"]) == 0
    assert load_volume(out).meta is not None


def pointing_game(bundle, seeds, contrast=1.0):
    """Share of lesion phantoms whose saliency maximum falls in the lesion mask dilated by
    one voxel of the saliency grid; and the mean share of saliency mass inside the lesion."""
    hits, mass = [], []
    lesion = bundle.class_names.index("lesion")
    for seed in seeds:
        vol, mask = lesion_phantom(int(seed), True, contrast=contrast)
        sal = gradcam(bundle, vol, lesion)
        # the mask on the saliency grid: any lesion voxel inside a saliency voxel counts
        ijk = np.indices(sal.shape).reshape(3, -1).T
        centres = vol.world_to_voxel(sal.voxel_to_world(ijk))
        half = sal.spacing / vol.spacing / 2
        m = np.zeros(sal.shape, bool)
        for c, idx in zip(centres, ijk):
            lo = np.maximum(np.floor(c - half).astype(int), 0)
            hi = np.minimum(np.ceil(c + half).astype(int) + 1, vol.shape)
            m[tuple(idx)] = mask.data[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].any()
        dilated = ndimage.binary_dilation(m, iterations=1)
        top = np.unravel_index(np.argmax(sal.data), sal.shape)
        hits.append(bool(dilated[top]))
        mass.append(float(sal.data[m].sum() / max(sal.data.sum(), 1e-12)))
    return float(np.mean(hits)), float(np.mean(mass))


@pytest.mark.slow
def test_pointing_game_on_the_bundled_phantom_model(phantom_bundle):
    bundle = phantom_bundle
    seeds = np.random.default_rng(1234).integers(0, 2**31 - 1, 20)
    hit_rate, mass = pointing_game(bundle, seeds)
    assert hit_rate >= 0.9, f"pointing game {hit_rate:.0%} (mass inside {mass:.0%})"


@pytest.mark.slow
def test_randomised_weights_change_the_map(phantom_bundle):
    # Adebayo et al. 2018: with randomised weights the map must change
    import keras

    bundle = phantom_bundle
    seeds = np.random.default_rng(1234).integers(0, 2**31 - 1, 20)
    vol, _ = lesion_phantom(int(seeds[0]), True)
    trained = gradcam(bundle, vol, 1).data.ravel()
    keras.utils.set_random_seed(7)
    rnd = ModelBundle(keras.models.clone_model(bundle.model), bundle.card)  # fresh initial weights
    randomised = gradcam(rnd, vol, 1).data.ravel()
    rho = spearmanr(trained, randomised).statistic
    assert not np.isfinite(rho) or rho < 0.5, f"Spearman {rho:.2f}: the map ignores the weights"
