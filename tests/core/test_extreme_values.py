"""Valid volumes at the ends of their dtype's range open and window without errors."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from vol3d_gui.core.io import load_volume
from vol3d_gui.core.windowing import CT_PRESETS, Window, apply_window, auto_window, to_unit_range


def _save(tmp_path, arr):
    path = tmp_path / "x.nii"
    nib.save(nib.Nifti1Image(arr, np.eye(4), dtype=arr.dtype), path)
    return load_volume(path)


def test_float64_near_its_limits_opens_and_windows(tmp_path):
    arr = np.zeros((6, 7, 8))
    arr[::2] = 1e308
    arr[1::2] = -1e308
    vol = _save(tmp_path, arr)
    w = auto_window(vol.data)
    assert np.isfinite(w.center) and np.isfinite(w.width) and w.width > 1e308
    shown = apply_window(vol.data, w)
    assert shown[0].min() == 255 and shown[1].max() == 0  # both ends still told apart
    unit = to_unit_range(vol.data, w)
    assert unit[0].min() == 1.0 and unit[1].max() == 0.0


@pytest.mark.parametrize("value", [2**63 - 5, 2**64 - 1])
def test_constant_uint64_near_two_to_the_63_opens_and_windows(tmp_path, value):
    vol = _save(tmp_path, np.full((6, 7, 8), value, dtype=np.uint64))
    assert vol.data.dtype == np.uint64 and int(vol.data[0, 0, 0]) == value
    w = auto_window(vol.data)
    assert np.isfinite(w.center) and w.width > 0
    for window in (w, CT_PRESETS["abdomen"]):
        assert apply_window(vol.data, window).dtype == np.uint8
        assert np.all(np.isfinite(to_unit_range(vol.data, window)))
    assert np.all(apply_window(vol.data, CT_PRESETS["abdomen"]) == 255)


def test_uint64_steps_near_two_to_the_63_are_not_lost():
    # float32 has 24 bits: 2**63 and 2**63 + 2**20 are the same float32, not the same float64
    data = np.array([2**63, 2**63 + 2**20], dtype=np.uint64)
    shown = apply_window(data, Window.from_range(2**63, 2**63 + 2**20))
    assert shown.tolist() == [0, 255]


def test_window_from_a_range_wider_than_float64():
    w = Window.from_range(-1.7e308, 1.7e308)
    assert w.center == 0.0 and np.isfinite(w.width)
