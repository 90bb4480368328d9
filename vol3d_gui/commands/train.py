"""vol3d train: train a Conv3D classifier bundle and write its card with test metrics.

The data are split into train / val / test (MedMNIST files carry their own splits; phantom
studies and labelled folders are split per class): training stops early on the validation
AUC and keeps the best weights; the card's metrics are measured on the test split, which
training never sees.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from vol3d_gui.ml.training import DEFAULT_BN_MOMENTUM, DEFAULT_WEIGHT_DECAY

DEFAULT_EPOCHS = 30


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True,
                   help="a MedMNIST-style .npz, a folder with one sub-folder per class, "
                        "or 'phantom' for generated lesion phantoms")
    p.add_argument("--out", required=True, help="bundle path, e.g. models/adrenal3d (writes .keras + .json)")
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--input-size", type=int, nargs="+", default=None,
                   help="model grid: one size for a cube or three (D H W); default: a .npz's own "
                        "size (28^3 MedMNIST is not upsampled), 64 for folders and phantoms")
    p.add_argument("--width", type=int, default=16, help="filters of the first conv block")
    p.add_argument("--stem-stride", type=int, default=1, choices=[1, 2],
                   help="2: strided first convolution (about 4x less compute at 64^3)")
    p.add_argument("--head", default="dense", choices=["dense", "cam"],
                   help="cam: last block conv-BN-ReLU, global average, one linear layer: the "
                        "network Grad-CAM explains faithfully (see vol3d_gui/ml/architecture.py)")
    p.add_argument("--cam-stride", type=int, default=8, choices=[4, 8],
                   help="input voxels per Grad-CAM cell along each axis (4: a finer map, the "
                        "third block unpooled and the fourth dilated)")
    p.add_argument("--cam-dilation", type=int, default=1, choices=[1, 2],
                   help="dilation of the Grad-CAM layer's convolution")
    p.add_argument("--arch", default="plain", choices=["plain", "resnet"],
                   help="resnet: a small 3-D ResNet (one basic block per stage) instead of the four "
                        "plain conv blocks; the same 1/8 Grad-CAM grid")
    p.add_argument("--shape-features", type=int, default=0, metavar="K",
                   help="the dense head also sees the input's mean after 0..K erosions (volume and "
                        "thickness of a binary shape mask); pair with --jitter 0")
    p.add_argument("--pooling", default="avg", choices=["avg", "max"],
                   help="global pooling before the dense layer (max suits small focal findings)")
    p.add_argument("--bn-momentum", type=float, default=DEFAULT_BN_MOMENTUM,
                   help="BatchNorm running-statistics momentum (0.9 suits small data sets)")
    p.add_argument("--bn-refresh", type=int, default=0, metavar="N",
                   help="before each validation, recompute the BatchNorm statistics on N training "
                        "cases under the validated weights (the weight average's statistics are the "
                        "raw weights' otherwise)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="time budget: stop after the epoch that exceeds it, keeping the best weights")
    p.add_argument("--lr", type=float, default=1e-3, help="initial learning rate")
    p.add_argument("--schedule", default="cosine", choices=["cosine", "constant"],
                   help="learning rate: cosine decay to zero over --epochs, or constant")
    p.add_argument("--weight-decay", type=float, default=DEFAULT_WEIGHT_DECAY,
                   help="AdamW weight decay (0: plain Adam)")
    p.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True,
                   help="validate and keep an exponential moving average of the weights")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                   help="flips, small rotations, intensity jitter of the training cases")
    p.add_argument("--jitter", type=float, default=0.1,
                   help="augmentation's intensity jitter (gain and offset); 0 for binary masks, whose "
                        "values carry no intensity")
    p.add_argument("--no-flip-lr", action="store_true", help="do not flip left-right when augmenting")
    p.add_argument("--no-flips", action="store_true",
                   help="no flips at all when augmenting (rotations and jitter only): a flipped organ "
                        "is one no scan shows, where the side and the orientation are part of its shape")
    p.add_argument("--patience", type=int, default=8, help="epochs without val AUC gain before stopping")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="use only the first N items per split (smoke runs)")
    p.add_argument("--phantoms", type=int, default=300, help="phantom cases (60/20/20 train/val/test)")
    p.add_argument("--paired", action="store_true",
                   help="phantoms: train on each training case with and without its lesion")
    p.add_argument("--contrast", type=float, default=1.0, help="phantom lesion contrast")
    p.add_argument("--curriculum", type=float, nargs="+", default=None, metavar="CONTRAST",
                   help="phantoms: first train on the same cases with these (higher) lesion contrasts, "
                        "--stage-epochs each, then at --contrast; a small network finds a 3-8 mm "
                        "lesion in a 48^3 volume within tens of steps at 3x contrast, and not at all "
                        "in hundreds at 1x")
    p.add_argument("--stage-epochs", type=int, default=1, help="epochs per --curriculum stage")
    p.add_argument("--window", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                   help="HU window preprocessing (default: /255 for .npz, [-200, 250] for phantoms, "
                        "min-max for folders)")
    p.add_argument("--mask-depth", type=float, default=None, metavar="SCALE",
                   help="for binary-mask datasets (.npz): the input is each voxel's distance to the "
                        "mask's edge in model-grid voxels, divided by SCALE and clipped to 1, instead "
                        "of the mask itself (preprocessing type mask_depth)")
    p.add_argument("--name", default=None, help="bundle name in the card (default: file stem)")
    p.add_argument("--version", default="1", help="bundle version in the card (a retrained bundle's next number)")
    p.add_argument("--mixed-precision", action="store_true")
    p.add_argument("--strategy", default="default", choices=["default", "mirrored"],
                   help="mirrored: data-parallel over this machine's GPUs (tf.distribute."
                        "MirroredStrategy; --batch-size is the global batch); one machine only")
    p.add_argument("--no-calibrate", action="store_true",
                   help="two classes: do not fold Platt scaling fitted on the validation split into the model")
    p.add_argument("--folds", type=int, default=0, metavar="K",
                   help="K >= 2: pool train+val, split it into K stratified folds and train K members "
                        "(member k validated on fold k); the bundle is their mean-logit ensemble, "
                        "calibrated on the out-of-fold predictions (vol3d_gui/commands/train_folds.py)")
    p.add_argument("--fold-recipe", action="append", default=None, metavar="OPTIONS",
                   help="with --folds: member k trains with these options on top of the others (one "
                        "quoted string, e.g. --fold-recipe='--shape-features 6 --jitter 0'; 'default' "
                        "for none); repeated, the k-th recipe is member k's (cycled); the input grid "
                        "is shared (vol3d_gui/commands/train_folds.py, MEMBER_OPTIONS)")
    p.add_argument("--target-sensitivity", type=float, default=None,
                   help="two classes: the operating point reaches this validation sensitivity "
                        "(default: the threshold with the highest validation balanced accuracy)")


def _load_data(args, shape, progress):
    from vol3d_gui.ml.datasets import load_folder_dataset, load_npz_dataset, phantom_dataset

    window = ({"type": "hu_window", "low": args.window[0], "high": args.window[1]}
              if args.window else None)
    depth = getattr(args, "mask_depth", None)
    if depth is not None:
        if window or args.dataset == "phantom" or Path(args.dataset).is_dir():
            raise SystemExit("vol3d train: --mask-depth is for .npz mask datasets, without --window")
        if not depth > 0:
            raise SystemExit("vol3d train: --mask-depth needs a positive SCALE")
        window = {"type": "mask_depth", "divisor": 255.0, "scale": float(depth)}
    if args.dataset == "phantom":
        ds = phantom_dataset(args.phantoms, shape, seed=args.seed, contrast=args.contrast,
                             progress=progress, paired=args.paired)
        if window:
            raise SystemExit("vol3d train: --window is fixed for phantoms (the GUI's soft-tissue window)")
        return ds
    path = Path(args.dataset)
    if path.is_dir():
        return load_folder_dataset(path, shape, window or {"type": "minmax"}, seed=args.seed,
                                   progress=progress)
    return load_npz_dataset(path, shape, limit=args.limit, preprocessing=window)


def command_line(args, command: str = "train", add=add_arguments) -> str:
    """The command that reproduces this run: ``vol3d COMMAND`` with every option that differs
    from its default (paths as given), for the card."""
    import shlex

    defaults = argparse.ArgumentParser(add_help=False)
    add(defaults)
    parts = ["vol3d", command]
    for action in defaults._actions:
        dest = action.dest
        value = getattr(args, dest, None)
        if action.required or value != action.default:
            flag = action.option_strings[0]
            if isinstance(action, argparse.BooleanOptionalAction):
                parts.append(flag if value else "--no-" + flag[2:])
            elif action.nargs == 0:  # store_true
                parts.append(flag)
            elif isinstance(action, argparse._AppendAction):  # one flag=value per value: values may start with -
                parts += [f"{flag}={v}" for v in value]
            elif isinstance(value, (list, tuple)):
                parts += [flag, *map(str, value)]
            else:
                parts += [flag, str(value)]
    return " ".join(shlex.quote(x) for x in parts)


def default_input_size(dataset) -> list[int]:
    """A .npz's own image size (upsampling 28^3 MedMNIST to 64^3 costs 12x the compute and
    adds nothing the network can learn from); 64^3 for folders and phantoms."""
    path = Path(dataset)
    if dataset != "phantom" and path.suffix == ".npz" and path.is_file():
        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as npz:
                shape = npz["train_images"].shape  # one split's header and data: small for MedMNIST
        except (OSError, KeyError, ValueError):
            return [64]  # the loader names what is wrong with the file
        if len(shape) >= 4:
            return [int(v) for v in shape[1:4]]
    return [64]


def test_metrics(model, test, class_names, label: str = "test"):
    """(metrics, probabilities) of ``model`` on the test split, printed; (None, None) without one."""
    from vol3d_gui.ml.evaluation import evaluate_probs
    from vol3d_gui.ml.training import predict_arrays

    if test is None or not len(test.y):
        return None, None
    probs = predict_arrays(model, test.x)
    metrics = evaluate_probs(test.y, probs, class_names, intervals=True)
    metrics["split"] = "test"
    lo, hi = metrics["intervals"]["auc"]
    print(f"{label}: AUC {metrics['auc']:.4f} (95% CI {lo:.3f}-{hi:.3f}), accuracy {metrics['accuracy']:.4f}",
          flush=True)
    return metrics, probs


def add_operating_point_metrics(card: dict, metrics, test, test_probs, class_names) -> None:
    """The test figures at the card's operating point, into ``metrics`` and printed."""
    from vol3d_gui.ml.evaluation import metrics_at_operating_point

    if metrics is None or not card.get("operating_point"):
        return
    m = metrics["at_operating_point"] = metrics_at_operating_point(card, test.y, test_probs, class_names,
                                                                   intervals=True)
    print(f"test at the operating point P({class_names[1]}) >= {m['threshold']:.3f}: balanced accuracy "
          f"{m['balanced_accuracy']:.4f}, recall " +
          ", ".join(f"{k} {v:.3f}" for k, v in m["per_class_recall"].items()), flush=True)


