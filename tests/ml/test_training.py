import numpy as np
import pytest

from vol3d_gui.ml.architecture import build_classifier
from vol3d_gui.ml.bundle import load_bundle, save_bundle
from vol3d_gui.ml.datasets import load_npz_dataset
from vol3d_gui.ml.training import augment_volume, balanced_class_weight, predict_arrays, train_model


def test_tiny_model_trains_one_epoch_saves_and_reloads(adrenal28, tmp_path):
    ds = load_npz_dataset(adrenal28, (16, 16, 16), limit=48)
    tr, va = ds.splits["train"], ds.splits["val"]
    model = build_classifier((16, 16, 16), 2, width=4)
    batches = []
    hist = train_model(model, tr.x, tr.y, va.x, va.y, epochs=1, batch_size=16, class_weight="balanced",
                       augment=True, on_batch=lambda e, b, n, logs: batches.append((b, n)))
    assert batches == [(0, 3), (1, 3), (2, 3)]
    assert len(hist["epochs"]) == 1 and "val_auc" in hist["epochs"][0]
    card = {"name": "t", "class_names": ds.class_names, "input_shape": [16, 16, 16],
            "preprocessing": ds.preprocessing, "gradcam_layer": "gradcam_conv"}
    path = save_bundle(model, card, tmp_path / "t.keras")
    again = load_bundle(path)
    np.testing.assert_allclose(predict_arrays(again.model, va.x[:8]), predict_arrays(model, va.x[:8]), atol=1e-6)


def test_should_stop_ends_training_within_one_batch(rng):
    x = rng.random((40, 8, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 2, 40)
    model = build_classifier((8, 8, 8), 2, width=2)
    seen = []
    hist = train_model(model, x, y, epochs=5, batch_size=4, on_batch=lambda e, b, n, logs: seen.append(b),
                       should_stop=lambda: len(seen) >= 3)
    assert hist["stopped"] and len(seen) == 3


def test_balanced_class_weight():
    w = balanced_class_weight([0, 0, 0, 1], 2)
    assert w[1] == pytest.approx(3 * w[0])


def test_augmentation_keeps_range_and_shape(rng):
    x = rng.random((12, 12, 12, 1)).astype(np.float32)
    a = augment_volume(x, rng)
    assert a.shape == x.shape and a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1


def _write_nifti(path, arr):
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(arr, np.eye(4)), path)


def test_folder_dataset_from_class_subfolders(tmp_path, rng):
    from vol3d_gui.ml.datasets import load_folder_dataset

    for cls, level in (("healthy", 10), ("lesion", 200)):
        for i in range(10):
            _write_nifti(tmp_path / cls / f"case{i}.nii",
                         (rng.integers(0, 5, (12, 10, 8)) + level).astype(np.int16))
    ds = load_folder_dataset(tmp_path, (8, 8, 8), {"type": "hu_window", "low": 0, "high": 255}, seed=1)
    assert ds.class_names == ["healthy", "lesion"]
    sizes = {k: len(v.y) for k, v in ds.splits.items()}
    assert sizes == {"train": 14, "val": 4, "test": 2}  # 70/15/15 of 10 per class
    for split in ds.splits.values():
        # label follows the folder: the lesion class is the bright one
        assert np.all((split.x.mean(axis=(1, 2, 3, 4)) > 0.5) == (split.y == 1))
    again = load_folder_dataset(tmp_path, (8, 8, 8), {"type": "hu_window", "low": 0, "high": 255}, seed=1)
    assert again.content_hash == ds.content_hash and len(ds.content_hash) == 64


def test_folder_without_labels_is_refused(tmp_path, rng):
    from vol3d_gui.core.errors import VolumeReadError
    from vol3d_gui.ml.datasets import load_folder_dataset

    _write_nifti(tmp_path / "a.nii", rng.integers(0, 5, (8, 8, 8)).astype(np.int16))
    with pytest.raises(VolumeReadError, match="two classes"):
        load_folder_dataset(tmp_path, (8, 8, 8), {"type": "minmax"})


