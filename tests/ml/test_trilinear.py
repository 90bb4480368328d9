"""The compiled trilinear zoom: ndimage.zoom(order=1, grid_mode=True)'s samples, windowed or
not, whatever the shapes, dtype and memory layout, in one thread or two."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from vol3d_gui.ml import trilinear
from vol3d_gui.ml.preprocess import normalise, preprocess_array, resample_to_grid
from vol3d_gui.ml.trilinear import linear_taps, zoom_window

LAYOUTS = ("C", "F", "transposed", "strided", "reversed")
DTYPES = (np.int16, np.uint8, np.int32, np.float32, np.float64, ">i2", np.float16, bool)


def _laid_out(data: np.ndarray, layout: str) -> np.ndarray:
    """The same values in another memory layout (what the readers and callers may hand over)."""
    if layout == "F":
        return np.asfortranarray(data)
    if layout == "transposed":  # a C array of the axes (1, 2, 0), viewed back in order
        return np.ascontiguousarray(data.transpose(1, 2, 0)).transpose(2, 0, 1)
    if layout == "strided":  # every other voxel of a twice-as-large array along the last axis
        return np.repeat(data, 2, axis=2)[:, :, ::2]
    if layout == "reversed":  # negative strides (a flipped view)
        return np.ascontiguousarray(data[::-1, :, ::-1])[::-1, :, ::-1]
    return np.ascontiguousarray(data)


def _zoom_reference(data, shape) -> np.ndarray:
    return ndimage.zoom(np.asarray(data, np.float64), [t / s for t, s in zip(shape, data.shape)],
                        output=np.float64, order=1, mode="nearest", grid_mode=True)


@st.composite
def _pair(draw):
    """Source and target shapes: whole and periodic factors (1/2, 2/3, 3/8 ...) on some axes,
    anything (up, down, one voxel) on the others."""
    src, out = [], []
    for _ in range(3):
        if draw(st.booleans()):
            q = draw(st.integers(1, 4))
            p = draw(st.integers(q, 4 * q))
            m = draw(st.integers(1, 5))
            src.append(m * p)
            out.append(m * q)
        else:
            src.append(draw(st.integers(1, 23)))
            out.append(draw(st.integers(1, 23)))
    return tuple(src), tuple(out)


def _data(shape, dtype, seed, span=2000.0):
    values = np.random.default_rng(seed).random(shape) * span - span / 2
    if np.dtype(dtype) == np.uint8:
        values = values + span / 2
    if np.dtype(dtype) == bool:
        values = values > 0
    return values.astype(dtype)


@settings(max_examples=150, deadline=None)
@given(pair=_pair(), dtype=st.sampled_from(DTYPES), layout=st.sampled_from(LAYOUTS), seed=st.integers(0, 99))
def test_zoom_equals_scipy_for_any_shapes_dtype_and_layout(pair, dtype, layout, seed):
    src, out = pair
    data = _laid_out(_data(src, dtype, seed), layout)
    ref = _zoom_reference(data, out)
    for got in (zoom_window(data, out), resample_to_grid(data, out)):
        assert got.shape == out and got.dtype == np.float32 and got.flags.c_contiguous
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6 * 2000)


@settings(max_examples=60, deadline=None)
@given(pair=_pair(), layout=st.sampled_from(LAYOUTS), seed=st.integers(0, 99),
       spec=st.sampled_from([{"type": "hu_window", "low": -200.0, "high": 250.0},
                             {"type": "scale", "divisor": 255.0}, {"type": "minmax"}]))
def test_preprocess_equals_normalised_scipy_zoom(pair, layout, seed, spec):
    """The window inside the resampling changes no value (float32 rounding)."""
    src, out = pair
    data = _laid_out(_data(src, np.int16, seed, 1400.0), layout)
    ref = normalise(_zoom_reference(data, out), spec)
    got = preprocess_array(data, out, spec)
    assert got.shape == (*out, 1) and got.dtype == np.float32
    np.testing.assert_allclose(got[..., 0], ref, rtol=0, atol=2e-6)


def test_the_grid_of_the_scan_itself_is_the_scan_to_the_bit():
    """Same shape: every weight is 0 (or 1 at the clamped edge): the values come through
    untouched, NaN and inf included."""
    data = _data((9, 7, 5), np.float32, 3)
    data[0, 0, 0], data[-1, -1, -1], data[-2, -2, -2] = np.inf, np.nan, -np.inf
    for layout in LAYOUTS:
        assert np.array_equal(zoom_window(_laid_out(data, layout), data.shape), data, equal_nan=True)


def test_nan_and_inf_in_a_float_scan_stay_where_they_are():
    """A NaN voxel reaches only the samples that read it with a non-zero weight; normalised, it
    becomes 0 there and every value is finite in [0, 1]."""
    data = np.zeros((12, 12, 12), np.float32)
    data[5, 5, 5] = np.nan
    data[0, 0, 0] = np.inf
    x = preprocess_array(data, (6, 6, 8), {"type": "hu_window", "low": -1.0, "high": 1.0})
    assert np.all(np.isfinite(x)) and x.min() >= 0.0 and x.max() <= 1.0
    z = zoom_window(data, (6, 6, 8))
    assert 0 < np.isnan(z).sum() <= 8  # at most the 2x2x2 around it
    assert np.isinf(z).sum() == 1 and z[0, 0, 0] == np.inf  # the one sample that reads it


def test_the_window_maps_and_clips_like_the_normalisation():
    data = np.array([-5000, -200, 25, 250, 3000], np.int16).reshape(5, 1, 1)
    got = zoom_window(data, (5, 1, 1), gain=1 / 450, offset=-200 / 450, clip=True).ravel()
    np.testing.assert_allclose(got, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)


@pytest.mark.parametrize(("src", "out"), [((128, 128, 96), (64, 64, 64)), ((200, 200, 120), (64, 64, 64)),
                                          ((96, 96, 72), (48, 48, 48)), ((64, 80, 40), (48, 48, 48))])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_the_second_thread_gives_the_one_thread_answer_to_the_bit(monkeypatch, src, out, layout, dtype):
    """Each half is the same arithmetic on its own part of the output: the answer does not
    depend on the split (NaN where the one thread has NaN), and the split runs."""
    if trilinear._HALF is None:
        pytest.skip("one core: no second thread")
    data = _data(src, dtype, sum(src))
    if dtype == np.float32:
        data[3, 5, 7], data[-2, 1, -3] = np.nan, np.inf
    data = _laid_out(data, layout)
    handed = []
    real_submit = trilinear._HALF.submit
    monkeypatch.setattr(trilinear._HALF, "submit", lambda *a: (handed.append(a[0]), real_submit(*a))[1])
    split = zoom_window(data, out, gain=0.25, offset=-1.0, clip=False)
    assert handed
    monkeypatch.setattr(trilinear, "_HALF", None)
    whole = zoom_window(data, out, gain=0.25, offset=-1.0, clip=False)
    assert np.array_equal(split, whole, equal_nan=True)


@settings(max_examples=60, deadline=None)
@given(pair=_pair(), layout=st.sampled_from(LAYOUTS), seed=st.integers(0, 99))
def test_halves_of_any_grid_equal_scipy(pair, layout, seed):
    """Split however small (one outer row a half, an outer axis of one voxel), the samples are
    still ndimage.zoom's."""
    src, out = pair
    data = _laid_out(_data(src, np.int16, seed, 500.0), layout)
    old = trilinear.SPLIT_MIN
    trilinear.SPLIT_MIN = 1
    try:
        got = zoom_window(data, out)
    finally:
        trilinear.SPLIT_MIN = old
    np.testing.assert_allclose(got, _zoom_reference(data, out), atol=1e-3)


