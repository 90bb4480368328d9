"""The separable linear zoom: ndimage.zoom(order=1, grid_mode=True)'s samples whatever the
shapes, dtype and memory layout, by whichever of its steps (whole-factor boxes, periodic phases,
BLAS products along the contiguous axis, gathers) the shapes call for."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from vol3d_gui.ml.linear_zoom import (
    _plan,
    linear_taps,
    periodic_taps,
    separable_zoom,
    steps_cost,
    zoom_steps,
)
from vol3d_gui.ml.preprocess import (
    _ZOOM_OVER_SEPARABLE,
    normalise,
    preprocess_array,
    resample_to_grid,
)

LAYOUTS = ("C", "F", "transposed", "strided")


def _laid_out(data: np.ndarray, layout: str) -> np.ndarray:
    """The same values in another memory layout (what the readers and callers may hand over)."""
    if layout == "F":
        return np.asfortranarray(data)
    if layout == "transposed":  # a C array of the axes (1, 2, 0), viewed back in order
        return np.ascontiguousarray(data.transpose(1, 2, 0)).transpose(2, 0, 1)
    if layout == "strided":  # every other voxel of a twice-as-large array along the last axis
        big = np.repeat(data, 2, axis=2)
        return big[:, :, ::2]
    return np.ascontiguousarray(data)


def _zoom_reference(data, shape) -> np.ndarray:
    return ndimage.zoom(np.asarray(data, np.float64), [t / s for t, s in zip(shape, data.shape)],
                        output=np.float64, order=1, mode="nearest", grid_mode=True)


@st.composite
def _periodic_pair(draw):
    """Source and target shapes whose factors are the periodic ones (1/2, 2/3, 3/8, 1/3 ...)
    on some axes and anything on the others."""
    src, out = [], []
    for _ in range(3):
        if draw(st.booleans()):
            q = draw(st.integers(1, 4))
            p = draw(st.integers(q, 4 * q))
            m = draw(st.integers(1, 5))
            src.append(m * p)
            out.append(m * q)
        else:
            src.append(draw(st.integers(1, 20)))
            out.append(draw(st.integers(1, 20)))
    return tuple(src), tuple(out)


@settings(max_examples=120, deadline=None)
@given(pair=_periodic_pair(), dtype=st.sampled_from([np.int16, np.uint8, np.float32, np.float64]),
       layout=st.sampled_from(LAYOUTS), seed=st.integers(0, 99))
def test_zoom_equals_scipy_for_any_layout(pair, dtype, layout, seed):
    src, out = pair
    data = _laid_out((np.random.default_rng(seed).random(src) * 2000 - 1000).astype(dtype), layout)
    ref = _zoom_reference(data, out)
    integer = np.issubdtype(data.dtype, np.integer)
    arr, gain = zoom_steps(data, out, finite=integer)  # finite: the BLAS step may run
    assert arr.shape == out and arr.dtype == np.float32 and arr.flags.c_contiguous
    np.testing.assert_allclose(arr * gain, ref, rtol=0, atol=1e-6 * 2000)
    for got in (separable_zoom(data, out), resample_to_grid(data, out)):
        assert got.flags.c_contiguous and got.shape == out
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6 * 2000)


@settings(max_examples=40, deadline=None)
@given(pair=_periodic_pair(), layout=st.sampled_from(LAYOUTS), seed=st.integers(0, 99),
       spec=st.sampled_from([{"type": "hu_window", "low": -200.0, "high": 250.0},
                             {"type": "scale", "divisor": 255.0}, {"type": "minmax"}]))
def test_preprocess_equals_normalised_scipy_zoom(pair, layout, seed, spec):
    """The gain the steps leave to the normalisation changes no value (float32 rounding)."""
    src, out = pair
    data = _laid_out((np.random.default_rng(seed).random(src) * 1400 - 700).astype(np.int16), layout)
    ref = normalise(_zoom_reference(data, out), spec)
    got = preprocess_array(data, out, spec)
    assert got.shape == (*out, 1) and got.dtype == np.float32
    np.testing.assert_allclose(got[..., 0], ref, rtol=0, atol=2e-6)


def test_zoom_path_for_large_factors_is_layout_independent():
    """Shapes where ndimage.zoom is cheaper than the steps: it runs on the C-ordered view of an
    x-fastest scan, and the answer is the same as for the C-ordered array."""
    data = (np.random.default_rng(1).random((90, 70, 60)) * 3000 - 1000).astype(np.int16)
    shape = (7, 11, 13)
    assert steps_cost(data, shape) > _ZOOM_OVER_SEPARABLE * np.prod(shape)  # zoom's case
    ref = _zoom_reference(data, shape)
    for layout in LAYOUTS:
        np.testing.assert_allclose(resample_to_grid(_laid_out(data, layout), shape), ref, atol=1e-3)


@pytest.mark.parametrize("n_src", range(2, 49))
def test_periodic_taps_sample_where_linear_taps_do(n_src):
    """Output k*q + j samples source k*p + a_j + w_j, the position ndimage.zoom samples."""
    for n_out in range(1, n_src):
        per = periodic_taps(n_src, n_out)
        if per is None:
            continue
        p, q, taps = per
        i0, _, w = linear_taps(n_src, n_out)
        got = [k * p + a + t for k in range(n_out // q) for a, t in taps]
        np.testing.assert_allclose(got, i0 + w, atol=1e-6)
        assert all(a + (t > 0) < p for a, t in taps)  # every phase inside its block


def test_plan_uses_each_step_kind_for_the_bench_case():
    """128x128x96 -> 64^3, C order: the two halvings as one box, then 2/3 along the contiguous
    axis as one BLAS product; x-fastest: a box, the contiguous halving, then 2/3 along the outer
    axis as stacked BLAS products (in phases for data that may hold NaN or inf)."""
    assert [s[0] for s in _plan((128, 128, 96), (64, 64, 64), True)] == ["box", "matmul"]
    assert [s[0] for s in _plan((96, 128, 128), (64, 64, 64), True)] == ["box", "box", "stack"]
    assert [s[0] for s in _plan((96, 128, 128), (64, 64, 64), False)] == ["box", "box", "axis"]
    # float data may hold NaN or inf: no BLAS product (a zero weight would spread them)
    assert "matmul" not in [s[0] for s in _plan((128, 128, 96), (64, 64, 64), False)]


def test_blas_thread_limit_is_restored():
    from threadpoolctl import threadpool_info

    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    zoom_steps(np.zeros((12, 12, 12), np.int16), (6, 6, 8), finite=True)
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before


def test_threads_resampling_at_once_get_their_own_answers_and_leave_blas_as_it_was():
    """The ML worker, the read-ahead and a scoring run may resample at the same time; the BLAS
    thread limit is process-wide, so its lock must keep the limits from undoing each other."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_info

    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    rng = np.random.default_rng(3)
    vols = [(rng.random((96, 96, 72)) * 2000 - 1000).astype(np.int16) for _ in range(4)]
    refs = [_zoom_reference(v, (48, 48, 48)) for v in vols]
    with ThreadPoolExecutor(4) as pool:  # BLAS releases the GIL: the threads overlap there
        got = list(pool.map(lambda v: separable_zoom(v, (48, 48, 48), finite=True), vols * 10))
    for i, g in enumerate(got):
        np.testing.assert_allclose(g, refs[i % len(vols)], atol=1e-3)
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before


