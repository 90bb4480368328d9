"""python -m bench [NAME ...] [--flag ...]: run every bench/bench_*.py (or the named ones).

Arguments starting with '-' are options a benchmark reads itself (e.g. dicom_j2k --full)."""

import importlib
import pkgutil
import sys
from pathlib import Path

names = [a for a in sys.argv[1:] if not a.startswith("-")] or sorted(
    m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_")
)
for name in names:
    mod = importlib.import_module(f"bench.{name if name.startswith('bench_') else 'bench_' + name}")
    print(f"== {mod.__name__}", flush=True)
    mod.main()
