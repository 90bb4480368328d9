"""vol3d evaluate: AUC, accuracy, per-class recall and confusion matrix of a bundle."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a bundle (.keras with its .json card)")
    p.add_argument("--dataset", required=True, help="a MedMNIST-style .npz")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--limit", type=int, default=None)


def run(args) -> int:
    from vol3d_gui.ml.bundle import load_bundle
    from vol3d_gui.ml.datasets import load_npz_dataset
    from vol3d_gui.ml.evaluation import evaluate_probs
    from vol3d_gui.ml.training import predict_arrays

    bundle = load_bundle(args.model)
    ds = load_npz_dataset(args.dataset, bundle.input_shape, limit=args.limit, splits=(args.split,))
    if ds.preprocessing != bundle.preprocessing:
        # the card rules: re-preprocess the split the bundle's way
        import numpy as np

        from vol3d_gui.ml.datasets import _preprocess_stack

        raw = np.load(args.dataset)[f"{args.split}_images"]
        ds.splits[args.split].x = _preprocess_stack(raw, bundle.input_shape, bundle.preprocessing, args.limit)
    split = ds.splits[args.split]
    m = evaluate_probs(split.y, predict_arrays(bundle.model, split.x), bundle.class_names)
    m.update(split=args.split, model=bundle.label, dataset=ds.name)
    if args.json:
        print(json.dumps(m, default=float))
        return 0
    print(f"{bundle.label} on {ds.name} [{args.split}], n={m['n']}")
    print(f"  AUC {m['auc']:.4f}   accuracy {m['accuracy']:.4f}   balanced accuracy {m['balanced_accuracy']:.4f}")
    for name, r in m["per_class_recall"].items():
        print(f"  recall {name}: {r:.4f}")
    width = max(len(n) for n in m["class_names"])
    print("  confusion (rows: truth, columns: predicted)")
    for name, row in zip(m["class_names"], m["confusion_matrix"]):
        print(f"    {name:>{width}}  " + "  ".join(f"{v:5d}" for v in row))
    return 0
