"""`vol3d score` throughput: volumes/s of the local engine with 1 and 2 workers (and of Ray
with 2 when it is installed), and the engine's per-item overhead against
ModelBundle.predict_batch in one process (read the NIfTI, preprocess, forward pass) and
against scoring.score_batch in one process (the same plus the content hash and the row: the
engine's own work without the engine).

    python -m bench score

N phantom volumes (the demo's 128x128x96 CT phantoms as .nii.gz, the bundled phantom
model at 48^3). An engine's steady rate is timed from the moment every worker has returned
its first batch (TensorFlow imported, the model loaded and its forward pass traced) to the
last batch; the start-up before that is reported apart, since it is paid once per run, not
per volume. Each configuration runs REPEAT times, in alternation with the others, so that
other work on the machine hits them alike; best and median are reported.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import report

MODEL = Path(__file__).resolve().parents[1] / "models" / "phantom-lesion.keras"
N = 120
BATCH = 4
REPEAT = 2


def _archive(root: Path, n: int):
    from vol3d_gui.core.io import save_nifti
    from vol3d_gui.core.phantom import lesion_phantom

    for i in range(n):
        vol, _ = lesion_phantom(i, i % 2 == 1)
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
    from vol3d_gui.ml.scoring import list_items, score_batch

    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        root = Path(d) / "archive"
        root.mkdir()
        _archive(root, N)
        items = list_items(root)
        bundle = load_bundle(MODEL)
        loaders = [lambda p=it.path: load_volume(p) for it in items]
        bundle.predict_batch(loaders[:BATCH], batch_size=BATCH)  # trace the forward pass
        configs = [("local", 1), ("local", 2)]
        try:
            import ray  # noqa: F401

            configs.append(("ray", 2))
        except ImportError:
            pass
        runs: dict[str, list[dict]] = {"baseline": [], "score_batch_in_process": []}
        for r in range(REPEAT):
            t0 = time.perf_counter()
            bundle.predict_batch(loaders, batch_size=BATCH)
            per_item = (time.perf_counter() - t0) / N
            runs["baseline"].append({"per_item_s": per_item, "volumes_per_s": 1.0 / per_item})
            # the engine's work without the engine: predict_batch plus the content hash and the row
            t0 = time.perf_counter()
            for i in range(0, N, BATCH):
                score_batch(bundle, items[i : i + BATCH])
            per_item = (time.perf_counter() - t0) / N
            runs["score_batch_in_process"].append({"per_item_s": per_item, "volumes_per_s": 1.0 / per_item})
            for engine, workers in configs:
                runs.setdefault(f"{engine}_{workers}_workers", []).append(
                    _engine(engine, workers, items, Path(d) / f"{engine}{workers}-{r}.csv"))
        results = {"items": f"{N} phantoms, 128x128x96 int16 .nii.gz, batches of {BATCH}",
                   "model": bundle.label, "load_average_at_start": load_start, "cpus": os.cpu_count(),
                   "ray": "installed" if len(configs) == 3 else "not installed"}
        for name, rs in runs.items():
            per = sorted(x["per_item_s"] for x in rs)
            results[name] = {"runs": rs, "best_per_item_s": per[0], "median_per_item_s": statistics.median(per),
                             "best_volumes_per_s": 1.0 / per[0]}
        base = results["baseline"]["median_per_item_s"]
        one, two = results["local_1_workers"], results["local_2_workers"]
        med = "median_per_item_s"
        results["ratio_local_2_over_1_workers_volumes_per_s"] = one[med] / two[med]
        results["local_1_worker_overhead_per_item_s"] = one[med] - base
        results["ratio_local_1_worker_over_predict_batch"] = one[med] / base
        results["ratio_local_1_worker_over_score_batch_in_process"] = (
            one[med] / results["score_batch_in_process"][med])
        if "ray_2_workers" in results:
            results["ratio_ray_2_over_local_1_worker_volumes_per_s"] = one[med] / results["ray_2_workers"][med]
        results["load_average_at_end"] = os.getloadavg()[0]
        return report("score", results)


if __name__ == "__main__":
    main()
