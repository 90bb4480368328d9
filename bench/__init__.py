"""Benchmarks: each bench_*.py measures against a baseline run in the same process."""
