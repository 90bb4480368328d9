"""The layer rules of DESIGN.md, checked by import-linter, and ruff's lint, as tests."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    if exe.exists():
        return str(exe)
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return found


def test_import_contracts_hold():
    res = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff_is_clean():
    res = subprocess.run([_tool("ruff"), "check", "vol3d_gui", "tests", "bench"], cwd=REPO,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_core_store_ml_import_without_qt_or_tensorflow():
    # A fresh interpreter: importing the Qt-free layers must not pull in Qt, and core/store
    # must not pull in TensorFlow (ml imports it lazily, inside functions).
    code = (
        "import sys, pkgutil, importlib, vol3d_gui.core, vol3d_gui.store, vol3d_gui.ml\n"
        "for pkg in (vol3d_gui.core, vol3d_gui.store, vol3d_gui.ml):\n"
        "    for m in pkgutil.iter_modules(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "bad = [m for m in ('PySide6', 'pyqtgraph', 'OpenGL', 'tensorflow') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "", f"imported at module level: {res.stdout.strip()}"
