"""The planes the GL slice views upload (plane_rows, gl_slice_textures): cut from the volume as
GL reads them, whatever the volume's layout and dtype, on the gathering threads or at once."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vol3d_gui.ui.gl_slice_textures import _upload_dtype
from vol3d_gui.ui.plane_rows import Gather, upload_form


def _layouts(data):
    return {"C": np.ascontiguousarray(data), "F": np.asfortranarray(data),
            "flipped": np.asfortranarray(data[:, ::-1])[:, ::-1],
            "strided": np.ascontiguousarray(np.repeat(data, 2, axis=2))[:, :, ::2]}


def _as_plane(rows, transposed, row_length):
    """The plane (a, b) the texture rows hold (row_length: elements between rows in memory)."""
    if row_length:
        rows = np.lib.stride_tricks.as_strided(rows, rows.shape, (row_length * rows.itemsize, rows.itemsize))
    return rows.T if transposed else rows


@settings(max_examples=60, deadline=None)
@given(st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 9)), st.sampled_from(["C", "F", "flipped", "strided"]),
       st.sampled_from([np.int16, np.uint8, np.float32, np.float64, np.int64]), st.integers(0, 2), st.data())
def test_a_plane_gathered_in_halves_is_the_plane_as_gl_reads_it(shape, layout, dtype, axis, data):
    values = np.arange(np.prod(shape)).reshape(shape).astype(dtype) - 7
    vol = _layouts(values)[layout]
    index = data.draw(st.integers(0, shape[axis] - 1))
    plane = np.take(vol, index, axis=axis)
    up = _upload_dtype(vol.dtype)
    gathered = Gather(plane, up).result()
    assert gathered[0].dtype == up and gathered[0].flags.c_contiguous and gathered[2] == 0
    np.testing.assert_array_equal(_as_plane(*gathered), plane.astype(up))
    np.testing.assert_array_equal(_as_plane(*upload_form(plane.astype(up))), plane.astype(up))


@pytest.mark.parametrize("layout", ["C", "F", "flipped"])
def test_a_gather_says_when_it_is_done(layout):
    vol = _layouts(np.arange(64 * 48 * 40, dtype=np.int16).reshape(64, 48, 40))[layout]
    g = Gather(vol[5], np.dtype(np.int16))
    rows, _transposed, _ = g.result()
    assert g.done() and rows.shape in {(48, 40), (40, 48)}
