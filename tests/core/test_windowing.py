import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from vol3d_gui.core.windowing import CT_PRESETS, Window, apply_window, auto_window


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
