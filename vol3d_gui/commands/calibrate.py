"""vol3d calibrate: a new bundle whose probabilities are Platt-scaled on a validation split.

For a two-class bundle trained before `vol3d train` calibrated (or with --no-calibrate): the
ranking (AUC) is unchanged, the 0.5 decision and the probabilities shown to the reader
become meaningful. The source bundle is never changed; the new card names it as parent and
holds the calibration record and the test metrics measured again.
"""

from __future__ import annotations

import argparse
import json
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="the bundle to calibrate")
    p.add_argument("--dataset", required=True, help="a MedMNIST-style .npz with val (and test) splits")
    p.add_argument("--out", required=True, help="the new bundle path (never overwritten)")
    p.add_argument("--version", default=None, help="version in the new card (default: parent's + '.cal')")


def run(args) -> int:
    from vol3d_gui.core.errors import VolumeReadError
    from vol3d_gui.ml.bundle import ModelError, bundle_paths, load_bundle, save_bundle
    from vol3d_gui.ml.calibration import calibrate_binary
    from vol3d_gui.ml.datasets import load_npz_dataset
    from vol3d_gui.ml.evaluation import evaluate_probs
    from vol3d_gui.ml.training import predict_arrays

    model_path, card_path = bundle_paths(args.out)
    if model_path.exists() or card_path.exists():
        raise ModelError(model_path, "exists already; bundles are never overwritten (choose another --out)")
    bundle = load_bundle(args.model)
    if len(bundle.class_names) != 2:
        raise ModelError(args.model, "calibration applies to two-class models")
    ds = load_npz_dataset(args.dataset, bundle.input_shape, splits=("val", "test"),
                          preprocessing=bundle.preprocessing)
    if "val" not in ds.splits:
        raise VolumeReadError(args.dataset, "has no 'val' split to calibrate on")
    model = bundle.model
    record = calibrate_binary(model, ds.splits["val"].x, ds.splits["val"].y, predict_arrays)
    card = json.loads(json.dumps(bundle.card))
    card["parent"] = f"{bundle.card.get('name')} v{bundle.card.get('version')}"
    card["version"] = args.version or f"{bundle.card.get('version', '1')}.cal"
    card["created"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    card["calibration"] = record
    if "test" in ds.splits:
        before = card.get("metrics")
        m = evaluate_probs(ds.splits["test"].y, predict_arrays(model, ds.splits["test"].x), bundle.class_names,
                           intervals=True)
        m["split"] = "test"
        card["metrics"] = m
        card["metrics_before_calibration"] = before
    path = save_bundle(model, card, model_path)
    print(json.dumps({"bundle": str(path), "calibration": record, "metrics": card.get("metrics")},
                     default=float))
    return 0
