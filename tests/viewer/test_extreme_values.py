"""A case at the ends of its dtype's range is prepared for display without errors."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from vol3d_gui.core.io import load_volume
from vol3d_gui.viewer.prepare import prepare_case


def _prepared(tmp_path, arr):
    path = tmp_path / "x.nii"
    nib.save(nib.Nifti1Image(arr, np.eye(4), dtype=arr.dtype), path)
    return prepare_case(lambda: load_volume(path))


def test_float64_of_plus_minus_1e308_prepares_a_texture_with_both_ends(tmp_path):
    arr = np.zeros((6, 7, 8))
    arr[::2] = 1e308
    arr[1::2] = -1e308
    case = _prepared(tmp_path, arr)
    assert np.isfinite(case.window.width)
    tex = case.grid.texture  # (z, y, x)
    assert tex[:, :, 0].min() == 65535 and tex[:, :, 1].max() == 0


def test_constant_uint64_near_two_to_the_63_prepares(tmp_path):
    case = _prepared(tmp_path, np.full((6, 7, 8), 2**63 - 5, dtype=np.uint64))
    lo, hi = case.grid.value_range
    assert hi > lo  # lo + 1.0 == lo here: the range must still have a width (was ZeroDivisionError)
    assert case.grid.texture.dtype == np.uint16