def test_nan_and_inf_in_a_float_scan_stay_where_they_are():
    """A NaN voxel reaches only the samples that read it with a non-zero weight; normalised, it
    becomes 0 there and every value is finite in [0, 1]."""
    data = np.zeros((12, 12, 12), np.float32)
    data[5, 5, 5] = np.nan
    data[0, 0, 0] = np.inf
    x = preprocess_array(data, (6, 6, 8), {"type": "hu_window", "low": -1.0, "high": 1.0})
    assert np.all(np.isfinite(x)) and x.min() >= 0.0 and x.max() <= 1.0
    assert np.isnan(separable_zoom(data, (6, 6, 8))).sum() <= 8  # at most the 2x2x2 around it


@pytest.mark.parametrize(("src", "out"), [((128, 128, 96), (64, 64, 64)), ((200, 200, 120), (64, 64, 64)),
                                          ((96, 96, 72), (48, 48, 48)), ((64, 80, 40), (48, 48, 48))])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_the_second_thread_gives_the_one_thread_answer_to_the_bit(monkeypatch, src, out, layout, dtype):
    """Each half of a step is the same elementwise arithmetic on its own part of the output: the
    answer does not depend on the split (NaN where the one thread has NaN), and the split runs."""
    from vol3d_gui.ml import linear_zoom

    if linear_zoom._HALF is None:
        pytest.skip("one core: no second thread")
    rng = np.random.default_rng(sum(src))
    data = (rng.random(src) * 2000 - 1000).astype(dtype)
    if dtype == np.float32:
        data[3, 5, 7], data[-2, 1, -3] = np.nan, np.inf
    data = _laid_out(data, layout)
    finite = dtype == np.int16
    handed = []
    real_submit = linear_zoom._HALF.submit
    monkeypatch.setattr(linear_zoom._HALF, "submit", lambda *a: (handed.append(a[0]), real_submit(*a))[1])
    split, gain = zoom_steps(data, out, finite=finite, scale=0.25)
    assert handed  # a step (or the change of layout) ran in halves
    monkeypatch.setattr(linear_zoom, "_HALF", None)
    whole, whole_gain = zoom_steps(data, out, finite=finite, scale=0.25)
    assert gain == whole_gain and np.array_equal(split, whole, equal_nan=True)


