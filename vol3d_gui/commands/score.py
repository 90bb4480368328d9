"""vol3d score: score every volume of a folder or manifest with a bundle into a results table.

Rows are written as batches finish; restarted with the same arguments after a kill, the run
skips the items already in the table. An item that cannot be read is a row with its error,
never the end of the run. See vol3d_gui/ml/scoring.py and score_engines.py.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a bundle (.keras with its .json card)")
    p.add_argument("--input", required=True,
                   help="a folder (every NIfTI/NRRD file and DICOM series in it), a MedMNIST .npz, "
                        "one volume, or a manifest .csv (column path; optional id, series)")
    p.add_argument("--out", required=True, help="the results table, .csv or .parquet (resumed if it exists)")
    p.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="local: a process pool on this machine; ray: Ray actors, locally or on a cluster")
    p.add_argument("--address", default=None, help="a Ray cluster's address (ray engine; default: a local Ray)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes / actors, each with its own copy of the model "
                        "(default: the CPUs of this machine or cluster)")
    p.add_argument("--batch-size", type=int, default=4, help="volumes per task (one forward pass)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from vol3d_gui.core.errors import Vol3dError
    from vol3d_gui.ml.scoring import list_items, run_scoring

    if args.workers is not None and args.workers < 1:
        raise Vol3dError("--workers must be at least 1")
    if args.batch_size < 1:
        raise Vol3dError("--batch-size must be at least 1")
    items = list_items(args.input)
    summary = run_scoring(args.model, items, args.out, engine=args.engine, workers=args.workers,
                          address=args.address, batch_size=args.batch_size, progress=not args.no_progress)
    print(json.dumps(summary), flush=True)
    return 0
