"""vol3d train --folds K: a cross-validated ensemble written as ONE bundle (issue 15).

The train and val splits are pooled and dealt into K stratified folds (``--seed``); member k
trains on the other K-1 folds with the same options as a single run and is early-stopped and
validated on fold k (its seed is ``--seed + k``); ``--fold-recipe`` gives members different
networks or training options (the erosion-profile head beside the plain network, ...) on the
one input grid they share (``member_recipes``). The members are merged into one plain Keras
model whose logits are their mean (ml/ensemble.py). Platt calibration and the operating point
are fitted on the out-of-fold predictions: every pooled case scored by the one member that
never trained on it, all train+val cases instead of the validation split alone. The ensemble
as a whole has no held-out validation split (each pooled case trained K-1 of its members): the
out-of-fold figures describe single members, and the test split is the only data none of the
ensemble saw. Nothing here looks at test for a choice; test figures are printed and recorded.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

# what a member's recipe may change: its network and how it trains, not the input grid (the
# bundle is one model with one input) nor the Grad-CAM grid (the cards' maps are averaged over
# the members' layers, which must share a grid), nor the data, folds or output
MEMBER_OPTIONS = ("width", "stem_stride", "head", "arch", "shape_features", "pooling", "bn_momentum",
                  "bn_refresh", "lr", "schedule", "weight_decay", "ema", "augment", "jitter",
                  "no_flip_lr", "no_flips", "epochs", "batch_size", "patience")


def member_recipes(args) -> list[tuple[str, dict]]:
    """(recipe text, options it overrides) per member: ``--fold-recipe`` parsed with vol3d
    train's own parser (the same flags, types and choices), cycled over the K folds; one empty
    recipe per member without ``--fold-recipe``."""
    import argparse
    import shlex

    from vol3d_gui.commands.train import add_arguments

    texts = list(getattr(args, "fold_recipe", None) or [""])
    parser = argparse.ArgumentParser(prog="vol3d train --fold-recipe", add_help=False)
    add_arguments(parser)
    for action in parser._actions:  # only what the recipe names lands in its namespace
        action.default, action.required = argparse.SUPPRESS, False
    parsed = []
    for text in texts:
        words = [] if text.strip() in ("", "default") else shlex.split(text)
        options = vars(parser.parse_args(words))
        bad = sorted(set(options) - set(MEMBER_OPTIONS))
        if bad:
            raise SystemExit(f"vol3d train: --fold-recipe {text!r} sets {', '.join(bad)}, which all members "
                             f"share; a recipe may set {', '.join(MEMBER_OPTIONS)}")
        parsed.append((text.strip() or "default", options))
    return [parsed[j % len(parsed)] for j in range(int(args.folds))]


def _pool(ds):
    train, val = ds.splits["train"], ds.splits.get("val")
    if val is None or not len(val.y):
        return train.x, np.asarray(train.y, int), ["train"]
    return (np.concatenate([train.x, val.x]), np.concatenate([train.y, val.y]).astype(int), ["train", "val"])


def train_folds(args, ds, shape, model_path, device, strategy, t0) -> int:
    import argparse
    import json

    import keras
    from tqdm import tqdm

    from vol3d_gui.commands.train import (
        add_operating_point_metrics,
        command_line,
        flip_axes,
        test_metrics,
        training_options,
    )
    from vol3d_gui.ml.architecture import GRADCAM_LAYER, build_classifier
    from vol3d_gui.ml.bundle import ModelBundle, save_bundle
    from vol3d_gui.ml.domain_fit import fit_card_fields
    from vol3d_gui.ml.ensemble import gradcam_layers, merge_members, stratified_folds
    from vol3d_gui.ml.evaluation import binary_auc
    from vol3d_gui.ml.training import predict_arrays, train_model

    k = int(args.folds)
    if k < 2:
        raise SystemExit("vol3d train: --folds takes K >= 2 (0: no cross-validation)")
    if args.curriculum or getattr(args, "paired", False):
        raise SystemExit("vol3d train: --folds does not combine with --curriculum or --paired")
    recipes = member_recipes(args)  # before any training: a bad recipe fails at once
    x_pool, y_pool, pooled = _pool(ds)
    folds = stratified_folds(y_pool, k, args.seed)
    test = ds.splits.get("test")
    n_classes = len(ds.class_names)
    flips = flip_axes(args)  # the base options' (the card's training record)
    budget = args.max_minutes * 60 if args.max_minutes else None
    oof = np.zeros((len(y_pool), n_classes))
    members, records = [], []
    for j in range(k):
        tr, ho = np.nonzero(folds != j)[0], np.nonzero(folds == j)[0]
        recipe, overrides = recipes[j]
        m = argparse.Namespace(**{**vars(args), **overrides})  # this member's options
        m_flips = flip_axes(m)
        keras.utils.set_random_seed(args.seed + j)
        model = build_classifier(shape, n_classes, width=m.width, name=f"member{j}",
                                 stem_stride=m.stem_stride, pooling=m.pooling, head=m.head,
                                 bn_momentum=m.bn_momentum, cam_stride=args.cam_stride,
                                 cam_dilation=args.cam_dilation, arch=m.arch,
                                 shape_features=m.shape_features)
        # what is left of the budget, shared evenly among the members still to train
        left = None if budget is None else max(budget - (time.time() - t0), 60.0) / (k - j)
        t_member = time.time()
        bar = tqdm(total=None, unit="batch", dynamic_ncols=True, desc=f"member {j + 1}/{k}")

        def on_batch(epoch, batch, n_batches, logs, bar=bar, epochs=m.epochs):
            if bar.total is None:
                bar.total = epochs * n_batches
            bar.update(1)

        def on_epoch(rec, bar=bar, j=j):
            bar.write(f"member {j + 1}: " + ", ".join(
                f"{a} {v:.4f}" if isinstance(v, float) else f"{a} {v}" for a, v in rec.items()))

        hist = train_model(model, x_pool[tr], y_pool[tr], x_pool[ho], y_pool[ho], epochs=m.epochs,
                           batch_size=m.batch_size, learning_rate=m.lr, class_weight="balanced",
                           augment=m.augment, seed=args.seed + j, on_batch=on_batch, on_epoch=on_epoch,
                           patience=m.patience, flips=m_flips, max_seconds=left, schedule=m.schedule,
                           weight_decay=m.weight_decay, ema=m.ema, jitter=m.jitter,
                           bn_refresh=m.bn_refresh)
        bar.close()
        oof[ho] = predict_arrays(model, x_pool[ho])
        rec = {"member": j, "seed": args.seed + j, "recipe": recipe, "options": overrides,
               "n_train": int(len(tr)), "n_fold": int(len(ho)),
               "epochs_run": len(hist["epochs"]), "best_epoch": hist["best_epoch"],
               "best_val_auc": hist["best_val_auc"], "out_of_time": hist["out_of_time"],
               "seconds": round(time.time() - t_member, 1), "history": hist["epochs"]}
        if test is not None and len(test.y) and n_classes == 2:
            # recorded for the README's table; no choice is made on it
            rec["test_auc"] = binary_auc(np.asarray(test.y) == 1, predict_arrays(model, test.x)[:, 1])
        print(f"member {j + 1}/{k} ({recipe}): fold AUC {rec['best_val_auc']}, best epoch {rec['best_epoch']} of "
              f"{rec['epochs_run']}, {rec['seconds'] / 60:.1f} min" +
              (f", test AUC {rec['test_auc']:.4f}" if "test_auc" in rec else ""), flush=True)
        members.append(model)
        records.append(rec)
    model = merge_members(members, name=Path(args.out).name)
    del members
    ens = {"folds": k, "fold_seed": args.seed, "pooled_splits": pooled, "n_pooled": int(len(y_pool)),
           "member_seeds": [args.seed + j for j in range(k)], "member_recipes": [r for r, _ in recipes],
           "validation": "none held out from the ensemble: each pooled case trained K-1 members; "
                         "calibration and the operating point use the out-of-fold predictions "
                         "(each pooled case scored by the member that never saw it)"}
    calibration, oof_probs = None, oof
    from vol3d_gui.ml.intervals import auc_interval, fold_auc_influence, with_interval

    # each fold ranked within itself: the figure two recipes on the same folds should be compared by
    fold_aucs, ens["fold_auc_mean"], _ = fold_auc_influence(y_pool, oof, folds)
    ens["fold_aucs"] = [float(a) for a in fold_aucs]
    ens["fold_auc_interval"] = list(auc_interval(y_pool, oof, folds=folds))
    print(f"mean fold AUC: {with_interval(ens['fold_auc_mean'], ens['fold_auc_interval'], 4)} "
          f"(folds {', '.join(f'{a:.3f}' for a in fold_aucs)})", flush=True)
    if n_classes == 2:
        ens["oof_auc"] = binary_auc(y_pool == 1, oof[:, 1])
        from vol3d_gui.ml.calibration import fit_platt, fold_into_model, log_odds
        from vol3d_gui.ml.evaluation import log_loss

        d = log_odds(oof)
        ens["oof_log_odds"] = [round(float(v), 5) for v in d]  # card-domain refits the point from these
        print(f"out-of-fold AUC ({len(y_pool)} cases): {ens['oof_auc']:.4f}", flush=True)
        if not args.no_calibrate:
            a, b = fit_platt(d, y_pool)
            fold_into_model(model, a, b)
            oof_probs = oof_calibrated(d, a, b)
            calibration = {"method": "platt", "split": "out-of-fold (train+val)", "n": int(len(y_pool)),
                           "slope": a, "intercept": b, "val_log_loss_before": log_loss(y_pool, oof, 1e-30),
                           "val_log_loss_after": log_loss(y_pool, oof_probs, 1e-30)}
            print(f"calibrated on the out-of-fold predictions: slope {a:.3f}, intercept {b:.3f}, log-loss "
                  f"{calibration['val_log_loss_before']:.3f} -> {calibration['val_log_loss_after']:.3f}", flush=True)
    metrics, test_probs = test_metrics(model, test, ds.class_names, "test (ensemble)")
    cam_layers = gradcam_layers(k, GRADCAM_LAYER)
    card = {
        "name": args.name or model_path.stem, "version": str(args.version), "parent": None,
        "class_names": ds.class_names, "input_shape": list(shape), "preprocessing": ds.preprocessing,
        "gradcam_layer": cam_layers[0], "gradcam_layers": cam_layers,
        "training_data": {"name": ds.name, "source": ds.source, "sha256": ds.content_hash,
                          "n_train": int(len(ds.splits["train"].y)),
                          "n_val": int(len(ds.splits["val"].y)) if "val" in ds.splits else 0,
                          "n_test": int(len(test.y)) if test else 0, "limit": args.limit},
        "training": {"epochs_run": max(r["epochs_run"] for r in records), "best_epoch": None,
                     "best_val_auc": ens.get("oof_auc"), **training_options(args, flips),
                     "device": device.description, "out_of_time": any(r["out_of_time"] for r in records),
                     "members": records, "strategy": strategy.record(), "command": command_line(args)},
        "ensemble": ens, "calibration": calibration, "metrics": metrics,
    }
    splits = {"train": (ds.splits["train"].x, ds.splits["train"].y)}
    if "val" in ds.splits:
        splits["val"] = (ds.splits["val"].x, ds.splits["val"].y)
    else:  # the feature threshold then comes from the training cases themselves
        splits["val"] = splits["train"]
    if test is not None and len(test.y):
        splits["test"] = (test.x, test.y)
    card.update(fit_card_fields(ModelBundle(model, card), splits, ds.geometries, args.target_sensitivity,
                                held_out=(y_pool, oof_probs, "out-of-fold (train+val)")))
    add_operating_point_metrics(card, metrics, test, test_probs, ds.class_names)
    card["training"]["seconds"] = round(time.time() - t0, 1)
    path = save_bundle(model, card, model_path)
    print(f"time: {card['training']['seconds'] / 60:.1f} min", flush=True)
    print(json.dumps({"bundle": str(path), "metrics": metrics}, default=float), flush=True)
    return 0


def oof_calibrated(log_odds_oof, a: float, b: float) -> np.ndarray:
    """Two-class probabilities from out-of-fold log-odds under the Platt fit (a, b)."""
    p1 = 1.0 / (1.0 + np.exp(-(a * np.asarray(log_odds_oof, np.float64) + b)))
    return np.stack([1.0 - p1, p1], axis=1)


def card_oof(card: dict, ds):
    """(labels, calibrated probabilities, name) of a fold ensemble's out-of-fold predictions as
    its card records them, for `vol3d card-domain`; None for other bundles."""
    ens = card.get("ensemble") or {}
    d = ens.get("oof_log_odds")
    if not d or card.get("parent"):  # fine-tuned or recalibrated: the predictions were the parent's
        return None
    y = np.concatenate([np.asarray(ds.splits[s].y, int) for s in ens.get("pooled_splits", ["train", "val"])])
    if len(y) != len(d):
        raise ValueError(f"the card holds {len(d)} out-of-fold predictions for {len(y)} pooled cases")
    cal = card.get("calibration") or {}
    a, b = (float(cal["slope"]), float(cal["intercept"])) if cal.get("slope") is not None else (1.0, 0.0)
    return y, oof_calibrated(d, a, b), "out-of-fold (train+val)"