def test_threads_resampling_at_once_get_their_own_answers():
    """The ML worker, the read-ahead and a scoring run may resample at the same time."""
    from concurrent.futures import ThreadPoolExecutor

    vols = [_data((96, 96, 72), np.int16, s) for s in range(4)]
    vols[1] = np.asfortranarray(vols[1])
    refs = [_zoom_reference(v, (48, 48, 48)) for v in vols]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda v: zoom_window(v, (48, 48, 48)), vols * 10))
    for i, g in enumerate(got):
        np.testing.assert_allclose(g, refs[i % len(vols)], atol=1e-3)


@pytest.mark.parametrize("n_src", [1, 2, 3, 7, 96, 128])
def test_taps_sample_where_scipy_places_the_grid(n_src):
    for n_out in (1, 2, 5, 64, 200):
        i0, i1, w = linear_taps(n_src, n_out)
        expect = np.clip((np.arange(n_out) + 0.5) * n_src / n_out - 0.5, 0, n_src - 1)
        np.testing.assert_allclose(i0 + w * (i1 - i0), expect, atol=1e-6)


def test_bad_shapes_are_refused_by_name():
    with pytest.raises(ValueError, match="3-D"):
        zoom_window(np.zeros((4, 4)), (4, 4, 4))
    with pytest.raises(ValueError, match="cannot resample"):
        zoom_window(np.zeros((4, 0, 4)), (4, 4, 4))
    with pytest.raises(ValueError, match="cannot resample"):
        zoom_window(np.zeros((4, 4, 4)), (4, 0, 4))


def test_a_forked_child_resamples_with_a_second_thread_of_its_own():
    """A fork copies the executor but not its thread: without a new one the child's first
    split would wait forever. Run apart, with a deadline."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import os, sys
        import numpy as np
        from vol3d_gui.ml import trilinear
        if trilinear._HALF is None:
            sys.exit(0)  # one core: nothing to fork with
        data = np.arange(128 * 128 * 96, dtype=np.int16).reshape(128, 128, 96)
        parent = trilinear.zoom_window(data, (64, 64, 64))  # the thread runs
        pid = os.fork()
        if pid == 0:
            child = trilinear.zoom_window(data, (64, 64, 64))
            os._exit(0 if np.array_equal(child, parent) else 3)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
    """)
    done = subprocess.run([sys.executable, "-c", script], timeout=120, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_read_only_memory_mapped_scan_is_read_in_place(tmp_path):
    """nibabel maps uncompressed files read-only: the kernel reads them as they are."""
    data = _data((40, 30, 20), np.int16, 5)
    path = tmp_path / "scan.raw"
    data.tofile(path)
    mapped = np.memmap(path, dtype=np.int16, mode="r", shape=data.shape)
    assert not mapped.flags.writeable
    np.testing.assert_allclose(zoom_window(mapped, (16, 16, 16)), _zoom_reference(data, (16, 16, 16)), atol=1e-3)
