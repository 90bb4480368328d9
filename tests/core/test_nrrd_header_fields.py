"""Property-based tests over NRRD header fields (as for NIfTI in test_io_bad_input): whatever
a header says, the reader itself (not only load_volume's catch-all) gives a 3-D Volume with a
finite affine, or a VolumeReadError."""

from __future__ import annotations

import bz2
import gzip

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vol3d_gui.core.io import VolumeReadError, set_memory_budget
from vol3d_gui.core.readers.nrrd import load_nrrd

_TYPES = ["uint8", "int8", "short", "ushort", "int", "uint", "float", "double", "int64", "uint64"]
_BAD_TYPES = ["block", "complex", "", "uchar;", "int128"]
_ENCODINGS = ["raw", "gzip", "gz", "bzip2", "bz2", "ascii", "text"]
_BAD_ENCODINGS = ["hex", "zrl", ""]
_SPACES = ["left-posterior-superior", "RAS", "LPS", "scanner-xyz", "left-anterior-superior"]
_BAD_SPACES = ["right-anterior-superior-time", "3D-left-handed", "", "ras;"]
_finite = st.floats(-1e3, 1e3, allow_nan=False)
_any_float = st.floats(allow_nan=True, allow_infinity=True)


def _mostly(good, bad):
    """Nine draws in ten from ``good``: most files get far enough to exercise the data path."""
    return st.integers(0, 9).flatmap(lambda i: bad if i == 0 else good)


def _vector(n, elements=_finite):
    return st.lists(elements, min_size=n, max_size=n).map(lambda v: "(" + ",".join(repr(x) for x in v) + ")")


@st.composite
def nrrd_files(draw):
    sizes = draw(_mostly(st.lists(st.integers(2, 6), min_size=3, max_size=4),
                         st.lists(st.integers(-2, 9), max_size=6)))
    dim = draw(_mostly(st.just(len(sizes)), st.integers(-1, 7)))
    fields = {
        "type": draw(_mostly(st.sampled_from(_TYPES), st.sampled_from(_BAD_TYPES))),
        "dimension": str(dim),
        "sizes": " ".join(map(str, sizes)),
        "encoding": draw(_mostly(st.sampled_from(_ENCODINGS), st.sampled_from(_BAD_ENCODINGS))),
        "endian": draw(_mostly(st.sampled_from(["little", "big"]), st.just("middle"))),
    }
    if draw(st.booleans()):
        fields["space"] = draw(_mostly(st.sampled_from(_SPACES), st.sampled_from(_BAD_SPACES)))
    if draw(st.booleans()):
        rows = draw(_mostly(st.lists(_vector(3), min_size=3, max_size=3).map(lambda r: r + ["none"] * (len(sizes) - 3)),
                            st.lists(st.one_of(_vector(3, _any_float), _vector(2), st.just("none")), max_size=5)))
        fields["space directions"] = " ".join(rows)
    if draw(st.booleans()):
        fields["space origin"] = draw(_mostly(_vector(3), st.one_of(_vector(3, _any_float), _vector(4),
                                                                    st.text(max_size=8))))
    if draw(st.booleans()):
        fields["spacings"] = " ".join(repr(x) for x in draw(st.lists(_any_float, max_size=5)))
    if draw(st.booleans()):
        fields["byte skip"] = str(draw(st.integers(-3, 40)))
    if draw(st.booleans()):
        fields["line skip"] = str(draw(st.integers(-2, 3)))
    if draw(st.booleans()):
        fields["data file"] = draw(_mostly(st.just("d.raw"), st.sampled_from(
            ["../d.raw", "/dev/zero", "LIST", "missing.raw", "d%03d.raw 0 2 1", ""])))
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=1)):
        fields.pop(name, None)
    n_values = int(np.prod([max(s, 0) for s in sizes])) if sizes else 0
    n = draw(_mostly(st.just(n_values), st.sampled_from([n_values // 2, n_values + 17])))
    data = draw(st.binary(min_size=min(n * 8, 20000), max_size=min(n * 8, 20000)))
    encode = {"gzip": gzip.compress, "gz": gzip.compress, "bzip2": bz2.compress, "bz2": bz2.compress,
              "ascii": lambda b: " ".join(str(x) for x in b).encode(),
              "text": lambda b: " ".join(str(x) for x in b).encode()}.get(fields.get("encoding", ""), bytes)
    header = "NRRD0004\n" + "".join(f"{k}: {v}\n" for k, v in fields.items()) + "\n"
    return header.encode(), encode(data)


@pytest.fixture
def small_budget():
    set_memory_budget(16 << 20)  # a size field must be refused from the header, never allocated
    yield
    set_memory_budget(None)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(file=nrrd_files(), detached=st.booleans())
def test_any_nrrd_header_gives_a_volume_or_a_volume_read_error(tmp_path, small_budget, file, detached):
    header, data = file
    (tmp_path / "d.raw").write_bytes(data)
    path = tmp_path / ("h.nhdr" if detached else "h.nrrd")
    path.write_bytes(header + (b"" if detached else data))
    try:
        vol = load_nrrd(path)
    except VolumeReadError:
        return
    assert vol.data.ndim == 3 and min(vol.data.shape) >= 2
    assert np.all(np.isfinite(vol.affine)) and abs(np.linalg.det(vol.affine[:3, :3])) > 0
