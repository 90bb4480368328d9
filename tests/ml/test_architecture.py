import numpy as np
import pytest

from vol3d_gui.ml.architecture import GRADCAM_LAYER, build_classifier


@pytest.mark.parametrize("stem_stride,pooling", [(1, "avg"), (2, "avg"), (2, "max")])
def test_classifier_shapes_and_gradcam_layer(stem_stride, pooling):
    import keras

    model = build_classifier((16, 16, 24), 3, width=2, stem_stride=stem_stride, pooling=pooling)
    assert model.input_shape == (None, 16, 16, 24, 1)
    assert model.output_shape == (None, 3)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv3D)]
    assert convs[-1].name == GRADCAM_LAYER
    # the Grad-CAM grid is 1/8 of the input whichever the stem
    assert tuple(model.get_layer(GRADCAM_LAYER).output.shape[1:4]) == (2, 2, 3)
    assert [c.filters for c in convs] == [2, 2, 4, 8]
    p = np.asarray(model(np.zeros((2, 16, 16, 24, 1), np.float32), training=False))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)


def test_binary_model_has_two_outputs_and_bad_arguments_are_refused():
    assert build_classifier((8, 8, 8), 2, width=2).output_shape == (None, 2)
    with pytest.raises(ValueError):
        build_classifier((8, 8, 8), 1)
    with pytest.raises(ValueError):
        build_classifier((8, 8, 8), 2, stem_stride=3)
    with pytest.raises(ValueError):
        build_classifier((8, 8, 8), 2, pooling="median")


def test_cam_head_scores_are_the_spatial_mean_of_the_gradcam_layer_evidence():
    # what makes the cam head explainable: the class score difference is the average over
    # the Grad-CAM grid of each location's weighted activations, with nothing in between
    import keras

    keras.utils.set_random_seed(3)
    model = build_classifier((16, 16, 24), 2, width=2, head="cam", stem_stride=2)
    layer = model.get_layer(GRADCAM_LAYER)
    assert tuple(layer.output.shape[1:]) == (2, 2, 3, 8)  # the same 1/8 grid as the dense head
    probe = keras.Model(model.inputs, [layer.output, model.output])
    x = np.random.default_rng(0).random((3, 16, 16, 24, 1)).astype(np.float32)
    acts, probs = (np.asarray(t, np.float64) for t in probe(x, training=False))
    w, b = (np.asarray(v, np.float64) for v in model.get_layer("probabilities").get_weights())
    evidence = np.einsum("ndhwc,c->ndhw", acts, w[:, 1] - w[:, 0])
    np.testing.assert_allclose(np.log(probs[:, 1] / probs[:, 0]), evidence.mean(axis=(1, 2, 3)) + b[1] - b[0],
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError):
        build_classifier((8, 8, 8), 2, head="cam", pooling="max")
    with pytest.raises(ValueError):
        build_classifier((8, 8, 8), 2, head="wide")


@pytest.mark.parametrize("head", ["cam", "dense"])
def test_cam_stride_4_halves_the_grad_cam_cell_with_the_same_weights(head):
    import keras

    fine = build_classifier((48, 48, 48), 2, width=2, head=head, stem_stride=2, cam_stride=4, cam_dilation=2)
    coarse = build_classifier((48, 48, 48), 2, width=2, head=head, stem_stride=2)
    assert tuple(fine.get_layer(GRADCAM_LAYER).output.shape[1:4]) == (12, 12, 12)
    assert tuple(coarse.get_layer(GRADCAM_LAYER).output.shape[1:4]) == (6, 6, 6)
    assert fine.count_params() == coarse.count_params()  # a finer map, not a bigger network
    conv = [la for la in fine.layers if isinstance(la, keras.layers.Conv3D)][-1]
    assert tuple(conv.dilation_rate) == (2, 2, 2)  # the receptive field of the stride-8 network
    with pytest.raises(ValueError):
        build_classifier((8, 8, 8), 2, cam_stride=2)


