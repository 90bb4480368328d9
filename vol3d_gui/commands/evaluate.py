"""vol3d evaluate: AUC, accuracy, per-class recall and confusion matrix of a bundle on a
labelled split, preprocessed the way the bundle's card says; for a card with an operating
point, also the recall and confusion of the class a reader is shown (that threshold)."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a bundle (.keras with its .json card)")
    p.add_argument("--dataset", required=True, help="a MedMNIST-style .npz")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.add_argument("--limit", type=int, default=None, help="only the first N items of the split")
    p.add_argument("--batch-size", type=int, default=16)


def run(args) -> int:
    import numpy as np
    from tqdm import tqdm

    from vol3d_gui.core.errors import VolumeReadError
    from vol3d_gui.ml.bundle import load_bundle
    from vol3d_gui.ml.datasets import load_npz_dataset
    from vol3d_gui.ml.evaluation import evaluate_probs, metrics_at_operating_point

    bundle = load_bundle(args.model)
    ds = load_npz_dataset(args.dataset, bundle.input_shape, limit=args.limit, splits=(args.split,),
                          preprocessing=bundle.preprocessing)
    if args.split not in ds.splits:
        raise VolumeReadError(args.dataset, f"has no {args.split!r} split")
    split = ds.splits[args.split]
    n_data_classes = int(split.y.max()) + 1 if len(split.y) else 0
    if n_data_classes > len(bundle.class_names):
        raise VolumeReadError(args.dataset, f"labels go up to class {n_data_classes - 1} but the model "
                                            f"{bundle.label} has {len(bundle.class_names)} classes")
    probs = []
    with tqdm(total=len(split.y), unit="vol", disable=args.json, leave=False) as bar:
        for i in range(0, len(split.y), args.batch_size):
            probs.append(bundle.forward(split.x[i : i + args.batch_size]))
            bar.update(len(probs[-1]))
    probs = np.concatenate(probs) if probs else np.zeros((0, len(bundle.class_names)))
    m = evaluate_probs(split.y, probs, bundle.class_names)
    m.update(split=args.split, model=bundle.label, dataset=ds.name)
    if bundle.card.get("operating_point") and len(bundle.class_names) == 2:
        m["at_operating_point"] = metrics_at_operating_point(bundle.card, split.y, probs, bundle.class_names)
    if args.json:
        print(json.dumps(m, default=float))
        return 0
    print(f"{bundle.label} on {ds.name} [{args.split}], n={m['n']}")
    print(f"  AUC {m['auc']:.4f}   accuracy {m['accuracy']:.4f}   balanced accuracy {m['balanced_accuracy']:.4f}"
          "   (argmax)")
    for name, r in m["per_class_recall"].items():
        print(f"  recall {name}: {r:.4f}")
    width = max(len(n) for n in m["class_names"])
    print("  confusion (rows: truth, columns: predicted)")
    print(f"    {'':>{width}}  " + "  ".join(f"{n[:5]:>5}" for n in m["class_names"]))
    for name, row in zip(m["class_names"], m["confusion"]):
        print(f"    {name:>{width}}  " + "  ".join(f"{v:5d}" for v in row))
    op = m.get("at_operating_point")
    if op:
        print(f"  at the card's operating point, P({m['class_names'][1]}) >= {op['threshold']:.4f}: "
              f"balanced accuracy {op['balanced_accuracy']:.4f}, accuracy {op['accuracy']:.4f}, recall "
              + ", ".join(f"{k} {v:.4f}" for k, v in op["per_class_recall"].items())
              + f", confusion {op['confusion']}")
    return 0
