"""Shared timing helpers for the benchmarks. Results are ratios against a baseline measured
in the same run, so they travel between machines better than raw seconds."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def timeit(fn: Callable[[], object], *, repeat: int = 5, warmup: int = 1) -> dict:
    """Run ``fn`` warmup + repeat times; return best and median seconds of the timed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"best_s": min(times), "median_s": statistics.median(times), "runs": repeat}


def interleaved(fns: dict[str, Callable[[], object]], *, repeat: int = 5, warmup: int = 1) -> dict:
    """Time several callables in alternation (A B A B ...) so drift on a shared machine hits
    all of them alike. Returns name -> {best_s, median_s}."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: {"best_s": min(v), "median_s": statistics.median(v), "runs": repeat}
            for k, v in times.items()}


def report(name: str, results: dict) -> dict:
    """Print results and write them to bench/out/NAME.json with a note of the machine."""
    results = {"benchmark": name, "machine": platform.platform(), "python": platform.python_version(),
               **results}
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(results, indent=2, default=float))
    print(json.dumps(results, indent=2, default=float))
    return results