def flip_axes(args) -> tuple[int, ...]:
    """The axes the augmentation may flip, from --no-flips and --no-flip-lr."""
    if getattr(args, "no_flips", False):
        return ()
    return (1, 2) if args.no_flip_lr else (0, 1, 2)


def training_options(args, flips) -> dict:
    """The card's record of the options a training ran with."""
    return {"batch_size": args.batch_size, "learning_rate": args.lr, "width": args.width,
            "stem_stride": args.stem_stride, "pooling": args.pooling, "head": args.head,
            "cam_stride": args.cam_stride, "cam_dilation": args.cam_dilation, "bn_momentum": args.bn_momentum,
            "arch": args.arch, "shape_features": args.shape_features, "jitter": args.jitter,
            "bn_refresh": args.bn_refresh, "augment": args.augment, "flips": list(flips),
            "patience": args.patience, "schedule": args.schedule, "weight_decay": args.weight_decay,
            "ema": args.ema, "seed": args.seed, "class_weight": "balanced"}


def run(args) -> int:
    from vol3d_gui.ml.bundle import ModelError, bundle_paths
    from vol3d_gui.ml.device import configure_device
    from vol3d_gui.ml.distribute import make_strategy

    size = args.input_size or default_input_size(args.dataset)
    shape = tuple(size * 3 if len(size) == 1 else size)
    if len(shape) != 3:
        raise SystemExit("vol3d train: --input-size takes one or three sizes")
    if getattr(args, "fold_recipe", None) and not args.folds:
        raise SystemExit("vol3d train: --fold-recipe needs --folds K")
    model_path, card_path = bundle_paths(args.out)
    if model_path.exists() or card_path.exists():
        raise ModelError(model_path, "exists already; bundles are never overwritten (choose another --out)")
    device = configure_device(args.mixed_precision)
    print(f"device: {device.description}", flush=True)
    strategy = make_strategy(args.strategy)
    if strategy.strategy is not None:
        print(f"strategy: {strategy.name} over {strategy.replicas} replicas ({', '.join(strategy.devices)})",
              flush=True)
    # Keras 3 under tf.distribute: the model, its compile (optimizer, metrics) and fit all
    # inside the strategy's scope; the whole run is, so that nothing is made outside it
    with strategy.scope():
        return _train(args, shape, model_path, device, strategy)


