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
