"""The label store keeps every committed label: concurrent writers, SIGKILL, CSV, history."""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from vol3d_gui.store.labels import LabelStore, LabelStoreError, labelset_hash

REPO = Path(__file__).resolve().parents[2]
WRITER = """
import sys
from vol3d_gui.store.labels import LabelStore
path, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with LabelStore(path) as s:
    for i in range(n):
        s.add_label(f"{who}/{i:05d}", i % 3, reviewer=who, model_prediction=(1, [0.2, 0.7, 0.1]))
        print(i, flush=True)  # reported only after the commit returned
"""


def _writer(path, who, n):
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), who, str(n)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)


def test_two_processes_labelling_at_once_keep_all_labels(tmp_path):
    db = tmp_path / "labels.db"
    LabelStore(db).close()
    procs = [_writer(db, who, 200) for who in ("alice", "bob")]
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
    with LabelStore(db) as s:
        cur = s.current_labels()
        assert len([k for k in cur if k.startswith("alice/")]) == 200
        assert len([k for k in cur if k.startswith("bob/")]) == 200


def test_sigkill_mid_write_loses_no_committed_label(tmp_path):
    db = tmp_path / "labels.db"
    p = _writer(db, "carol", 100000)
    reported = []
    deadline = time.time() + 60
    while len(reported) < 300 and time.time() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        reported.append(int(line))
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    assert len(reported) >= 300
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    with LabelStore(db) as s:
        cur = s.current_labels()
        missing = [i for i in reported if f"carol/{i:05d}" not in cur]
        assert not missing
        # the killed writer's lock died with it: the next writer is not stuck
        s.add_label("after/kill", 1, reviewer="dave")
        assert s.current_label("after/kill").label == 1


def test_latest_event_wins_history_kept_and_tombstones(tmp_path):
    with LabelStore(tmp_path / "l.db") as s:
        s.add_label("a", 0, reviewer="r1", content_hash="h1")
        s.add_label("a", 1, reviewer="r2", class_name="lesion", model_prediction=(0, [0.6, 0.4]),
                    model_version="phantom-lesion v1")
        s.add_label("b", 0, reviewer="r1")
        cur = s.current_labels()
        assert cur["a"].label == 1 and cur["a"].reviewer == "r2" and cur["a"].model_probabilities == [0.6, 0.4]
        assert [e.label for e in s.history("a")] == [0, 1]
        s.clear_label("b", reviewer="r1")
        assert "b" not in s.current_labels() and len(s.history("b")) == 2
        assert s.labelled_count() == 1
        assert s.stale_labels({"a": "other"}) == [] and s.current_labels()["a"].content_hash is None
        s.add_label("c", 1, content_hash="old", reviewer="r1")
        assert s.stale_labels({"c": "new"}) == ["c"]


def test_csv_round_trip_is_idempotent(tmp_path):
    with LabelStore(tmp_path / "a.db") as s:
        for i in range(5):
            s.add_label(f"item{i}", i % 2, reviewer="x")
        s.clear_label("item4", reviewer="x")
        out = s.export_csv(tmp_path / "labels.csv")
        want = {k: e.label for k, e in s.current_labels().items()}
    with LabelStore(tmp_path / "b.db") as t:
        assert t.import_csv(out) == 6
        assert t.import_csv(out) == 0
        assert {k: e.label for k, e in t.current_labels().items()} == want
    assert labelset_hash(want) == labelset_hash(dict(reversed(list(want.items()))))


def test_bad_csv_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("item_key,label\nx,1\ny,notanumber\n")
    with LabelStore(tmp_path / "l.db") as s, pytest.raises(LabelStoreError, match=r"bad.csv.*line 3"):
        s.import_csv(bad)


def test_not_a_database(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LabelStoreError, match="junk.db"):
        LabelStore(junk)


OPEN_AS = """
import os, sys
from vol3d_gui.store.labels import LabelStore, LabelStoreError
if os.geteuid() == 0:
    os.setgid(65534)
    os.setuid(65534)  # nobody: root would write anywhere, a reader on a shared drive would not
try:
    with LabelStore(sys.argv[1]) as s:
        s.add_label("x::1", 0, reviewer="r")
except LabelStoreError as exc:
    print("LabelStoreError", exc)
"""


@pytest.mark.parametrize("existing", [False, True])
def test_read_only_location(existing):
    # Outside pytest's tmp_path (private to root) so that the unprivileged process can reach it.
    ro = Path(tempfile.mkdtemp(prefix="vol3d-ro-"))
    try:
        if existing:
            with LabelStore(ro / "l.db") as s:
                s.add_label("a::1", 1, reviewer="r")
            for f in ro.iterdir():
                f.chmod(0o444)
        ro.chmod(0o555)
        p = subprocess.run([sys.executable, "-c", OPEN_AS, str(ro / "l.db")], cwd=REPO, capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        assert p.stdout.startswith("LabelStoreError") and "l.db" in p.stdout, p.stdout
        if existing:  # and what was there is untouched
            ro.chmod(0o755)
            with LabelStore(ro / "l.db") as s:
                assert list(s.current_labels()) == ["a::1"]
    finally:
        ro.chmod(0o755)
        shutil.rmtree(ro)


def test_unwritable_path_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(LabelStoreError, match="file"):
        LabelStore(tmp_path / "file" / "l.db")


def test_processes_creating_the_same_new_database_at_once(tmp_path):
    db = tmp_path / "new" / "labels.db"  # neither the folder nor the file exists yet
    procs = [_writer(db, who, 50) for who in ("p0", "p1", "p2")]
    for p in procs:
        p.communicate(timeout=120)
        assert p.returncode == 0
    with LabelStore(db) as s:
        assert s.labelled_count() == 150
        assert sorted({k.split("/")[0] for k in s.current_labels()}) == ["p0", "p1", "p2"]
