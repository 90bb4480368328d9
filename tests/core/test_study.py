import io
import os

import nibabel as nib
import numpy as np
import pytest

from tests.core.io_fixtures import marker_volume, write_dicom_series
from vol3d_gui.core.errors import VolumeReadError
from vol3d_gui.core.study import open_study


def _fake_npz(path, n=(5, 2, 3), size=8, **override):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, k in zip(("train", "val", "test"), n):
        arrays[f"{split}_images"] = rng.integers(0, 255, (k, size, size, size), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 3, (k, 1))
    arrays.update(override)
    np.savez_compressed(path, **arrays)
    return arrays


@pytest.fixture
def npz_spy(monkeypatch):
    """Names of the arrays decoded from any .npz, in order: np.load itself is lazy."""
    decoded = []
    real = np.lib.npyio.NpzFile.__getitem__

    def spy(self, key):
        decoded.append(key)
        return real(self, key)

    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", spy)
    return decoded


def test_npz_study_matches_the_file(tmp_path):
    arrays = _fake_npz(tmp_path / "toy.npz")
    study = open_study(tmp_path / "toy.npz")
    assert len(study) == 10
    assert [it.split for it in study] == ["train"] * 5 + ["val"] * 2 + ["test"] * 3
    for it in study:
        split, index = it.id.split("/")
        assert it.split == split
        assert it.label == int(arrays[f"{split}_labels"][int(index), 0])
    item = study.by_id("test/2")
    vol = item.load()
    assert vol.dtype == np.uint8
    np.testing.assert_array_equal(vol.data, arrays["test_images"][2])
    np.testing.assert_allclose(vol.spacing, 1.0)
    np.testing.assert_allclose(vol.center_world, 0.0)
    assert study.class_names == ["class 0", "class 1", "class 2"]
    assert study.folder == tmp_path and study.source == str(tmp_path / "toy.npz")
    with pytest.raises(KeyError):
        study.by_id("test/9")


def test_npz_opening_decodes_no_images(tmp_path, npz_spy):
    _fake_npz(tmp_path / "toy.npz")
    study = open_study(tmp_path / "toy.npz")
    assert npz_spy and not any(k.endswith("_images") for k in npz_spy)
    npz_spy.clear()
    study[0].load()
    study[3].load()
    study[6].load()  # another split: only that split's array is decoded
    assert npz_spy == ["train_images", "val_images"]


def test_npz_with_channel_axis_and_item_ids_are_zero_padded(tmp_path):
    images = np.arange(12 * 4 * 4 * 4, dtype=np.uint8).reshape(12, 4, 4, 4, 1)
    np.savez(tmp_path / "ch.npz", test_images=images, test_labels=np.zeros((12, 1), int))
    study = open_study(tmp_path / "ch.npz")
    assert [it.id for it in study][:2] == ["test/00", "test/01"]
    vol = study.by_id("test/11").load()
    assert vol.shape == (4, 4, 4)
    np.testing.assert_array_equal(vol.data, images[11, ..., 0])


def test_real_medmnist_file(adrenal64, npz_spy):
    study = open_study(adrenal64)
    assert not any(k.endswith("_images") for k in npz_spy)
    assert study.class_names == ["normal", "hyperplasia"]
    with np.load(adrenal64) as raw:
        for split in ("train", "val", "test"):
            labels = raw[f"{split}_labels"].reshape(-1)
            items = study.split(split)
            assert len(items) == len(labels)
            assert [it.label for it in items] == labels.tolist()
    assert len(study.split("train")) == 1188 and len(study.split("test")) == 298  # as its README says
    vol = study.split("test")[0].load()
    assert vol.shape == (64, 64, 64) and vol.dtype == np.uint8


def test_vessel_class_names(vessel28):
    study = open_study(vessel28)
    assert study.class_names == ["vessel", "aneurysm"]
    assert len(study) == 1335 + 191 + 382


def _nifti(path, data=None):
    nib.save(nib.Nifti1Image(marker_volume() if data is None else data, np.eye(4)), path)


def test_folder_study_with_nifti_and_dicom(tmp_path):
    _nifti(tmp_path / "case10.nii.gz")
    _nifti(tmp_path / "case2.nii.gz")
    write_dicom_series(tmp_path / "case3", marker_volume().astype(float), description="abdomen")
    (tmp_path / "notes.txt").write_text("not a volume")
    study = open_study(tmp_path)
    names = [it.name for it in study]
    # natural order over files and series folders alike
    assert names[0] == "case2.nii.gz" and names[2] == "case10.nii.gz"
    assert names[1].startswith("case3/abdomen")
    dicom = study[1]
    assert dicom.id.startswith("case3#") and dicom.extras["series_uid"] == dicom.id.split("#")[1]
    vol = dicom.load()
    assert vol.shape == marker_volume().shape
    assert vol.data.max() == 1000  # rescaled to HU
    np.testing.assert_array_equal(study.by_id("case2.nii.gz").load().data, marker_volume())
    assert study.folder == tmp_path and study.class_names is None


def test_two_series_in_one_folder_are_two_items(tmp_path):
    write_dicom_series(tmp_path, marker_volume().astype(float), description="arterial")
    write_dicom_series(tmp_path, marker_volume()[:, :, :10].astype(float), description="venous")
    study = open_study(tmp_path)
    assert [it.name for it in study] == ["arterial (16 slices)", "venous (10 slices)"]
    assert all(it.id.startswith("#") for it in study)
    assert study[1].load().shape == (20, 24, 10)