def test_resnet_trunk_keeps_the_grad_cam_grid_and_trains_saves_and_explains(tmp_path, rng):
    # the --arch resnet option end to end: one training step, a bundle written and read back
    # in safe mode with the same outputs, and a Grad-CAM map on the 1/8 grid
    from vol3d_gui.ml.bundle import load_bundle, save_bundle
    from vol3d_gui.ml.gradcam import gradcam_tensors
    from vol3d_gui.ml.training import predict_arrays, train_model

    for stem_stride in (1, 2):
        model = build_classifier((16, 16, 24), 2, width=2, arch="resnet", stem_stride=stem_stride)
        assert tuple(model.get_layer(GRADCAM_LAYER).output.shape[1:]) == (2, 2, 3, 8)
    assert any(type(la).__name__ == "Add" for la in model.layers)  # residual, not plain
    x = rng.random((8, 16, 16, 24, 1)).astype(np.float32)
    y = np.array([0, 1] * 4)
    before = [w.copy() for w in model.get_weights()]
    train_model(model, x, y, epochs=1, batch_size=8)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    card = {"name": "r", "class_names": ["a", "b"], "input_shape": [16, 16, 24],
            "preprocessing": {"type": "scale", "divisor": 1.0}, "gradcam_layer": GRADCAM_LAYER}
    again = load_bundle(save_bundle(model, card, tmp_path / "r.keras"))
    np.testing.assert_allclose(predict_arrays(again.model, x), predict_arrays(model, x), atol=1e-6)
    cams, _, _ = gradcam_tensors(again, x[:2])
    assert cams.shape == (2, 2, 2, 3) and np.isfinite(cams).all()
    with pytest.raises(ValueError):
        build_classifier((16, 16, 16), 2, arch="resnet", head="cam")
    with pytest.raises(ValueError):
        build_classifier((16, 16, 16), 2, arch="densenet")


def _reference_profile(mask: np.ndarray, steps: int) -> list[int]:
    """Voxel counts after alternating 6- and 26-neighbourhood binary erosions (scipy)."""
    from scipy import ndimage

    counts, m = [int(mask.sum())], mask.astype(bool)
    for k in range(1, steps + 1):
        structure = ndimage.generate_binary_structure(3, 1 if k % 2 else 3)
        m = ndimage.binary_erosion(m, structure)
        counts.append(int(m.sum()))
    return counts


def test_erosion_profile_counts_the_voxels_at_each_depth_of_a_mask():
    import keras

    model = build_classifier((24, 24, 24), 2, width=2, shape_features=5)
    raw = keras.Model(model.inputs, model.get_layer("shape_profile").output)  # before its BatchNorm
    g = np.indices((24, 24, 24)) - 12
    ellipsoid = ((g[0] / 7.0) ** 2 + (g[1] / 4.0) ** 2 + (g[2] / 9.0) ** 2 <= 1).astype(np.float32)
    slab = np.zeros((24, 24, 24), np.float32)
    slab[4:20, 10:13, 4:20] = 1  # a thin plate: three voxels thick, gone after two erosions
    for mask in (ellipsoid, slab):
        got = -np.asarray(raw(mask[None, ..., None]))[0] * mask.size
        np.testing.assert_allclose(got, _reference_profile(mask, 5), atol=1e-3)


def test_shape_features_reach_the_head_and_survive_a_safe_mode_reload(tmp_path):
    import keras

    from vol3d_gui.ml.bundle import load_bundle, save_bundle
    from vol3d_gui.ml.training import predict_arrays

    keras.utils.set_random_seed(1)
    model = build_classifier((16, 16, 16), 2, width=2, shape_features=3)
    assert model.get_layer("with_shape").output.shape[-1] == 8 + 4  # GAP features + 4 means
    # two masks with the same convolution input statistics would still differ in thickness:
    # the head's input changes when only the mask's thickness does
    head_in = keras.Model(model.inputs, model.get_layer("with_shape").output)
    thin, thick = np.zeros((2, 16, 16, 16, 1), np.float32), np.zeros((2, 16, 16, 16, 1), np.float32)
    thin[:, 4:12, 7:9, 4:12] = 1
    thick[:, 4:12, 6:10, 4:12] = 1
    a, b = np.asarray(head_in(thin)), np.asarray(head_in(thick))
    assert not np.allclose(a[:, -4:], b[:, -4:])
    card = {"name": "s", "class_names": ["a", "b"], "input_shape": [16, 16, 16],
            "preprocessing": {"type": "scale", "divisor": 1.0}, "gradcam_layer": GRADCAM_LAYER}
    again = load_bundle(save_bundle(model, card, tmp_path / "s.keras"))
    x = np.concatenate([thin, thick])
    np.testing.assert_allclose(predict_arrays(again.model, x), predict_arrays(model, x), atol=1e-6)
    with pytest.raises(ValueError):
        build_classifier((16, 16, 16), 2, shape_features=-1)
