"""The model grid: where its voxels sit in the source volume, and the intensity specs."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vol3d_gui.core.volume import Volume, centered_affine
from vol3d_gui.ml.preprocess import (
    grid_affine,
    normalise,
    preprocess_array,
    preprocess_volume,
    resample_to_grid,
)


def _ramp_volume(shape=(40, 24, 12), spacing=(0.5, 1.0, 3.0)):
    """Intensity = 3*i + 5*j + 7*k (source voxel indices): linear, so a trilinear zoom
    reproduces it exactly wherever it interpolates (not at clamped edges)."""
    i, j, k = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    return Volume((3 * i + 5 * j + 7 * k).astype(np.int16), centered_affine(shape, spacing))


def test_model_voxel_i_sits_at_source_voxel_formula():
    vol = _ramp_volume()
    model_shape = (8, 6, 4)
    aff = grid_affine(vol, model_shape)
    src = np.asarray(vol.shape, float)
    for idx in [(0, 0, 0), (7, 5, 3), (3, 2, 1)]:
        expect_src = (np.asarray(idx) + 0.5) * src / np.asarray(model_shape) - 0.5
        world = aff @ [*idx, 1.0]
        np.testing.assert_allclose(world[:3], vol.voxel_to_world(expect_src), atol=1e-9)


def test_resampled_values_are_the_source_values_at_the_grid_affine_points():
    # the data path (zoom) and the geometry (grid_affine) must agree: this is what puts a
    # Grad-CAM map over the right anatomy
    vol = _ramp_volume()
    model_shape = (10, 8, 6)  # downsampling by 4, 3, 2
    out = resample_to_grid(vol.data, model_shape)
    aff = grid_affine(vol, model_shape)
    inv = np.linalg.inv(vol.affine)
    for idx in np.ndindex(*model_shape):
        src = (inv @ aff @ [*idx, 1.0])[:3]
        if np.all(src >= 0) and np.all(src <= np.asarray(vol.shape) - 1):
            assert out[idx] == pytest.approx(3 * src[0] + 5 * src[1] + 7 * src[2], abs=1e-3)


def test_grid_affine_upsampling_and_identity():
    vol = _ramp_volume((8, 8, 8), (1.0, 1.0, 1.0))
    np.testing.assert_allclose(grid_affine(vol, (8, 8, 8)), vol.affine)
    up = grid_affine(vol, (16, 16, 16))
    # two model voxels per source voxel: model 0 and 1 straddle source voxel 0's centre
    np.testing.assert_allclose((np.linalg.inv(vol.affine) @ up @ [0, 0, 0, 1])[:3], [-0.25] * 3)
    np.testing.assert_allclose((np.linalg.inv(vol.affine) @ up @ [1, 1, 1, 1])[:3], [0.25] * 3)


def test_resample_keeps_native_dtype_input_and_gives_float32():
    data = np.full((30, 20, 10), -1000, np.int16)
    out = resample_to_grid(data, (16, 16, 16))
    assert out.dtype == np.float32 and out.shape == (16, 16, 16)
    assert np.all(out == -1000)
    with pytest.raises(ValueError, match="3-D"):
        resample_to_grid(np.zeros((4, 4)), (4, 4, 4))


@settings(max_examples=60, deadline=None)
@given(src=st.tuples(*[st.integers(1, 23)] * 3), out=st.tuples(*[st.integers(1, 17)] * 3),
       dtype=st.sampled_from([np.int16, np.uint8, np.float32, np.float64]), seed=st.integers(0, 99))
def test_separable_resample_equals_scipy_zoom(src, out, dtype, seed):
    """Any shapes, up or down, any axis of one voxel: the samples of ndimage.zoom(order=1)."""
    from scipy import ndimage

    data = (np.random.default_rng(seed).random(src) * 2000 - 1000).astype(dtype)
    ref = ndimage.zoom(data, [t / s for t, s in zip(out, src)], output=np.float64, order=1,
                       mode="nearest", grid_mode=True)
    for got in (resample_to_grid(data, out),):
        assert got.shape == out == ref.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6 * 2000)


def test_normalisation_specs():
    hu = np.array([-1200, -1000, -300, 400, 900], np.float32)
    np.testing.assert_allclose(normalise(hu, {"type": "hu_window", "low": -1000, "high": 400}),
                               [0.0, 0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(normalise(np.array([0, 51, 255], np.uint8), {"type": "scale", "divisor": 255}),
                               [0.0, 0.2, 1.0])
    np.testing.assert_allclose(normalise(np.array([10, 20, 30.0]), {"type": "minmax"}), [0.0, 0.5, 1.0])
    assert np.all(normalise(np.full(4, 7.0), {"type": "minmax"}) == 0.0)  # flat: no division by 0
    assert np.all(np.isfinite(normalise(np.array([np.nan, 1.0, 2.0]), {"type": "minmax"})))
    with pytest.raises(ValueError, match="unknown"):
        normalise(hu, {"type": "zscore"})


def test_preprocess_volume_shape_and_range():
    vol = _ramp_volume()
    x = preprocess_volume(vol, (16, 16, 16), {"type": "minmax"})
    assert x.shape == (16, 16, 16, 1) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0


def test_probabilities_match_the_zoom_preprocessing_of_before():
    """The compiled resample changes no answer: every bundled model gives the probabilities it
    gave on scipy.ndimage.zoom's samples, within 1e-4, for C-ordered volumes and x-fastest ones
    (as the readers give them: the kernel's blocked writes across the output)."""
    import dataclasses
    from pathlib import Path

    from scipy import ndimage

    from vol3d_gui.core.phantom import lesion_phantom
    from vol3d_gui.ml.bundle import list_bundles, load_bundle
    from vol3d_gui.ml.preprocess import normalise

    bundles = [load_bundle(p) for p in list_bundles(Path(__file__).resolve().parents[2] / "models")
               if "-ft-" not in p.stem]
    assert bundles
    for seed, shape in ((0, (128, 128, 96)), (1, (61, 47, 33)), (2, (96, 96, 72))):
        vol, _ = lesion_phantom(seed, True, shape=shape)
        for bundle in bundles:
            target = bundle.input_shape
            zoomed = ndimage.zoom(np.asarray(vol.data), [t / s for t, s in zip(target, vol.shape)],
                                  output=np.float32, order=1, mode="nearest", grid_mode=True)
            before = bundle.forward(normalise(zoomed, bundle.preprocessing)[None, ..., None])[0]
            for data in (vol.data, np.asfortranarray(vol.data)):
                got = bundle.predict(dataclasses.replace(vol, data=data))
                np.testing.assert_allclose(got, before, atol=1e-4)


@pytest.mark.parametrize("shape", [(8, 8, 8), (4, 4, 6), (2, 3, 4)])
def test_preprocessing_never_writes_into_the_callers_array(shape):
    """The normalisation runs in place on the resampled array: it must be a new one even when
    no resampling is needed (a float32 volume already on the model grid)."""
    data = np.random.default_rng(0).random((8, 8, 8)).astype(np.float32) * 500
    kept = data.copy()
    for spec in ({"type": "hu_window", "low": 0.0, "high": 100.0}, {"type": "minmax"}):
        preprocess_array(data, shape, spec)
        np.testing.assert_array_equal(data, kept)


def _ball(n: int, radius: float, centre=None) -> np.ndarray:
    """A uint8 0/255 mask of a ball, as MedMNIST stores its segmentations."""
    c = np.asarray(centre if centre is not None else [(n - 1) / 2] * 3)
    i, j, k = np.meshgrid(*(np.arange(n),) * 3, indexing="ij")
    return ((((i - c[0]) ** 2 + (j - c[1]) ** 2 + (k - c[2]) ** 2) <= radius ** 2) * 255).astype(np.uint8)


@pytest.mark.parametrize("radius", [6.0, 10.0, 14.0])
def test_mask_depth_is_the_distance_to_the_edge_on_the_grid(radius):
    """A ball of radius r at 64^3 on a 48^3 grid: depth about r * 48/64 grid voxels at the
    centre (less half a voxel: the distance is to the nearest outside voxel's centre, on a grid
    of one-voxel steps), 0 outside, growing inwards, and nothing but the
    mask's shape matters (the same for an x-fastest array)."""
    from scipy import ndimage

    mask = _ball(64, radius)
    spec = {"type": "mask_depth", "divisor": 255.0, "scale": 16.0}
    x = preprocess_array(mask, (48, 48, 48), spec)[..., 0]
    assert x.dtype == np.float32 and x.min() == 0.0 and x.max() <= 1.0
    assert x.max() * 16 == pytest.approx(radius * 48 / 64 - 0.5, abs=1.0)
    inside = ndimage.zoom(mask.astype(np.float32) / 255, 48 / 64, order=1, grid_mode=True, mode="nearest") >= 0.5
    assert np.all(x[~inside] == 0) and np.all(x[inside] > 0)
    centre = x[24, 24, 24]
    assert centre > x[24, 24, 24 + int(radius * 0.4)] > x[24, 24, 24 + int(radius * 0.7)]
    np.testing.assert_array_equal(preprocess_array(np.asfortranarray(mask), (48, 48, 48), spec)[..., 0], x)


def test_mask_depth_tells_a_thick_limb_from_a_thin_one_of_the_same_extent():
    """What the map is for: two slabs of the same size in the plane, 4 and 12 voxels thick; on
    the mask their largest value is the same (1), on the depth map it is 3x apart."""
    thin = np.zeros((64, 64, 64), np.uint8)
    thick = np.zeros((64, 64, 64), np.uint8)
    thin[10:54, 10:54, 30:34] = 255
    thick[10:54, 10:54, 26:38] = 255
    spec = {"type": "mask_depth", "divisor": 255.0, "scale": 8.0}
    a = preprocess_array(thin, (64, 64, 64), spec).max() * 8
    b = preprocess_array(thick, (64, 64, 64), spec).max() * 8
    assert a == pytest.approx(2.0, abs=0.6) and b == pytest.approx(6.0, abs=0.6)


def test_mask_depth_clips_at_its_scale_and_is_zero_for_an_empty_mask():
    spec = {"type": "mask_depth", "divisor": 255.0, "scale": 2.0}
    assert preprocess_array(_ball(32, 12.0), (32, 32, 32), spec).max() == 1.0
    assert not preprocess_array(np.zeros((20, 20, 20), np.uint8), (16, 16, 16), spec).any()
    with pytest.raises(ValueError, match="not an intensity map"):
        normalise(np.zeros(3), spec)
