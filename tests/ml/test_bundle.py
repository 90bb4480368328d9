import json
import zipfile

import numpy as np
import pytest

from vol3d_gui.core.phantom import lesion_phantom
from vol3d_gui.core.volume import Volume, centered_affine
from vol3d_gui.ml.bundle import (
    ModelBundle,
    ModelError,
    list_bundles,
    load_bundle,
    next_version_path,
    save_bundle,
)
from vol3d_gui.ml.preprocess import grid_affine, preprocess_volume

SMALL = (48, 48, 36)


def test_predict_equals_raw_keras_on_the_same_input(tiny_bundle_path):
    bundle = load_bundle(tiny_bundle_path)
    vol, _ = lesion_phantom(1, True, SMALL)
    x = preprocess_volume(vol, bundle.input_shape, bundle.preprocessing)
    raw = np.asarray(bundle.model(x[None], training=False))[0]
    probs = bundle.predict(vol)
    np.testing.assert_allclose(probs, raw, rtol=1e-5, atol=1e-6)
    assert probs.shape == (2,) and probs.sum() == pytest.approx(1.0, abs=1e-5)
    batch = bundle.predict_batch([vol, lambda: vol], batch_size=2)
    np.testing.assert_allclose(batch[0], probs, atol=1e-5)
    np.testing.assert_allclose(batch[1], probs, atol=1e-5)


def test_predict_batch_stops_when_asked(tiny_bundle_path):
    bundle = load_bundle(tiny_bundle_path)
    vol, _ = lesion_phantom(1, False, SMALL)
    seen = []
    out = bundle.predict_batch([vol] * 5, batch_size=1, progress=lambda d, t: seen.append(d),
                               should_stop=lambda: len(seen) >= 2)
    assert len(out) == 2 and seen == [1, 2]


def test_grid_affine_places_model_voxels_at_the_right_world_points():
    vol = Volume(np.zeros((40, 20, 10), np.int16), centered_affine((40, 20, 10), (0.5, 1.0, 3.0)))
    aff = grid_affine(vol, (8, 4, 2))
    # model voxel 0 covers source voxels 0..4 (edge-aligned): its centre is source index 2
    np.testing.assert_allclose(aff[:3, :3] @ [0, 0, 0] + aff[:3, 3], vol.voxel_to_world([2, 2, 2]))
    # model voxel edges coincide with source edges: last model voxel centre = source 37
    np.testing.assert_allclose(aff[:3, :3] @ [7, 3, 1] + aff[:3, 3], vol.voxel_to_world([37, 17, 7]))


def test_bundles_are_never_overwritten_and_versions_are_numbered(tiny_bundle_path, tmp_path):
    bundle = load_bundle(tiny_bundle_path)
    with pytest.raises(ModelError, match="never overwritten"):
        save_bundle(bundle.model, bundle.card, tiny_bundle_path)
    nxt = next_version_path(tmp_path, "tiny")
    assert nxt.name == "tiny-ft-1.keras"
    save_bundle(bundle.model, {**bundle.card, "parent": "tiny v1"}, nxt)
    assert next_version_path(tmp_path, "tiny").name == "tiny-ft-2.keras"
    assert nxt in list_bundles(tmp_path)
    assert not list(tmp_path.glob(".tmp-*"))


def test_garbage_model_file(tmp_path, tiny_bundle_path):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"this is not a model" * 10)
    (tmp_path / "bad.json").write_text(tiny_bundle_path.with_suffix(".json").read_text())
    with pytest.raises(ModelError, match="not a Keras model"):
        load_bundle(bad)


def test_zip_that_is_not_keras(tmp_path, tiny_bundle_path):
    bad = tmp_path / "zip.keras"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("hello.txt", "hi")
    (tmp_path / "zip.json").write_text(tiny_bundle_path.with_suffix(".json").read_text())
    with pytest.raises(ModelError, match="cannot load"):
        load_bundle(bad)


def test_missing_card_and_mismatched_card(tmp_path, tiny_bundle_path):
    model = tmp_path / "m.keras"
    model.write_bytes(tiny_bundle_path.read_bytes())
    with pytest.raises(ModelError, match="card"):
        load_bundle(model)
    card = json.loads(tiny_bundle_path.with_suffix(".json").read_text())
    for change, match in (({"input_shape": [32, 32, 32]}, "input"),
                          ({"class_names": ["a", "b", "c"]}, "outputs"),
                          ({"gradcam_layer": "nope"}, "gradcam_layer"),
                          ({"gradcam_layer": "probabilities"}, "not a 3-D feature map")):
        (tmp_path / "m.json").write_text(json.dumps({**card, **change}))
        with pytest.raises(ModelError, match=match):
            load_bundle(model)


def test_safe_mode_refuses_lambda_layers(tmp_path):
    import keras

    inp = keras.Input((4, 4, 4, 1))
    out = keras.layers.Lambda(lambda t: t * 2)(inp)
    out = keras.layers.Conv3D(2, 1, name="gradcam_conv")(out)
    out = keras.layers.GlobalAveragePooling3D()(out)
    model = keras.Model(inp, out)
    path = tmp_path / "lam.keras"
    model.save(path)
    (tmp_path / "lam.json").write_text(json.dumps({"name": "lam", "class_names": ["a", "b"],
                                                   "input_shape": [4, 4, 4], "preprocessing": {"type": "minmax"},
                                                   "gradcam_layer": "gradcam_conv"}))
    with pytest.raises(ModelError, match="cannot load"):
        load_bundle(path)


def test_bundle_paths_accept_file_card_stem_and_folder(tmp_path):
    from vol3d_gui.ml.bundle import bundle_paths

    expect = (tmp_path / "liver.v2.keras", tmp_path / "liver.v2.json")
    for given in ("liver.v2.keras", "liver.v2.json", "liver.v2"):
        assert bundle_paths(tmp_path / given) == expect
    (tmp_path / "liver.v2.keras").write_bytes(b"")
    assert bundle_paths(tmp_path) == expect
    (tmp_path / "other.keras").write_bytes(b"")
    with pytest.raises(ModelError, match="one .keras"):
        bundle_paths(tmp_path)


def test_load_by_stem_and_card_fields(tiny_bundle_path):
    bundle = load_bundle(tiny_bundle_path.with_suffix(""))
    assert bundle.path == tiny_bundle_path
    assert bundle.input_shape == (16, 16, 12) and bundle.gradcam_layer == "gradcam_conv"
    assert bundle.card["created"].endswith("+00:00")  # ISO, UTC
    assert {"keras", "tensorflow"} <= set(bundle.card["framework"])
    vol, _ = lesion_phantom(2, True, SMALL)
    assert bundle.preprocess(vol).shape == (16, 16, 12, 1)
    aff = bundle.grid_affine(vol)
    np.testing.assert_allclose(aff, grid_affine(vol, (16, 16, 12)))


def test_training_flips_come_from_the_card():
    card = {"name": "m", "class_names": ["a", "b"], "input_shape": [8, 8, 8], "gradcam_layer": "g",
            "preprocessing": {"type": "unit"}}
    assert ModelBundle(None, {**card, "training": {"augment": False, "flips": [0, 1, 2]}}).training_flips is None
    assert ModelBundle(None, {**card, "training": {"augment": True, "flips": [0]}}).training_flips == (0,)
    assert ModelBundle(None, card).training_flips is None  # no training record: no augmentation
