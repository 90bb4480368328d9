import tracemalloc

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from vol3d_gui.core.volume import Volume, isotropic_affine
from vol3d_gui.core.windowing import (
    CT_PRESETS,
    Window,
    apply_window,
    auto_window,
    default_window,
    sample_voxels,
)


def test_presets_match_the_documented_values():
    assert (CT_PRESETS["brain"].center, CT_PRESETS["brain"].width) == (40, 80)
    assert (CT_PRESETS["lung"].center, CT_PRESETS["lung"].width) == (-600, 1500)
    assert (CT_PRESETS["bone"].center, CT_PRESETS["bone"].width) == (400, 1800)
    assert (CT_PRESETS["abdomen"].center, CT_PRESETS["abdomen"].width) == (40, 400)


def test_apply_window_maps_edges_and_copes_with_nan_inf():
    w = Window(40, 80)  # 0 .. 80 HU
    out = apply_window(np.array([-1000, 0, 40, 80, 3000, np.nan, np.inf, -np.inf]), w)
    assert out.dtype == np.uint8
    assert list(out) == [0, 0, 127, 255, 255, 0, 255, 0]


def test_auto_window_is_robust_to_outliers_and_nan():
    rng = np.random.default_rng(1)
    data = rng.normal(50, 10, size=(64, 64, 64)).astype(np.float32)
    data[0, 0, :5] = [1e9, -1e9, np.nan, np.inf, -np.inf]
    w = auto_window(data)
    assert 10 < w.low < 30 and 70 < w.high < 90


@given(st.floats(-5000, 5000), st.floats(0, 5000))
def test_window_never_produces_out_of_range(center, width):
    data = np.linspace(-4000, 4000, 101, dtype=np.float32)
    out = apply_window(data, Window(center, width))
    assert out.min() >= 0 and out.max() <= 255
    assert np.all(np.diff(out.astype(int)) >= 0)  # monotonic


# --- default_window and the readout ------------------------------------------------------


def _vol(data, **meta):
    return Volume(data, isotropic_affine(), meta=meta)


def test_the_files_own_window_wins_and_later_ones_are_presets():
    data = np.full((4, 5, 6), -1000, np.int16)
    presets = [(35.0, 90.0), (500.0, 2000.0)]
    assert default_window(_vol(data, modality="CT", window_presets=presets)) == Window(35, 90)


def test_ct_without_a_window_gets_the_soft_tissue_preset():
    data = np.random.default_rng(0).integers(-1000, 1000, (8, 8, 8)).astype(np.int16)
    assert default_window(_vol(data, modality="CT")) == CT_PRESETS["abdomen"]


def test_a_signed_mr_with_negative_values_is_not_ct():
    rng = np.random.default_rng(2)
    data = rng.normal(300, 80, (32, 32, 32)).astype(np.int16)
    data[:4] = -2000  # negative background, as some reconstructions write
    w = default_window(_vol(data, modality="MR"))
    assert w not in CT_PRESETS.values()
    assert w.low < 150 and w.high > 450  # spans the tissue, from the data's own percentiles
    assert default_window(_vol(data)) == w  # no modality at all: data-driven as well


def test_a_malformed_or_zero_width_preset_falls_through_to_the_data():
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    presets = [("x", 1), (3.0, 0.0), (1, 2, 3)]
    w = default_window(_vol(data, modality="MR", window_presets=presets))
    assert 0 <= w.low < 5 and 115 < w.high <= 120


def test_auto_window_samples_without_copying_the_volume():
    # a transposed (non-contiguous) 64 MiB view: reshape(-1) would copy all of it
    big = np.ones((256, 256, 256), np.float32).transpose(2, 0, 1)
    tracemalloc.start()
    try:
        auto_window(big)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < big.nbytes / 8, f"peak {peak / 2**20:.1f} MiB"
    assert sample_voxels(big, 1000).shape == (1000,)


def test_the_readout_rounds_to_four_significant_digits():
    assert str(Window(6883.12, 12263.4)) == "W 12260 / L 6883"
    assert str(Window(40, 400)) == "W 400 / L 40"
    assert str(Window(-600, 1500)) == "W 1500 / L -600"
    assert str(Window(0.123456, 0.5)) == "W 0.5 / L 0.1235"
