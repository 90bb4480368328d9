"""python -m bench [NAME ...]: run every bench/bench_*.py (or the named ones)."""

import importlib
import pkgutil
import sys
from pathlib import Path

names = sys.argv[1:] or sorted(
    m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_")
)
for name in names:
    mod = importlib.import_module(f"bench.{name if name.startswith('bench_') else 'bench_' + name}")
    print(f"== {mod.__name__}", flush=True)
    mod.main()
