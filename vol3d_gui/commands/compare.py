"""vol3d compare: two bundles on the same labelled split, paired.

Two AUCs with overlapping intervals may still differ, and two 0.01 apart may not: on the same
cases the models' errors are correlated, which a paired test uses (ml/intervals.py). This is
the comparison a decision to replace a bundle should rest on; issue 15's rounds ran it as a
bootstrap script. Each model is fed the split the way its own card says (grid, window,
preprocessing), and decides by its card's operating point where it has one (else the argmax).
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .card_domain import add_data_arguments

    p.add_argument("--model", required=True, action="append", metavar="BUNDLE",
                   help="a bundle (.keras with its .json card); give exactly two: A, then B")
    add_data_arguments(p, "a MedMNIST-style .npz, a labelled folder, or 'phantom' (as for vol3d evaluate)")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--limit", type=int, default=None, help="only the first N items of the split")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--json", action="store_true", help="print the comparison as one JSON object")


def decisions(bundle, probs):
    """The class each case is shown as: the card's operating point, else the argmax."""
    import numpy as np

    from vol3d_gui.ml.reliability import decide

    if bundle.card.get("operating_point") and len(bundle.class_names) == 2:
        return np.array([decide(bundle.card, q) for q in probs], dtype=int), "operating point"
    return probs.argmax(axis=1), "argmax"


def run(args) -> int:
    import numpy as np

    from vol3d_gui.core.errors import Vol3dError
    from vol3d_gui.ml.bundle import load_bundle
    from vol3d_gui.ml.evaluation import evaluate_probs
    from vol3d_gui.ml.intervals import compare_auc, compare_decisions, with_interval

    from .evaluate import load_split, split_probs

    if len(args.model) != 2:
        raise Vol3dError(f"vol3d compare takes exactly two --model bundles, not {len(args.model)}")
    bundles = [load_bundle(p) for p in args.model]
    if bundles[0].class_names != bundles[1].class_names:
        raise Vol3dError(f"{bundles[0].label} and {bundles[1].label} name different classes "
                         f"({bundles[0].class_names} vs {bundles[1].class_names}): nothing to compare")
    ys, probs, shown, rules, name = [], [], [], [], ""
    for b in bundles:
        ds, split = load_split(args, b)
        name = ds.name
        ys.append(split.y)
        probs.append(split_probs(b, split, args.batch_size, quiet=args.json))
        d, rule = decisions(b, probs[-1])
        shown.append(d)
        rules.append(rule)
    y = ys[0]
    if len(y) != len(ys[1]) or not np.array_equal(y, ys[1]):  # cannot happen for one file; cheap to know
        raise Vol3dError("the two models were not given the same cases")
    k = len(bundles[0].class_names)
    per_model = []
    for b, p, d, rule in zip(bundles, probs, shown, rules):
        m = evaluate_probs(y, p, b.class_names, intervals=True)
        hard = evaluate_probs(y, np.eye(k)[d], b.class_names, intervals=True)
        per_model.append({"model": b.label, "path": str(b.path), "auc": m["auc"], "auc_interval": m["intervals"]["auc"],
                          "decision": rule, "balanced_accuracy": hard["balanced_accuracy"],
                          "balanced_accuracy_interval": hard["intervals"]["balanced_accuracy"],
                          "per_class_recall": hard["per_class_recall"], "confusion": hard["confusion"]})
    out = {"dataset": name, "split": args.split, "n": int(len(y)), "a": per_model[0], "b": per_model[1],
           "auc_difference": compare_auc(y, probs[0], probs[1]),
           "decisions": compare_decisions(y, shown[0], shown[1])}
    if args.json:
        print(json.dumps(out, default=float))
        return 0
    print(f"{name} [{args.split}], n={len(y)}; A = {per_model[0]['model']}, B = {per_model[1]['model']}")
    for tag, m in zip("AB", per_model):
        print(f"  {tag}: AUC {with_interval(m['auc'], m['auc_interval'])}; balanced accuracy ({m['decision']}) "
              f"{with_interval(m['balanced_accuracy'], m['balanced_accuracy_interval'])}; confusion {m['confusion']}")
    d = out["auc_difference"]
    print(f"  AUC A - B: {with_interval(d['difference'], d['interval'])}, p = {d['p_value']:.3g} ({d['method']})")
    c = out["decisions"]
    print(f"  decisions: only A right on {c['only_a_right']} cases, only B right on {c['only_b_right']}; "
          f"p = {c['p_value']:.3g} ({c['method']})")
    return 0
