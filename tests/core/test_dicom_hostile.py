"""Hostile DICOM (issue 13): the budget holds on what is actually decoded, every slice is
checked before decoding, and any header field value gives a Volume or a VolumeReadError.

Memory tests run the reader in a child process under an address-space limit (RLIMIT_AS) a
little above what the child has mapped after its imports: a regression fails with a
MemoryError in the child instead of swapping the machine."""

import json
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pydicom
import pydicom.pixels
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.core.dicom_fixtures import compress_series, deflate_bomb
from tests.core.io_fixtures import REPO_ROOT, marker_volume, write_dicom_series
from vol3d_gui.core.io import VolumeReadError, list_series, load_volume, set_memory_budget

resource = pytest.importorskip("resource", reason="RLIMIT_AS needs the resource module (POSIX)")

_CHILD = """
import json, resource, sys
from vol3d_gui.core.io import VolumeReadError, list_series, load_volume, set_memory_budget
from vol3d_gui.core.study import open_study
import pydicom.pixels, numpy  # everything the readers import, mapped before the limit

def mapped():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
set_memory_budget(64 << 20)
limit = mapped() + (HEADROOM << 20)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
out = []
try:
    ACTION
except VolumeReadError as exc:
    out.append(["VolumeReadError", str(exc)])
except MemoryError:
    out.append(["MemoryError", ""])
print(json.dumps(out))
"""


def _run_child(action: str, headroom_mib: int = 200) -> list:
    code = _CHILD.replace("HEADROOM", str(headroom_mib)).replace("ACTION", textwrap.indent(
        textwrap.dedent(action).strip(), "    ").lstrip())
    env = {"PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=str(REPO_ROOT), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_deflate_bomb_neither_costs_its_size_to_list_nor_to_load(tmp_path):
    write_dicom_series(tmp_path, marker_volume((16, 16, 4)).astype(float))
    bomb = deflate_bomb(tmp_path / "bomb.dcm", pixel_bytes=512 << 20)
    assert bomb.stat().st_size < 4 << 20
    out = _run_child(f"""
        from pathlib import Path
        study = open_study(Path({str(tmp_path)!r}))
        out.append(["items", len(study)])
        out.append(["listed", sorted(s.n_slices for s in list_series(Path({str(tmp_path)!r})))])
        load_volume(Path({str(bomb)!r}))
    """)
    assert out[0] == ["items", 2] and out[1] == ["listed", [1, 4]]
    assert out[2][0] == "VolumeReadError" and "inflates beyond" in out[2][1]


def test_a_small_rle_slice_claiming_a_huge_size_is_refused_before_decoding(tmp_path):
    from pydicom.uid import RLELossless

    paths = write_dicom_series(tmp_path, marker_volume((16, 16, 6)).astype(float))
    compress_series(paths, RLELossless)
    ds = pydicom.dcmread(paths[2])
    ds.Rows = ds.Columns = 20000
    ds.save_as(paths[2])
    out = _run_child(f"""
        from pathlib import Path
        for s in list_series(Path({str(tmp_path)!r})):
            try:
                v = load_volume(Path({str(tmp_path)!r}), series=s.key)
                out.append(["Volume", list(v.shape)])
            except VolumeReadError as exc:
                out.append(["VolumeReadError", str(exc)])
    """)
    assert out[0] == ["Volume", [16, 16, 6]]  # the good slices, the odd one a named gap
    assert out[1][0] == "VolumeReadError" and "memory budget" in out[1][1]


def test_a_compressed_frame_larger_than_its_header_is_refused_before_decoding(tmp_path, monkeypatch):
    from pydicom.uid import JPEG2000Lossless

    paths = write_dicom_series(tmp_path, marker_volume((40, 40, 3)).astype(float))
    compress_series(paths, JPEG2000Lossless)
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.Rows = ds.Columns = 32  # the codestreams stay 40x40
        ds.save_as(p)
    decoded = []
    monkeypatch.setattr(pydicom.pixels, "iter_pixels", lambda *a, **k: decoded.append(1) or iter(()))
    with pytest.raises(VolumeReadError, match="refused before decoding"):
        load_volume(tmp_path)
    assert not decoded


def test_the_budget_covers_the_whole_multi_file_series(tmp_path, monkeypatch):
    import vol3d_gui.core.readers.dicom.decode as decode

    write_dicom_series(tmp_path, marker_volume((64, 64, 40)).astype(float))
    reads = []
    for name in ("decode_file", "read_native_frames"):
        real = getattr(decode, name)
        monkeypatch.setattr(decode, name, lambda *a, real=real, **k: reads.append(a) or real(*a, **k))
    one_slice = 64 * 64 * 2
    set_memory_budget(one_slice * 40)  # each slice fits, the raw stack plus its output does not
    try:
        with pytest.raises(VolumeReadError, match="memory budget"):
            load_volume(tmp_path)
    finally:
        set_memory_budget(None)
    assert reads == []  # refused before a single file was decoded


# --- property tests over header fields -------------------------------------------------
# unsigned shorts (US) as pydicom can write them, edge values first
_INTS = st.one_of(st.sampled_from([0, 1, 2, 65535, 20000]), st.integers(0, 65535))
_FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -1.0, 1e308]))
_TEXT = st.text(max_size=12)
FIELDS = {
    "Rows": _INTS, "Columns": _INTS, "BitsAllocated": st.sampled_from([0, 1, 7, 8, 12, 16, 24, 32, 64]),
    "BitsStored": _INTS, "HighBit": _INTS, "PixelRepresentation": st.integers(0, 3),
    "SamplesPerPixel": st.integers(0, 4), "NumberOfFrames": st.one_of(_INTS, _TEXT),
    "ImageOrientationPatient": st.lists(_FLOATS, max_size=8),
    "ImagePositionPatient": st.lists(_FLOATS, max_size=5),
    "PixelSpacing": st.lists(_FLOATS, max_size=3),
    "RescaleSlope": _FLOATS, "RescaleIntercept": _FLOATS,
    "WindowCenter": _FLOATS, "WindowWidth": _FLOATS,
    "PhotometricInterpretation": st.sampled_from(["MONOCHROME1", "RGB", "PALETTE COLOR", "YBR_FULL", ""]),
    "SeriesInstanceUID": st.sampled_from(["", "1.2", "x" * 64]),
    "ImageType": st.sampled_from([["ORIGINAL", "PRIMARY", "MOSAIC"], ["DERIVED"]]),
}


