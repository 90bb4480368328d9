"""vol3d compare: two bundles on the same labelled split, paired.

Two AUCs with overlapping intervals may still differ, and two 0.01 apart may not: on the same
cases the models' errors are correlated, which a paired test uses (ml/intervals.py). This is
the comparison a decision to replace a bundle should rest on; issue 15's rounds ran it as a
bootstrap script. Each model is fed the split the way its own card says (grid, window,
preprocessing), and decides by its card's operating point where it has one (else the argmax).

``--split oof`` compares two fold ensembles (`vol3d train --folds`) trained on the same folds
by the out-of-fold predictions their cards hold, with no forward pass: the way to choose
between two recipes on train+val, leaving the test split alone. Besides the pooled AUC it
tests the mean of the folds' AUCs, which does not depend on how well the members' scales agree
(ml/intervals.py).
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .card_domain import add_data_arguments

    p.add_argument("--model", required=True, action="append", metavar="BUNDLE",
                   help="a bundle (.keras with its .json card); give exactly two: A, then B")
    add_data_arguments(p, "a MedMNIST-style .npz, a labelled folder, or 'phantom' (as for vol3d evaluate)")
    p.add_argument("--split", default="test", choices=["train", "val", "test", "oof"],
                   help="oof: two fold ensembles' out-of-fold predictions on train+val, from their cards")
    p.add_argument("--limit", type=int, default=None, help="only the first N items of the split")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--json", action="store_true", help="print the comparison as one JSON object")


def oof_scores(args, bundles):
    """(labels, [calibrated out-of-fold probabilities per bundle], folds, data name) of two fold
    ensembles dealt the same folds of the same data."""
    from vol3d_gui.core.errors import Vol3dError
    from vol3d_gui.ml.ensemble import stratified_folds

    from .card_domain import load_training_data
    from .train_folds import card_oof

    ens = [b.card.get("ensemble") or {} for b in bundles]
    for b, e in zip(bundles, ens):
        if not e.get("oof_log_odds") or b.card.get("parent"):
            raise Vol3dError(f"{b.label} holds no out-of-fold predictions of its own (not a `vol3d train "
                             "--folds` bundle, or fine-tuned since): --split oof compares two fold ensembles")
    data = [(b.card.get("training_data") or {}) for b in bundles]
    dealt = [(e.get("folds"), e.get("fold_seed"), e.get("n_pooled"), e.get("pooled_splits"), d.get("sha256"),
              d.get("limit")) for e, d in zip(ens, data)]
    if dealt[0] != dealt[1]:
        raise Vol3dError(f"{bundles[0].label} and {bundles[1].label} were not dealt the same folds of the same "
                         "data: their out-of-fold predictions are not of the same cases")
    ds = load_training_data(args, bundles[0])
    if ds.content_hash != data[0].get("sha256"):
        raise Vol3dError(f"{args.dataset} is not the data these ensembles were trained on")
    held = [card_oof(b.card, ds) for b in bundles]
    y = held[0][0]
    return y, [h[1] for h in held], stratified_folds(y, int(ens[0]["folds"]), int(ens[0]["fold_seed"])), ds.name


def run(args) -> int:
    import numpy as np

    from vol3d_gui.core.errors import Vol3dError
    from vol3d_gui.ml import intervals as ci
    from vol3d_gui.ml.bundle import load_bundle
    from vol3d_gui.ml.evaluation import decision_metrics, evaluate_probs, shown_classes

    from .evaluate import load_split, split_probs

    if len(args.model) != 2:
        raise Vol3dError(f"vol3d compare takes exactly two --model bundles, not {len(args.model)}")
    bundles = [load_bundle(p) for p in args.model]
    if bundles[0].class_names != bundles[1].class_names:
        raise Vol3dError(f"{bundles[0].label} and {bundles[1].label} name different classes "
                         f"({bundles[0].class_names} vs {bundles[1].class_names}): nothing to compare")
    folds = None
    if args.split == "oof":
        y, probs, folds, name = oof_scores(args, bundles)
    else:
        ys, probs, name = [], [], ""
        for b in bundles:
            ds, split = load_split(args, b)
            name = ds.name
            ys.append(split.y)
            probs.append(split_probs(b, split, args.batch_size, quiet=args.json))
        y = ys[0]
        if len(y) != len(ys[1]) or not np.array_equal(y, ys[1]):  # cannot happen for one file; cheap to know
            raise Vol3dError("the two models were not given the same cases")
    shown = [shown_classes(b.card, p) for b, p in zip(bundles, probs)]
    per_model = []
    for b, p, d in zip(bundles, probs, shown):
        m = evaluate_probs(y, p, b.class_names, intervals=True)
        hard = decision_metrics(y, d, len(b.class_names), b.class_names, intervals=True)
        rule = "operating point" if b.card.get("operating_point") and len(b.class_names) == 2 else "argmax"
        per_model.append({"model": b.label, "path": str(b.path), "auc": m["auc"], "auc_interval": m["intervals"]["auc"],
                          "decision": rule, "balanced_accuracy": hard["balanced_accuracy"],
                          "balanced_accuracy_interval": hard["intervals"]["balanced_accuracy"],
                          "per_class_recall": hard["per_class_recall"], "confusion": hard["confusion"]})
    out = {"dataset": name, "split": args.split, "n": int(len(y)), "a": per_model[0], "b": per_model[1],
           "auc_difference": ci.compare_auc(y, probs[0], probs[1]),
           "decisions": ci.compare_decisions(y, shown[0], shown[1])}
    if folds is not None:
        for m, p in zip(per_model, probs):
            aucs, m["fold_auc_mean"], _ = ci.fold_auc_influence(y, p, folds)
            m["fold_aucs"], m["fold_auc_interval"] = aucs, list(ci.auc_interval(y, p, folds=folds))
        out["fold_auc_difference"] = ci.compare_auc(y, probs[0], probs[1], folds=folds)
    if args.json:
        print(json.dumps(out, default=float))
        return 0
    print(f"{name} [{args.split}], n={len(y)}; A = {per_model[0]['model']}, B = {per_model[1]['model']}")
    for tag, m in zip("AB", per_model):
        print(f"  {tag}: AUC {ci.with_interval(m['auc'], m['auc_interval'])}; balanced accuracy ({m['decision']}) "
              f"{ci.with_interval(m['balanced_accuracy'], m['balanced_accuracy_interval'])}; confusion {m['confusion']}")
    d = out["auc_difference"]
    pooled = " (pooled out-of-fold)" if folds is not None else ""
    print(f"  AUC A - B{pooled}: {ci.with_interval(d['difference'], d['interval'])}, p = {d['p_value']:.3g} "
          f"({d['method']})")
    if folds is not None:
        for tag, m in zip("AB", per_model):
            print(f"  {tag}: mean fold AUC {ci.with_interval(m['fold_auc_mean'], m['fold_auc_interval'])} "
                  f"(folds {', '.join(f'{a:.3f}' for a in m['fold_aucs'])})")
        f = out["fold_auc_difference"]
        print(f"  mean fold AUC A - B: {ci.with_interval(f['difference'], f['interval'])}, p = {f['p_value']:.3g} "
              f"({f['method']})")
    c = out["decisions"]
    print(f"  decisions: only A right on {c['only_a_right']} cases, only B right on {c['only_b_right']}; "
          f"p = {c['p_value']:.3g} ({c['method']})")
    return 0
