"""Hostile bundles: cards of the wrong shape, names that climb out of --out, a full disk
during a save, leftovers of a killed save, and the CLI's one-line errors."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vol3d_gui.cli import main
from vol3d_gui.ml.bundle import (
    ModelError,
    bundle_paths,
    clean_interrupted_saves,
    list_bundles,
    next_version_path,
    read_card,
    safe_bundle_name,
    save_bundle,
)

CARD = {"name": "m", "class_names": ["a", "b"], "input_shape": [4, 4, 4],
        "preprocessing": {"type": "minmax"}, "gradcam_layer": "gradcam_conv"}


class FakeModel:
    """What save_bundle needs of a Keras model: input_shape and save(path)."""

    input_shape = (None, 4, 4, 4, 1)

    def save(self, path):
        Path(path).write_bytes(b"PK\x05\x06" + b"\0" * 18)


@pytest.mark.parametrize("card", [3, None, "a string", [1, 2], {**CARD, "class_names": "ab"},
                                  {**CARD, "input_shape": [4, "x", 4]}, {**CARD, "input_shape": 4},
                                  {**CARD, "preprocessing": "minmax"}, {**CARD, "name": ["x"]},
                                  {**CARD, "gradcam_layer": 3}, {**CARD, "input_shape": [4, 4, -1]},
                                  {**CARD, "card_format": "2"}, {**CARD, "card_format": 0},
                                  {**CARD, "card_format": True}])
def test_a_card_of_the_wrong_shape_is_a_model_error(tmp_path, card):
    (tmp_path / "m.keras").write_bytes(b"x")
    (tmp_path / "m.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="m.json"):
        read_card(tmp_path / "m.keras")


def test_a_card_from_a_newer_vol3d_is_refused_by_name_and_older_cards_still_load(tmp_path):
    """A card says its format; one later than this code reads is refused with what to do, not
    half-read (a feature precision in a layout it does not know would fail deep in a reshape).
    What this code writes (a save, a card update) is its own format; a card without the field
    (models/ holds such) is format 1 and loads."""
    from vol3d_gui.ml.bundle import CARD_FORMAT, update_card

    path = save_bundle(FakeModel(), {**CARD, "card_format": 1}, tmp_path / "m")
    assert read_card(path)["card_format"] == CARD_FORMAT
    card_path = bundle_paths(path)[1]
    card_path.write_text(json.dumps(CARD))  # an older card: no field
    assert read_card(path)["name"] == "m"
    update_card(path, {"note": "measured"})
    assert read_card(path)["card_format"] == CARD_FORMAT
    card_path.write_text(json.dumps({**CARD, "card_format": CARD_FORMAT + 1}))
    with pytest.raises(ModelError, match=f"format {CARD_FORMAT + 1}, written by a newer vol3d"):
        read_card(path)
    rc = subprocess.run([sys.executable, "-m", "vol3d_gui", "evaluate", "--model", str(path), "--dataset", "x.npz"],
                        capture_output=True, text=True, timeout=120)
    assert rc.returncode != 0 and "newer vol3d" in rc.stderr and "Traceback" not in rc.stderr


@pytest.mark.parametrize("name", ["../../x", "/etc/passwd", "..", "a/../../b", "C:\\evil", "", ".hidden",
                                  "x\0y", "résumé"])
def test_bundle_names_cannot_leave_the_output_folder(tmp_path, name):
    out = tmp_path / "out"
    out.mkdir()
    path = next_version_path(out, name)
    assert path.parent == out and not path.name.startswith(".")
    assert safe_bundle_name(name) and "/" not in safe_bundle_name(name)


def test_a_full_disk_during_a_save_is_a_model_error_and_leaves_nothing(tmp_path, monkeypatch):
    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(ModelError, match="disk is full"):
        save_bundle(FakeModel(), CARD, tmp_path / "m.keras")
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_a_killed_save_are_ignored_and_cleaned(tmp_path):
    save_bundle(FakeModel(), CARD, tmp_path / "m.keras")
    # a save killed between writing its temp files and renaming them, by a process now gone
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    left = [tmp_path / f".tmp-{dead}-abc.keras", tmp_path / f".tmp-{dead}-abc.keras.json"]
    old = tmp_path / ".tmp-xyz.keras"  # an older vol3d's temp name, without a pid
    live = tmp_path / f".tmp-{os.getpid()}-run.keras"  # a save still running here
    for p in (*left, old, live):
        p.write_bytes(b"partial")
    os.utime(old, (1, 1))
    assert bundle_paths(tmp_path)[0] == tmp_path / "m.keras"  # the folder still loads
    assert list_bundles(tmp_path) == [tmp_path / "m.keras"]
    assert not any(p.exists() for p in (*left, old)) and live.exists()
    assert clean_interrupted_saves(tmp_path) == []


def test_cli_errors_are_one_line_without_a_traceback(tmp_path, capsys):
    card = tmp_path / "m.json"
    card.write_text("42")
    (tmp_path / "m.keras").write_bytes(b"x")
    assert main(["predict", "--model", str(tmp_path / "m.keras"), str(tmp_path / "x.nii")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "m.json" in err


@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left on device", "/out/m.keras"),
                                 PermissionError(errno.EACCES, "Permission denied"),
                                 MemoryError()])
def test_cli_turns_os_and_store_errors_into_one_line(monkeypatch, capsys, exc):
    from vol3d_gui.commands import predict
    from vol3d_gui.store.labels import LabelStoreError

    for error in (exc, LabelStoreError("/x/l.db", "not a usable label database\n(file is not a database)")):
        def run(args, error=error):
            raise error

        monkeypatch.setattr(predict, "run", run)
        assert main(["predict", "--model", "m.keras", "x.nii"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("vol3d predict: error: ") and err.count("\n") == 1, err


def test_an_output_folder_that_cannot_be_created_is_a_model_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ModelError, match="cannot create the folder"):
        save_bundle(FakeModel(), CARD, blocker / "sub" / "m.keras")
