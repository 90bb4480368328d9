"""vol3d card-domain: record a bundle's training domain, reliability table, operating point and
the uncertainty's error AUROC in its card, from forward passes over its own data splits.

For bundles trained before `vol3d train` wrote these fields (the two in models/). The .keras
file is never touched; the card is rewritten atomically with every existing field kept. The
data must be the bundle's training data (checked against the card's SHA-256), because the
domain is what the model was trained on, not whatever is at hand.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="the bundle whose card gets the fields")
    add_data_arguments(p, "its training data: a MedMNIST-style .npz, a labelled folder, or 'phantom'")
    p.add_argument("--target-sensitivity", type=float, default=None,
                   help="operating point: the highest threshold reaching this sensitivity on the "
                        "validation split (default: the threshold with the highest validation "
                        "balanced accuracy)")
    p.add_argument("--any-data", action="store_true",
                   help="accept data whose hash differs from the card's training data")


def add_data_arguments(p: argparse.ArgumentParser, dataset_help: str) -> None:
    """--dataset and the options that regenerate a bundle's phantom or folder data."""
    p.add_argument("--dataset", required=True, help=dataset_help)
    p.add_argument("--phantoms", type=int, default=300, help="phantom cases, as given to vol3d train")
    p.add_argument("--paired", action="store_true", help="phantoms: as given to vol3d train")
    p.add_argument("--contrast", type=float, default=1.0, help="phantom lesion contrast")
    p.add_argument("--seed", type=int, default=0, help="phantoms and folders: as given to vol3d train")


def load_training_data(args, bundle):
    from vol3d_gui.ml.datasets import load_folder_dataset, load_npz_dataset, phantom_dataset

    if args.dataset == "phantom":
        return phantom_dataset(args.phantoms, bundle.input_shape, seed=args.seed, contrast=args.contrast,
                               paired=args.paired)
    from pathlib import Path

    path = Path(args.dataset)
    if path.is_dir():
        return load_folder_dataset(path, bundle.input_shape, bundle.preprocessing, seed=args.seed)
    # the same first-N items per split that training used (vol3d train --limit)
    limit = (bundle.card.get("training_data") or {}).get("limit")
    return load_npz_dataset(path, bundle.input_shape, preprocessing=bundle.preprocessing, limit=limit)


def run(args) -> int:
    from vol3d_gui.core.errors import VolumeReadError
    from vol3d_gui.ml.bundle import ModelError, load_bundle, update_card
    from vol3d_gui.ml.domain_fit import fit_card_fields

    bundle = load_bundle(args.model)
    ds = load_training_data(args, bundle)
    expected = (bundle.card.get("training_data") or {}).get("sha256")
    if expected and ds.content_hash != expected and not args.any_data:
        raise ModelError(bundle.path, f"{args.dataset} (sha256 {ds.content_hash[:12]}...) is not the data "
                                      f"this model was trained on ({expected[:12]}...); pass the "
                                      "training command's data options, or --any-data")
    missing = [s for s in ("train", "val") if s not in ds.splits]
    if missing:
        raise VolumeReadError(args.dataset, f"has no {' or '.join(missing)} split")
    splits = {k: (v.x, v.y) for k, v in ds.splits.items()}
    from vol3d_gui.commands.train_folds import card_oof

    try:  # a fold ensemble's operating point comes from its out-of-fold predictions, kept in its card
        held_out = card_oof(bundle.card, ds)
    except (KeyError, ValueError) as exc:
        raise ModelError(bundle.path, f"the card's out-of-fold predictions do not fit {args.dataset} ({exc})") from exc
    fields = fit_card_fields(bundle, splits, ds.geometries, args.target_sensitivity, held_out=held_out)
    from vol3d_gui.commands.train import command_line

    fields["domain"]["fitted_on"] = {"dataset": ds.name, "sha256": ds.content_hash,
                                     "command": command_line(args, "card-domain", add_arguments)}
    test = ds.splits.get("test")
    if fields.get("operating_point") and bundle.card.get("metrics") and test is not None and len(test.y):
        # the class a reader is shown on test, at the new threshold (the argmax figures stay)
        import numpy as np

        from vol3d_gui.ml.evaluation import metrics_at_operating_point

        probs = np.concatenate([bundle.forward(test.x[i : i + 32]) for i in range(0, len(test.y), 32)])
        fields["metrics"] = {**bundle.card["metrics"], "at_operating_point": metrics_at_operating_point(
            {"operating_point": fields["operating_point"]}, test.y, probs, bundle.class_names, intervals=True)}
    path = update_card(bundle.path, fields)
    summary = {"card": str(path), "feature_threshold": fields["domain"]["features"]["threshold"],
               "operating_point": fields.get("operating_point"),
               "ece_test": (fields.get("reliability") or {}).get("ece"),
               "uncertainty_error_auroc": (fields.get("uncertainty") or {}).get("error_auroc"),
               "test_pass_rate_features": fields["domain"].get("test_pass_rate_features")}
    print(json.dumps(summary, default=float))
    return 0