@pytest.fixture(scope="module")
def small_series(tmp_path_factory):
    d = tmp_path_factory.mktemp("hyp")
    paths = write_dicom_series(d / "src", marker_volume((8, 10, 4)).astype(float))
    return [p.read_bytes() for p in paths]


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about the invalid values
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(st.tuples(st.sampled_from(sorted(FIELDS)), st.integers(0, 3), st.data()),
                        min_size=1, max_size=3))
def test_any_header_field_value_gives_a_volume_or_a_volume_read_error(tmp_path_factory, small_series,
                                                                     changes):
    folder = tmp_path_factory.mktemp("case")
    paths = []
    for n, raw in enumerate(small_series):
        paths.append(folder / f"{n}.dcm")
        paths[-1].write_bytes(raw)
    for field, which, data in changes:
        value = data.draw(FIELDS[field])
        ds = pydicom.dcmread(paths[which])
        try:
            setattr(ds, field, [str(v) for v in value] if isinstance(value, list) else value)
            ds.save_as(paths[which])
        except (ValueError, TypeError, OverflowError, OSError, struct.error):
            assume(False)  # pydicom cannot even write this value
    _volume_or_refusal(folder, [None])


@pytest.fixture(scope="module")
def small_enhanced(tmp_path_factory):
    from tests.core.dicom_fixtures import enhanced_from_classic

    d = tmp_path_factory.mktemp("hyp-enh")
    paths = write_dicom_series(d / "src", marker_volume((8, 10, 4)).astype(float), intercept=0.0)
    return enhanced_from_classic(paths, d / "mf.dcm", echoes=2).read_bytes()


_GROUP_FIELDS = {
    ("PlanePositionSequence", "ImagePositionPatient"): st.lists(_FLOATS, max_size=4),
    ("PixelMeasuresSequence", "PixelSpacing"): st.lists(_FLOATS, max_size=3),
    ("PixelValueTransformationSequence", "RescaleSlope"): _FLOATS,
    ("PixelValueTransformationSequence", "RescaleIntercept"): _FLOATS,
    ("FrameContentSequence", "DimensionIndexValues"): st.lists(st.integers(0, 2**32 - 1), max_size=3),
}


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=st.integers(0, 7), field=st.sampled_from(sorted(_GROUP_FIELDS)), data=st.data(),
       n_frames=st.one_of(st.none(), st.integers(0, 20)), drop_group=st.booleans())
def test_any_functional_group_value_gives_a_volume_or_a_volume_read_error(
        tmp_path_factory, small_enhanced, frame, field, data, n_frames, drop_group):
    folder = tmp_path_factory.mktemp("enh-case")
    path = folder / "mf.dcm"
    path.write_bytes(small_enhanced)
    ds = pydicom.dcmread(path)
    group = ds.PerFrameFunctionalGroupsSequence[frame]
    seq, keyword = field
    value = data.draw(_GROUP_FIELDS[field])
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    if seq not in group:  # a per-frame group overriding the shared one
        setattr(group, seq, Sequence([Dataset()]))
    try:
        if drop_group:
            delattr(group, seq)
        else:
            setattr(getattr(group, seq)[0], keyword,
                    [str(v) for v in value] if isinstance(value, list) and seq != "FrameContentSequence"
                    else value)
        if n_frames is not None:
            ds.NumberOfFrames = n_frames
        ds.save_as(path)
    except (ValueError, TypeError, OverflowError, OSError, struct.error):
        assume(False)
    _volume_or_refusal(folder, None)


def _volume_or_refusal(folder, series) -> None:
    """Under a 64 MiB budget, each series (``None``: all listed; ``[None]``: the default one)
    opens as a sane Volume or is refused with VolumeReadError; nothing else escapes."""
    set_memory_budget(64 << 20)
    try:
        listed = list_series(folder)  # listing a folder never raises: an unreadable file is skipped
        keys = [s.key for s in listed] if series is None else series
        for key in keys:
            vol = load_volume(folder, series=key)
            assert np.all(np.isfinite(vol.affine)) and vol.data.dtype != np.float64
            assert vol.data.dtype.kind != "f" or np.all(np.isfinite(vol.data))
    except VolumeReadError:
        pass
    finally:
        set_memory_budget(None)
