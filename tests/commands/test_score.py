"""`vol3d score` end to end over 40 phantom volumes (48^3 NIfTI) and one broken file, with
each engine: a run killed by SIGKILL partway and restarted with the same arguments ends with
every item exactly once, and every probability equals `vol3d predict`'s within 1e-5."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vol3d_gui.cli import main

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "phantom-lesion.keras"
N = 40

pytestmark = pytest.mark.skipif(not MODEL.exists(), reason="models/phantom-lesion is not in the tree")


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    from vol3d_gui.core.io import save_nifti
    from vol3d_gui.core.phantom import lesion_phantom

    root = tmp_path_factory.mktemp("archive")
    for i in range(N):
        vol, _ = lesion_phantom(i, i % 2 == 1, shape=(48, 48, 48), spacing=(3.0, 3.0, 3.0))
        (root / f"site{i % 3}").mkdir(exist_ok=True)
        save_nifti(vol, root / f"site{i % 3}" / f"case{i:03d}.nii.gz")
    (root / "broken.nii.gz").write_bytes(b"this is not gzip")
    return root


@pytest.fixture(scope="module")
def predicted(archive):
    """path -> the JSON line of `vol3d predict` for it."""
    paths = sorted(str(p) for p in archive.rglob("case*.nii.gz"))
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["predict", "--model", str(MODEL), *paths]) == 0
    lines = [json.loads(s) for s in buf.getvalue().splitlines()]
    return {d["path"]: d for d in lines}


def _rows_written(out: Path) -> int:
    if out.suffix == ".csv":
        return max(0, len(out.read_bytes().splitlines()) - 1) if out.exists() else 0
    parts = out.with_name(out.name + ".parts")
    return len(list(parts.glob("part-*.parquet"))) * 2 if parts.is_dir() else 0


def _kill_partway(args: list[str], out: Path, at_least: int, timeout: float = 240.0) -> int:
    """Start `vol3d score` in a session of its own and SIGKILL all of it (driver, pool
    workers, a local Ray) once ``at_least`` rows are on disk. Returns the rows then."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "vol3d_gui", "score", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    t0 = time.monotonic()
    try:
        while _rows_written(out) < at_least:
            if proc.poll() is not None:
                pytest.fail(f"vol3d score ended before it was killed: {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() - t0 > timeout:
                pytest.fail("vol3d score wrote too few rows in time")
            time.sleep(0.02)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    return _rows_written(out)


def _check(rows: list[dict], archive: Path, predicted: dict):
    ids = [r["item_id"] for r in rows]
    assert len(ids) == len(set(ids)) == N + 1, "every item exactly once"
    by_id = {r["item_id"]: r for r in rows}
    assert by_id["broken.nii.gz"]["status"] == "error"
    assert by_id["broken.nii.gz"]["error_type"] == "VolumeReadError"
    for path, ref in predicted.items():
        row = by_id[Path(path).relative_to(archive).as_posix()]
        assert row["status"] == "ok" and row["path"] == path
        got = np.array([row[f"prob_{c}"] for c in ref["probabilities"]])
        np.testing.assert_allclose(got, list(ref["probabilities"].values()), atol=1e-5)
        assert row["predicted_class"] == ref["class"]
        version = json.loads(MODEL.with_suffix(".json").read_text())["version"]  # the bundle's card, not a copy
        assert row["model_name"] == "phantom-lesion" and row["model_version"] == version


@pytest.mark.slow
@pytest.mark.parametrize("engine, suffix", [("local", ".csv"), ("ray", ".parquet")])
def test_a_killed_run_resumes_to_every_item_once_with_predicts_probabilities(engine, suffix, archive,
                                                                            predicted, tmp_path):
    if engine == "ray":
        pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'vol3d-gui[ray]')")
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    from vol3d_gui.core.results_table import read_results

    out = tmp_path / f"results{suffix}"
    args = ["--model", str(MODEL), "--input", str(archive), "--out", str(out), "--engine", engine,
            "--workers", "2", "--batch-size", "2", "--no-progress"]
    before = _kill_partway(args, out, at_least=6)
    assert 6 <= before < N + 1, "killed partway"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["score", *args]) == 0
    summary = json.loads(buf.getvalue().splitlines()[-1])
    assert summary["skipped"] >= before and summary["skipped"] + summary["written"] == N + 1
    assert summary["failed"] <= 1
    _check(read_results(out), archive, predicted)
    if engine == "ray":
        import ray

        assert not ray.is_initialized()  # the run shut down the Ray it started
    # the same arguments once more: nothing left to do, nothing written twice
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["score", *args]) == 0
    _check(read_results(out), archive, predicted)


def test_a_model_the_workers_cannot_load_stops_the_run_cleanly(archive, tmp_path, capsys):
    import shutil
    import zipfile

    bad = tmp_path / "bad.keras"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("config.json", "{}")  # a zip, but no Keras model
    shutil.copy(MODEL.with_suffix(".json"), bad.with_suffix(".json"))
    out = tmp_path / "r.csv"
    rc = main(["score", "--model", str(bad), "--input", str(archive), "--out", str(out), "--workers", "1",
               "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "cannot load the model in a worker" in err and "bad.keras" in err
    assert not out.exists() or len(out.read_text().splitlines()) <= 1  # no row for any item
