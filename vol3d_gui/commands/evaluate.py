"""vol3d evaluate: AUC, accuracy, per-class recall and confusion matrix of a bundle on a
labelled split, each with its 95% confidence interval, preprocessed the way the bundle's card
says; for a card with an operating point, also the recall and confusion of the class a reader
is shown (that threshold). ``--record`` writes the test figures into the card."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .card_domain import add_data_arguments

    p.add_argument("--model", required=True, help="a bundle (.keras with its .json card)")
    add_data_arguments(p, "a MedMNIST-style .npz, a labelled folder, or 'phantom' (the phantom and folder "
                          "splits of vol3d train, with its --phantoms/--paired/--contrast/--seed)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.add_argument("--limit", type=int, default=None, help="only the first N items of the split")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--record", action="store_true",
                   help="write the figures into the card's metrics (the test split of the model's own "
                        "training data only); the .keras file is not touched")


def split_probs(bundle, split, batch_size: int, quiet: bool):
    """The bundle's probabilities for every item of a dataset split, in batches."""
    import numpy as np
    from tqdm import tqdm

    probs = []
    with tqdm(total=len(split.y), unit="vol", disable=quiet, leave=False) as bar:
        for i in range(0, len(split.y), batch_size):
            probs.append(bundle.forward(split.x[i : i + batch_size]))
            bar.update(len(probs[-1]))
    return np.concatenate(probs) if probs else np.zeros((0, len(bundle.class_names)))


def load_split(args, bundle):
    """The split ``args.split`` of ``args.dataset``, preprocessed for ``bundle``; its labels
    checked against the bundle's classes."""
    from pathlib import Path

    from vol3d_gui.core.errors import VolumeReadError
    from vol3d_gui.ml.datasets import load_npz_dataset

    from .card_domain import load_training_data

    if args.dataset == "phantom" or Path(args.dataset).is_dir():
        ds = load_training_data(args, bundle)
        if args.limit is not None:
            ds.splits = {k: type(v)(v.x[: args.limit], v.y[: args.limit]) for k, v in ds.splits.items()}
    else:
        ds = load_npz_dataset(args.dataset, bundle.input_shape, limit=args.limit, splits=(args.split,),
                              preprocessing=bundle.preprocessing)
    if args.split not in ds.splits:
        raise VolumeReadError(args.dataset, f"has no {args.split!r} split")
    split = ds.splits[args.split]
    n_data_classes = int(split.y.max()) + 1 if len(split.y) else 0
    if n_data_classes > len(bundle.class_names):
        raise VolumeReadError(args.dataset, f"labels go up to class {n_data_classes - 1} but the model "
                                            f"{bundle.label} has {len(bundle.class_names)} classes")
    return ds, split


def _check_record(args, bundle, ds=None) -> None:
    """--record's conditions: the arguments' before any data is read (phantoms take minutes to
    make), the data's hash once it is (``ds``)."""
    from vol3d_gui.ml.bundle import ModelError

    expected = (bundle.card.get("training_data") or {}).get("sha256")
    why = ("only the test split is recorded" if args.split != "test" else
           "--limit measures part of the split" if args.limit is not None else
           "the card names no training data to check the file against" if not expected else
           f"{args.dataset} is not the data this model was trained on"
           if ds is not None and ds.content_hash != expected else None)
    if why:
        raise ModelError(bundle.path, f"--record: {why}")


def run(args) -> int:
    from vol3d_gui.ml.bundle import load_bundle, update_card
    from vol3d_gui.ml.evaluation import evaluate_probs, metrics_at_operating_point
    from vol3d_gui.ml.intervals import with_interval

    bundle = load_bundle(args.model)
    if args.record:
        _check_record(args, bundle)
    ds, split = load_split(args, bundle)
    if args.record:
        _check_record(args, bundle, ds)
    probs = split_probs(bundle, split, args.batch_size, quiet=args.json)
    m = evaluate_probs(split.y, probs, bundle.class_names, intervals=True)
    m.update(split=args.split, model=bundle.label, dataset=ds.name)
    if bundle.card.get("operating_point") and len(bundle.class_names) == 2:
        m["at_operating_point"] = metrics_at_operating_point(bundle.card, split.y, probs, bundle.class_names,
                                                             intervals=True)
    if args.record:
        kept = {k: v for k, v in (bundle.card.get("metrics") or {}).items() if k not in m}
        m["recorded_by"] = f"vol3d evaluate --record ({ds.name}, sha256 {ds.content_hash[:12]})"
        update_card(bundle.path, {"metrics": {**kept, **{k: v for k, v in m.items() if k not in ("model", "dataset")}}})
    if args.json:
        print(json.dumps(m, default=float))
        return 0
    ci = m["intervals"]
    print(f"{bundle.label} on {ds.name} [{args.split}], n={m['n']}")
    print(f"  AUC {with_interval(m['auc'], ci['auc'], 4)}")
    print(f"  accuracy {with_interval(m['accuracy'], ci['accuracy'], 4)}   balanced accuracy "
          f"{with_interval(m['balanced_accuracy'], ci['balanced_accuracy'], 4)}   (argmax)")
    for name, r in m["per_class_recall"].items():
        print(f"  recall {name}: {with_interval(r, ci['per_class_recall'][name], 4)}")
    width = max(len(n) for n in m["class_names"])
    print("  confusion (rows: truth, columns: predicted)")
    print(f"    {'':>{width}}  " + "  ".join(f"{n[:5]:>5}" for n in m["class_names"]))
    for name, row in zip(m["class_names"], m["confusion"]):
        print(f"    {name:>{width}}  " + "  ".join(f"{v:5d}" for v in row))
    op = m.get("at_operating_point")
    if op:
        oci = op["intervals"]
        print(f"  at the card's operating point, P({m['class_names'][1]}) >= {op['threshold']:.4f}: balanced accuracy "
              f"{with_interval(op['balanced_accuracy'], oci['balanced_accuracy'], 4)}, accuracy {op['accuracy']:.4f}")
        print("    recall " + ", ".join(f"{k} {with_interval(v, oci['per_class_recall'][k], 4)}"
                                        for k, v in op["per_class_recall"].items())
              + f"; confusion {op['confusion']}")
    print(f"  ({ci['methods']})")
    if args.record:
        print(f"  recorded in {bundle.path.with_suffix('.json')}")
    return 0