def test_nested_folders_hidden_folders_and_links(tmp_path):
    (tmp_path / "b").mkdir()
    _nifti(tmp_path / "b" / "x.nii")
    (tmp_path / "a" / "deep").mkdir(parents=True)
    _nifti(tmp_path / "a" / "deep" / "y.nii.gz")
    (tmp_path / ".cache").mkdir()
    _nifti(tmp_path / ".cache" / "z.nii.gz")
    os.symlink(tmp_path, tmp_path / "a" / "loop")  # a link back up must not loop
    study = open_study(tmp_path)
    assert [it.id for it in study] == ["a/deep/y.nii.gz", "b/x.nii"]


def test_labels_csv_gives_ground_truth(tmp_path):
    for name in ("p1.nii.gz", "p2.nii.gz", "p3.nii.gz"):
        _nifti(tmp_path / name)
    (tmp_path / "labels.csv").write_text("id,label,split\np1.nii.gz,lesion,train\np3.nii.gz,normal,\n")
    study = open_study(tmp_path)
    assert study.class_names == ["lesion", "normal"]
    assert [(it.id, it.label, it.split) for it in study] == [
        ("p1.nii.gz", 0, "train"), ("p2.nii.gz", None, None), ("p3.nii.gz", 1, None)]
    (tmp_path / "labels.csv").write_text("id,label\np1.nii.gz,2\np2.nii.gz,0\n")
    study = open_study(tmp_path)
    assert study.class_names == ["class 0", "class 1", "class 2"]
    assert [it.label for it in study] == [2, 0, None]


@pytest.mark.parametrize("content, reason", [
    ("name,class\np1.nii.gz,1\n", "columns 'id' and 'label'"),
    ("id,label\nmissing.nii.gz,1\n", "match no volume"),
    ("", "columns"),
])
def test_bad_labels_csv(tmp_path, content, reason):
    _nifti(tmp_path / "p1.nii.gz")
    (tmp_path / "labels.csv").write_text(content)
    with pytest.raises(VolumeReadError, match=reason) as info:
        open_study(tmp_path)
    assert "labels.csv" in str(info.value)


def test_single_file_study(tmp_path):
    _nifti(tmp_path / "one.nii")
    study = open_study(tmp_path / "one.nii")
    assert len(study) == 1 and study[0].id == "one.nii" and study.folder == tmp_path
    np.testing.assert_array_equal(study[0].load().data, marker_volume())


def test_bad_studies(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(VolumeReadError, match="empty"):
        open_study(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.txt").write_text("x")
    with pytest.raises(VolumeReadError, match="no volumes") as info:
        open_study(tmp_path / "junk")
    assert "junk" in str(info.value)
    with pytest.raises(VolumeReadError, match="no such file"):
        open_study(tmp_path / "absent.npz")
    with pytest.raises(VolumeReadError, match="not a study"):
        open_study(tmp_path / "junk" / "a.txt")


def _npy_bytes(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


@pytest.mark.parametrize("make, reason", [
    (lambda p: p.write_bytes(b"not a zip"), "not a readable"),
    (lambda p: p.write_bytes(b""), "not a readable"),
    (lambda p: p.write_bytes(_npy_bytes(np.zeros(3))), "no zip header"),
    (lambda p: np.savez(p, x=np.zeros(3)), "MedMNIST"),
    (lambda p: np.savez(p, train_images=np.zeros((3, 4, 4), np.uint8)), r"expected \(N, D, H, W\)"),
    (lambda p: np.savez(p, train_images=np.zeros((3, 4, 4, 4), np.uint8), train_labels=np.zeros(2, int)),
     "3 images but 2 labels"),
    (lambda p: np.savez(p, train_images=np.zeros((2, 4, 4, 4), np.uint8), train_labels=np.array([0.5, 1.0])),
     "not class indices"),
    (lambda p: np.savez(p, train_images=np.zeros((2, 4, 4, 4), np.uint8),
                        train_labels=np.array(["a", "b"], dtype=object)), "cannot read"),
])
def test_bad_npz(tmp_path, make, reason):
    path = tmp_path / "bad.npz"
    make(path)
    with pytest.raises(VolumeReadError, match=reason) as info:
        open_study(path)
    assert "bad.npz" in str(info.value)


def test_npz_volumes_are_read_only_views_shared_by_loads(tmp_path):
    """Items share their split's decoded array: writing through one Volume would
    silently change every later load of that item, so the array refuses writes."""
    _fake_npz(tmp_path / "toy.npz")
    study = open_study(tmp_path / "toy.npz")
    vol = study[1].load()
    with pytest.raises(ValueError):
        vol.data[0, 0, 0] = 7
    np.testing.assert_array_equal(study[1].load().data, vol.data)


def test_npz_items_load_from_two_threads(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    arrays = _fake_npz(tmp_path / "toy.npz", n=(40, 30, 30), size=16)
    study = open_study(tmp_path / "toy.npz")
    with ThreadPoolExecutor(4) as pool:
        vols = list(pool.map(lambda it: it.load(), study.items))
    for it, vol in zip(study, vols):
        split, index = it.id.split("/")
        np.testing.assert_array_equal(vol.data, arrays[f"{split}_images"][int(index)])
