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
