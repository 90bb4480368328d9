import nibabel as nib
import numpy as np
import pytest

from tests.core.io_fixtures import marker_volume, write_dicom_series
from vol3d_gui.core.errors import VolumeReadError
from vol3d_gui.core.study import NpzArrays, open_study


def _fake_npz(path, n=(5, 2, 3), size=8):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, k in zip(("train", "val", "test"), n):
        arrays[f"{split}_images"] = rng.integers(0, 255, (k, size, size, size), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 2, (k, 1))
    np.savez_compressed(path, **arrays)
    return arrays


def test_npz_study_matches_the_file(tmp_path):
    arrays = _fake_npz(tmp_path / "toy.npz")
    study = open_study(tmp_path / "toy.npz")
    assert len(study) == 10
    assert [it.split for it in study].count("val") == 2
    item = study.by_id("test/2")
    vol = item.load()
    assert vol.dtype == np.uint8
    np.testing.assert_array_equal(vol.data, arrays["test_images"][2])
    assert item.label == int(arrays["test_labels"][2, 0])
    np.testing.assert_allclose(vol.spacing, 1.0)
    assert study.class_names == ["class 0", "class 1"]


def test_npz_opening_decodes_no_images(tmp_path, monkeypatch):
    _fake_npz(tmp_path / "toy.npz")
    touched = []
    orig = NpzArrays.__getitem__
    monkeypatch.setattr(NpzArrays, "__getitem__", lambda self, k: touched.append(k) or orig(self, k))
    study = open_study(tmp_path / "toy.npz")
    assert not any(k.endswith("_images") for k in touched)
    study[0].load()
    assert touched.count("train_images") == 1


def test_real_medmnist_file(adrenal64):
    study = open_study(adrenal64)
    assert study.class_names == ["normal", "hyperplasia"]
    assert len(study.split("train")) == 1188 and len(study.split("test")) == 298
    vol = study.split("test")[0].load()
    assert vol.shape == (64, 64, 64) and vol.dtype == np.uint8


def test_folder_study_with_nifti_and_dicom(tmp_path):
    nib.save(nib.Nifti1Image(marker_volume(), np.eye(4)), tmp_path / "case10.nii.gz")
    nib.save(nib.Nifti1Image(marker_volume(), np.eye(4)), tmp_path / "case2.nii.gz")
    write_dicom_series(tmp_path / "ct", marker_volume().astype(float), description="abdomen")
    study = open_study(tmp_path)
    names = [it.name for it in study]
    assert names[:2] == ["case2.nii.gz", "case10.nii.gz"]  # natural order
    assert any("abdomen" in n for n in names)
    assert study.items[-1].load().shape == marker_volume().shape


def test_bad_studies(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(VolumeReadError, match="empty"):
        open_study(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.txt").write_text("x")
    with pytest.raises(VolumeReadError, match="no volumes"):
        open_study(tmp_path / "junk")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(VolumeReadError, match="bad.npz"):
        open_study(bad)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(VolumeReadError, match="MedMNIST"):
        open_study(tmp_path / "other.npz")