def test_batches_are_reproducible_and_cover_the_set(rng):
    from vol3d_gui.ml.training import _make_sequence

    x = rng.random((10, 6, 6, 6, 1)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[np.arange(10) % 2]
    a = _make_sequence(x, y, 4, True, 7, (0, 1, 2))
    b = _make_sequence(x, y, 4, True, 7, (0, 1, 2))
    assert len(a) == 3
    for i in (2, 0, 1):  # any order, as worker threads would fetch them
        np.testing.assert_array_equal(a[i][0], b[i][0])
    plain = _make_sequence(x, y, 4, False, 7, (0, 1, 2))
    seen = np.concatenate([plain[i][1].argmax(1) for i in range(3)])
    assert sorted(seen.tolist()) == sorted((np.arange(10) % 2).tolist())
    first = [plain[i][0].copy() for i in range(3)]
    plain.on_epoch_end()
    assert not all(np.array_equal(f, plain[i][0]) for i, f in enumerate(first))  # reshuffled


def test_training_with_augmentation_is_reproducible(rng):
    x = rng.random((24, 8, 8, 8, 1)).astype(np.float32)
    y = np.arange(24) % 2
    losses = []
    import keras

    for _ in range(2):
        keras.utils.set_random_seed(5)  # the initial weights
        model = build_classifier((8, 8, 8), 2, width=2)
        hist = train_model(model, x, y, x[:8], y[:8], epochs=2, batch_size=8, augment=True, seed=5)
        losses.append([e["loss"] for e in hist["epochs"]])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)


def test_paired_batches_keep_a_phantom_with_its_twin(rng):
    from vol3d_gui.ml.training import _make_sequence

    n = 12
    x = np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1, 1) * np.ones((1, 4, 4, 4, 1), np.float32)
    y = np.eye(2, dtype=np.float32)[np.arange(n) % 2]  # pairs (2k, 2k+1): lesion-free and lesion
    seq = _make_sequence(x, y, 4, False, 3, (0, 1, 2), group=2)
    for _epoch in range(3):
        ids = [seq[i][0][:, 0, 0, 0, 0].astype(int).tolist() for i in range(len(seq))]
        assert sorted(sum(ids, [])) == list(range(n))
        for batch in ids:
            assert all(v ^ 1 in batch for v in batch), batch  # each sample's twin is in its batch
        seq.on_epoch_end()
    with pytest.raises(ValueError, match="groups of 2"):
        _make_sequence(x[:11], y[:11], 4, False, 3, (0, 1, 2), group=2)


@pytest.mark.parametrize("ema", [True, False])
def test_the_kept_weights_are_the_ones_validated_at_the_best_epoch(rng, ema):
    # with the weight average swapped in for validation, the weights kept at the end must be
    # the average that scored best, not the raw weights of that epoch
    from vol3d_gui.ml.evaluation import binary_auc

    x = rng.random((32, 8, 8, 8, 1)).astype(np.float32)
    y = rng.permutation(np.array([0, 1] * 16))
    x[y == 1, 2:6, 2:6, 2:6] += 0.5  # something to learn, so the epochs differ
    model = build_classifier((8, 8, 8), 2, width=2)
    hist = train_model(model, x, y, x[:16], y[:16], epochs=4, batch_size=4, ema=ema, schedule="cosine",
                       weight_decay=1e-4, patience=10)
    assert model.optimizer.use_ema is ema
    best = hist["epochs"][hist["best_epoch"] - 1]
    assert binary_auc(y[:16], predict_arrays(model, x[:16])[:, 1]) == pytest.approx(best["val_auc"], abs=1e-6)


def test_refresh_batchnorm_sets_the_running_statistics_to_the_data_average(rng):
    import keras

    from vol3d_gui.ml.training import refresh_batchnorm

    model = build_classifier((16, 16, 16), 2, width=2, bn_momentum=0.9)
    x = rng.random((40, 16, 16, 16, 1)).astype(np.float32) * 3
    bn = model.get_layer("bn1")
    bn_in = keras.Model(model.inputs, model.get_layer("pool1").output)
    refresh_batchnorm(model, x, batch_size=8)  # five equal batches: their mean is the data's
    feats = np.asarray(bn_in(x)).reshape(5, -1, 2)
    np.testing.assert_allclose(np.asarray(bn.moving_mean), feats.reshape(-1, 2).mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(bn.moving_variance), feats.var(axis=1).mean(axis=0), rtol=1e-3)
    assert bn.momentum == 0.9  # restored