def _train(args, shape, model_path, device, strategy) -> int:
    from tqdm import tqdm

    from vol3d_gui.ml.architecture import GRADCAM_LAYER, build_classifier
    from vol3d_gui.ml.bundle import save_bundle
    from vol3d_gui.ml.training import predict_arrays, train_model

    t0 = time.time()
    with tqdm(desc="preparing data", unit="vol", dynamic_ncols=True, leave=False) as prep:
        def progress(done, total):
            prep.total = total
            prep.n = done
            prep.refresh()

        ds = _load_data(args, shape, progress)
    train, val, test = ds.splits["train"], ds.splits.get("val"), ds.splits.get("test")
    print(f"data: {ds.name}, train {len(train.y)}, val {len(val.y) if val else 0}, "
          f"test {len(test.y) if test else 0} ({time.time() - t0:.0f} s to prepare)", flush=True)
    if args.folds:
        from vol3d_gui.commands.train_folds import train_folds

        return train_folds(args, ds, shape, model_path, device, strategy, t0)
    import keras

    keras.utils.set_random_seed(args.seed)  # initial weights; train_model seeds the rest
    model = build_classifier(shape, len(ds.class_names), width=args.width, name=Path(args.out).name,
                             stem_stride=args.stem_stride, pooling=args.pooling, head=args.head,
                             bn_momentum=args.bn_momentum, cam_stride=args.cam_stride,
                             cam_dilation=args.cam_dilation, arch=args.arch,
                             shape_features=args.shape_features)
    bar = tqdm(total=None, unit="batch", dynamic_ncols=True)
    planned = [args.epochs, ""]  # epochs and label of the current stage, for the bar

    def on_batch(epoch, batch, n_batches, logs):
        if bar.total is None:
            bar.total = planned[0] * n_batches
        bar.set_description(f"{planned[1]}epoch {epoch + 1}/{planned[0]}")
        bar.update(1)
        if "loss" in logs:
            bar.set_postfix(loss=f"{float(logs['loss']):.3f}")

    def on_epoch(rec):
        bar.write(", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                            for k, v in rec.items()))

    flips = flip_axes(args)
    group = 2 if getattr(args, "paired", False) and args.dataset == "phantom" else 1
    stages = []
    for contrast in args.curriculum or []:
        if args.dataset != "phantom":
            raise SystemExit("vol3d train: --curriculum applies to phantoms")
        from vol3d_gui.ml.datasets import phantom_dataset

        stage = phantom_dataset(args.phantoms, shape, seed=args.seed, contrast=contrast, paired=args.paired)
        bar.write(f"curriculum: lesion contrast {contrast:g}, {args.stage_epochs} epoch(s)")
        bar.reset()
        bar.total, planned[:] = None, [args.stage_epochs, f"contrast {contrast:g}: "]
        h = train_model(model, stage.splits["train"].x, stage.splits["train"].y,
                        val.x if val else None, val.y if val else None, epochs=args.stage_epochs,
                        batch_size=args.batch_size, learning_rate=args.lr, class_weight="balanced",
                        augment=args.augment, seed=args.seed + len(stages) + 1, on_batch=on_batch,
                        on_epoch=on_epoch, patience=args.stage_epochs, flips=flips, group_size=group,
                        weight_decay=args.weight_decay)
        stages.append({"contrast": contrast, "sha256": stage.content_hash, "history": h["epochs"]})
        del stage
    bar.reset()
    bar.total, planned[:] = None, [args.epochs, ""]
    hist = train_model(model, train.x, train.y, val.x if val else None, val.y if val else None,
                       epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                       class_weight="balanced", augment=args.augment, seed=args.seed,
                       on_batch=on_batch, on_epoch=on_epoch, patience=args.patience, flips=flips,
                       max_seconds=args.max_minutes * 60 if args.max_minutes else None,
                       group_size=group, schedule=args.schedule, weight_decay=args.weight_decay,
                       ema=args.ema, jitter=args.jitter, bn_refresh=args.bn_refresh)
    bar.close()
    calibration = None
    if val is not None and len(ds.class_names) == 2 and not args.no_calibrate:
        from vol3d_gui.ml.calibration import calibrate_binary

        try:
            calibration = calibrate_binary(model, val.x, val.y, predict_arrays)
        except ValueError as exc:  # a model that does not rank val (a smoke run): keep it as trained
            print(f"not calibrated: {exc}", flush=True)
        else:
            print(f"calibrated on val: slope {calibration['slope']:.3f}, intercept {calibration['intercept']:.3f}, "
                  f"log-loss {calibration['val_log_loss_before']:.3f} -> {calibration['val_log_loss_after']:.3f}",
                  flush=True)
    metrics, test_probs = test_metrics(model, test, ds.class_names)
    card = {
        "name": args.name or model_path.stem,
        "version": str(args.version),
        "parent": None,
        "class_names": ds.class_names,
        "input_shape": list(shape),
        "preprocessing": ds.preprocessing,
        "gradcam_layer": GRADCAM_LAYER,
        "training_data": {"name": ds.name, "source": ds.source, "sha256": ds.content_hash,
                          "n_train": int(len(train.y)), "n_val": int(len(val.y)) if val else 0,
                          "n_test": int(len(test.y)) if test else 0, "limit": args.limit},
        "training": {"epochs_run": len(hist["epochs"]), "best_epoch": hist["best_epoch"],
                     "best_val_auc": hist["best_val_auc"], **training_options(args, flips),
                     "device": device.description,
                     "out_of_time": hist["out_of_time"], "seconds": round(time.time() - t0, 1),
                     "history": hist["epochs"], "curriculum": stages or None,
                     "strategy": strategy.record(), "command": command_line(args)},
        "calibration": calibration,
        "metrics": metrics,
    }
    if val is not None and len(val.y):
        # the training domain, reliability table, operating point and uncertainty record:
        # forward passes over the splits already in memory
        from vol3d_gui.ml.bundle import ModelBundle
        from vol3d_gui.ml.domain_fit import fit_card_fields

        splits = {"train": (train.x, train.y), "val": (val.x, val.y)}
        if test is not None and len(test.y):
            splits["test"] = (test.x, test.y)
        card.update(fit_card_fields(ModelBundle(model, card), splits, ds.geometries, args.target_sensitivity))
        add_operating_point_metrics(card, metrics, test, test_probs, ds.class_names)
    card["training"]["seconds"] = round(time.time() - t0, 1)  # with the card's forward passes
    path = save_bundle(model, card, model_path)
    print(f"time: {card['training']['seconds'] / 60:.1f} min", flush=True)
    print(json.dumps({"bundle": str(path), "metrics": metrics}, default=float), flush=True)
    return 0
