"""Compressed series decoded by worker processes: the same pixels as in this thread, refusals
come back typed, and Cancel stops any reader between files or chunks."""

import threading

import numpy as np
import pydicom
import pytest

from tests.core.dicom_fixtures import compress_series
from tests.core.io_fixtures import marker_volume, write_dicom_series
from vol3d_gui.core.cooperate import ReadCancelled, cancellable
from vol3d_gui.core.errors import VolumeReadError
from vol3d_gui.core.io import load_volume
from vol3d_gui.core.readers.dicom import decode


def _compressed_series(folder, n=10, side=40):
    from pydicom.uid import JPEG2000Lossless

    hu = marker_volume((side, side + 4, n)).astype(np.float64) - 1000.0
    paths = write_dicom_series(folder, hu)
    compress_series(paths, JPEG2000Lossless)
    return hu, paths


def _spy_workers(monkeypatch):
    used = []
    real = decode._in_workers
    monkeypatch.setattr(decode, "_in_workers", lambda *a: used.append(real(*a)) or used[-1])
    return used


def test_workers_decode_what_this_thread_decodes(tmp_path, monkeypatch):
    hu, paths = _compressed_series(tmp_path / "s")
    assert len(paths) >= decode.MIN_FRAMES_FOR_WORKERS
    used = _spy_workers(monkeypatch)
    pooled = load_volume(tmp_path / "s")
    assert used == [True]
    monkeypatch.setenv("VOL3D_DECODE_WORKERS", "0")
    used.clear()
    here = load_volume(tmp_path / "s")
    assert used == []
    np.testing.assert_array_equal(pooled.data, here.data)
    np.testing.assert_array_equal(pooled.data, hu.astype(np.int16))


def test_a_refusal_in_a_worker_comes_back_as_a_typed_error_naming_the_file(tmp_path, monkeypatch):
    _, paths = _compressed_series(tmp_path / "s")
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.Rows = ds.Columns = 32  # the codestreams stay 40x44: refused before decoding
        ds.save_as(p)
    calls = []
    real = decode._in_workers
    monkeypatch.setattr(decode, "_in_workers", lambda *a: calls.append(1) or real(*a))
    with pytest.raises(VolumeReadError, match="refused before decoding") as info:
        load_volume(tmp_path / "s")
    assert calls == [1]  # raised by a worker, re-raised here
    assert any(str(p) in str(info.value) for p in paths)


def test_a_few_frames_are_decoded_here(tmp_path, monkeypatch):
    _compressed_series(tmp_path / "s", n=decode.MIN_FRAMES_FOR_WORKERS - 1)
    used = _spy_workers(monkeypatch)
    load_volume(tmp_path / "s")
    assert used == []


def _cancel_after(monkeypatch, module, name, n):
    """Set the returned event after ``n`` calls of module.name (a reader's per-file step)."""
    ev, calls = threading.Event(), []
    real = getattr(module, name)

    def counted(*a, **k):
        calls.append(1)
        if len(calls) == n:
            ev.set()
        return real(*a, **k)

    monkeypatch.setattr(module, name, counted)
    return ev, calls


def test_cancel_stops_a_dicom_folder_read_between_files(tmp_path, monkeypatch):
    from vol3d_gui.core.readers.dicom import scan

    write_dicom_series(tmp_path, marker_volume((16, 16, 30)).astype(float))
    ev, calls = _cancel_after(monkeypatch, scan, "_read_header", 5)
    with cancellable(ev), pytest.raises(ReadCancelled):
        load_volume(tmp_path)
    assert len(calls) == 5  # no header read after the Cancel


def test_cancel_stops_a_compressed_decode_in_the_workers(tmp_path, monkeypatch):
    _compressed_series(tmp_path / "s", n=12)
    ev = threading.Event()
    real = decode._get_pool

    def pool_then_cancel():
        ev.set()  # pressed as the decoding starts
        return real()

    monkeypatch.setattr(decode, "_get_pool", pool_then_cancel)
    with cancellable(ev), pytest.raises(ReadCancelled):
        load_volume(tmp_path / "s")


def test_cancel_stops_a_nifti_read_between_chunks(tmp_path, monkeypatch):
    import nibabel as nib

    from vol3d_gui.core.readers import nifti

    monkeypatch.setattr(nifti, "_READ_CHUNK", 4096)
    data = np.arange(40 * 40 * 40, dtype=np.int16).reshape(40, 40, 40)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "v.nii.gz")
    ev, calls = _cancel_after(monkeypatch, nifti, "checkpoint", 3)
    with cancellable(ev), pytest.raises(ReadCancelled):
        load_volume(tmp_path / "v.nii.gz")
    assert len(calls) == 3


def test_without_a_cancel_scope_the_checkpoints_only_yield(tmp_path):
    import nibabel as nib

    data = np.arange(20 * 20 * 20, dtype=np.int16).reshape(20, 20, 20)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "v.nii.gz")
    np.testing.assert_array_equal(load_volume(tmp_path / "v.nii.gz").data, data)


_LOAD_THEN_DIE = """
import os, sys
from vol3d_gui.core.io import load_volume
from vol3d_gui.core.readers.dicom import decode
if __name__ == "__main__":
    load_volume(sys.argv[1])
    print(" ".join(map(str, decode._pool._processes)), flush=True)
    os._exit(0)  # no atexit, as a crash or a kill would leave
"""


def test_workers_leave_when_the_app_dies_without_cleaning_up(tmp_path):
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    _compressed_series(tmp_path / "s")
    script = tmp_path / "die.py"
    script.write_text(_LOAD_THEN_DIE)
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "s")], capture_output=True,
                         text=True, check=True, cwd=repo, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(repo)})
    pids = [int(p) for p in out.stdout.split()]
    assert pids

    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    deadline = time.monotonic() + 20
    while any(map(alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(alive, pids))
