"""Hostile .npz and labels.csv: member sizes checked from the .npy header before reading,
class counts capped, odd label text refused with a VolumeReadError (memory cases run in a
child process under RLIMIT_AS)."""

from __future__ import annotations

import io
import zipfile

import nibabel as nib
import numpy as np
import pytest

from tests.core.limited_child import OPEN_STUDY, run_limited
from vol3d_gui.core.errors import VolumeReadError
from vol3d_gui.core.study import MAX_CLASSES, open_study

LOAD_FIRST = ("lambda p: __import__('vol3d_gui.core.study', fromlist=['x']).open_study(p)[0].load().shape")


def _npy_member(shape, dtype="|u1", payload=b"") -> bytes:
    """An .npy whose header declares ``shape`` followed by only ``payload``."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue() + payload


def _write_npz(path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(f"{name}.npy", data)


def _array(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_npz_member_larger_than_the_budget_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.npz"
    # 2 GiB declared, a few bytes stored: np.load would allocate the declared size first
    _write_npz(path, {"train_images": _npy_member((128, 256, 256, 256), payload=b"\0" * 64),
                      "train_labels": _array(np.zeros((128, 1), np.uint8))})
    out = run_limited(LOAD_FIRST, path)
    assert "memory budget" in out.get("error", ""), out


def test_npz_label_far_beyond_any_class_count_is_a_typed_error(tmp_path):
    path = tmp_path / "labels.npz"
    labels = np.array([[0], [300_000_000]], np.int64)
    _write_npz(path, {"train_images": _array(np.zeros((2, 4, 4, 4), np.uint8)), "train_labels": _array(labels)})
    out = run_limited(OPEN_STUDY, path)  # 3e8 class names would not fit in the child
    assert f"at most {MAX_CLASSES} classes" in out.get("error", ""), out


def _folder(tmp_path, labels_csv: str):
    for name in ("a.nii", "b.nii"):
        nib.save(nib.Nifti1Image(np.zeros((3, 3, 3), np.int16), np.eye(4)), tmp_path / name)
    (tmp_path / "labels.csv").write_text(labels_csv, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("text,reason", [
    ("id,label\na.nii,300000000\nb.nii,0\n", "beyond the"),
    ("id,label\n" + "".join(f"x{i}.nii,c{i}\n" for i in range(3)), "match no volume"),
])
def test_labels_csv_class_caps_and_unknown_ids(tmp_path, text, reason):
    with pytest.raises(VolumeReadError, match=reason):
        open_study(_folder(tmp_path, text))


def test_labels_csv_with_a_superscript_digit_is_a_name_not_a_crash(tmp_path):
    # '²'.isdigit() is True but int('²') raises ValueError: it must read as a class name
    study = open_study(_folder(tmp_path, "id,label\na.nii,²\nb.nii,1\n"))
    assert study.class_names == ["1", "²"]
    assert [it.label for it in study] == [1, 0]


def test_labels_csv_with_too_many_names_is_refused(tmp_path):
    names = "".join(f"a.nii,n{i}\n" for i in range(MAX_CLASSES + 1))
    with pytest.raises(VolumeReadError, match="different labels"):
        open_study(_folder(tmp_path, "id,label\n" + names))