@settings(max_examples=60, deadline=None)
@given(pair=_periodic_pair(), layout=st.sampled_from(LAYOUTS), seed=st.integers(0, 99))
def test_halves_of_any_step_equal_scipy(pair, layout, seed):
    """Every step in halves, however small (the split's cut along a shrinking axis, an axis
    of one voxel, a gather), still gives ndimage.zoom's samples."""
    from vol3d_gui.ml import linear_zoom

    src, out = pair
    data = _laid_out((np.random.default_rng(seed).random(src) * 500).astype(np.int16), layout)
    old = linear_zoom.SPLIT_MIN
    linear_zoom.SPLIT_MIN = 1
    try:
        got = separable_zoom(data, out, finite=True)
    finally:
        linear_zoom.SPLIT_MIN = old
    np.testing.assert_allclose(got, _zoom_reference(data, out), atol=1e-3)


@settings(max_examples=80, deadline=None)
@given(pair=_periodic_pair(), layout=st.sampled_from(LAYOUTS), seed=st.integers(0, 99),
       split=st.booleans())
def test_stacked_products_along_any_outer_axis_equal_scipy(pair, layout, seed, split):
    """The stacked (q, p) @ (p, row) products, allowed here for rows of any length (the plan
    keeps them to long rows), in one piece or in halves, give ndimage.zoom's samples."""
    from vol3d_gui.ml import linear_zoom

    src, out = pair
    data = _laid_out((np.random.default_rng(seed).random(src) * 500).astype(np.int16), layout)
    old = linear_zoom.STACK_MIN_ROW, linear_zoom.SPLIT_MIN
    linear_zoom.STACK_MIN_ROW, linear_zoom.SPLIT_MIN = 1, 1 if split else old[1]
    linear_zoom._plan.cache_clear()
    try:
        got = separable_zoom(data, out, finite=True)
    finally:
        linear_zoom.STACK_MIN_ROW, linear_zoom.SPLIT_MIN = old
        linear_zoom._plan.cache_clear()
    np.testing.assert_allclose(got, _zoom_reference(data, out), atol=1e-3)


def test_a_forked_child_resamples_with_a_second_thread_of_its_own():
    """A fork copies the executor but not its thread: without a new one the child's first
    split would wait forever. Run apart (a fresh interpreter that imports numpy only), with a
    deadline."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import os, sys
        import numpy as np
        from vol3d_gui.ml import linear_zoom
        if linear_zoom._HALF is None:
            sys.exit(0)  # one core: nothing to fork with
        data = np.arange(128 * 128 * 96, dtype=np.int16).reshape(128, 128, 96)
        parent = linear_zoom.separable_zoom(data, (64, 64, 64), finite=True)  # the thread runs
        pid = os.fork()
        if pid == 0:
            child = linear_zoom.separable_zoom(data, (64, 64, 64), finite=True)
            os._exit(0 if np.array_equal(child, parent) else 3)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
    """)
    done = subprocess.run([sys.executable, "-c", script], timeout=60, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
