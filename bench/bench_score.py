"""`vol3d score` throughput: volumes/s of the local engine with 1 and 2 workers (and of Ray
with 2 when it is installed), and the engine's per-item overhead against
ModelBundle.predict_batch in one process doing the same work (read the NIfTI, preprocess,
forward pass).

    python -m bench score

N phantom volumes (48^3 NIfTI, the bundled phantom model). An engine's steady rate is
timed from the moment every worker has returned its first batch (TensorFlow imported, the
model loaded and its forward pass traced) to the last batch; the start-up before that is
reported apart, since it is paid once per run, not per volume.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench.common import report

MODEL = Path(__file__).resolve().parents[1] / "models" / "phantom-lesion.keras"
N = 160
BATCH = 4


def _archive(root: Path, n: int):
    from vol3d_gui.core.io import save_nifti
    from vol3d_gui.core.phantom import lesion_phantom

    for i in range(n):
        vol, _ = lesion_phantom(i, i % 2 == 1, shape=(48, 48, 48), spacing=(3.0, 3.0, 3.0))
        save_nifti(vol, root / f"case{i:04d}.nii.gz")


def _engine(engine: str, workers: int, items, out: Path) -> dict:
    from vol3d_gui.ml.scoring import run_scoring

    stamps: list[tuple[float, int, str]] = []
    t0 = time.perf_counter()
    s = run_scoring(MODEL, items, out, engine=engine, workers=workers, batch_size=BATCH, progress=False,
                    on_rows=lambda rows: stamps.append((time.perf_counter(), len(rows), rows[0]["worker"])))
    total = time.perf_counter() - t0
    assert s["written"] == len(items) and s["failed"] == 0, s
    seen: set[str] = set()
    warm = len(stamps)
    for i, (_, _, worker) in enumerate(stamps, start=1):  # until every worker has answered
        seen.add(worker)
        if len(seen) == workers:
            warm = i
            break
    t_warm = stamps[warm - 1][0]
    n_steady = sum(n for _, n, _ in stamps[warm:])
    per_item = (stamps[-1][0] - t_warm) / n_steady
    return {"seconds_total": total, "startup_s": t_warm - t0, "steady_items": n_steady,
            "per_item_s": per_item, "volumes_per_s": 1.0 / per_item,
            "volumes_per_s_end_to_end": len(items) / total}


def main() -> dict:
    from vol3d_gui.core.io import load_volume
    from vol3d_gui.ml.bundle import load_bundle
    from vol3d_gui.ml.scoring import list_items

    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "archive"
        root.mkdir()
        _archive(root, N)
        items = list_items(root)
        bundle = load_bundle(MODEL)
        loaders = [lambda p=it.path: load_volume(p) for it in items]
        bundle.predict_batch(loaders[:BATCH], batch_size=BATCH)  # trace the forward pass
        t0 = time.perf_counter()
        bundle.predict_batch(loaders, batch_size=BATCH)
        base = (time.perf_counter() - t0) / N
        results = {"items": f"{N} phantoms, 48^3 int16 NIfTI, batches of {BATCH}", "model": bundle.label,
                   "load_average_at_start": os.getloadavg()[0], "cpus": os.cpu_count(),
                   "baseline_predict_batch_in_process": {"per_item_s": base, "volumes_per_s": 1.0 / base}}
        engines = [("local", 1), ("local", 2)]
        try:
            import ray  # noqa: F401

            engines.append(("ray", 2))
        except ImportError:
            results["ray"] = "not installed"
        for engine, workers in engines:
            results[f"{engine}_{workers}_workers"] = _engine(engine, workers, items,
                                                             Path(d) / f"{engine}{workers}.csv")
        one, two = results["local_1_workers"], results["local_2_workers"]
        results["ratio_local_2_over_1_workers_volumes_per_s"] = two["volumes_per_s"] / one["volumes_per_s"]
        results["local_1_worker_overhead_per_item_s"] = one["per_item_s"] - base
        results["ratio_local_1_worker_over_predict_batch"] = one["per_item_s"] / base
        if "ray_2_workers" in results:
            ray2 = results["ray_2_workers"]
            results["ratio_ray_2_over_1_local_worker_volumes_per_s"] = ray2["volumes_per_s"] / one["volumes_per_s"]
            results["ray_2_workers_overhead_per_item_s"] = ray2["per_item_s"] - base / 2
        results["load_average_at_end"] = os.getloadavg()[0]
        return report("score", results)


if __name__ == "__main__":
    main()
