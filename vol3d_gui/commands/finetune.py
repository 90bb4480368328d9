"""vol3d finetune: fine-tune a bundle on reviewed labels; writes NAME-ft-N beside it."""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from pathlib import Path


def _augment(choice: str, bundle) -> bool:
    if choice == "auto":
        return bundle.training_flips is not None
    return choice == "on"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="the base bundle (never modified)")
    p.add_argument("--study", required=True, help="the study the labels refer to (folder or .npz)")
    p.add_argument("--labels", required=True,
                   help="a label database (.db, from the GUI) or a CSV with columns item_id,label")
    p.add_argument("--out", default=None, help="folder for the new version (default: beside the base)")
    p.add_argument("--epochs", type=int, default=30,
                   help="the epoch with the lowest held-out log-loss is kept (or the base, if none beats it)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--held-out", type=float, default=0.3, help="stratified held-out share of the labels")
    p.add_argument("--freeze-base", action="store_true", help="train only the dense head")
    p.add_argument("--augment", choices=["auto", "on", "off"], default="auto",
                   help="rotations, intensity jitter and the base's flips; auto: as the base model was trained")
    p.add_argument("--seed", type=int, default=0)


def read_label_csv(path: Path, class_names: list[str]) -> dict[str, int]:
    from vol3d_gui.core.errors import Vol3dError

    out: dict[str, int] = {}
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise Vol3dError(f"{path}: cannot read labels ({exc})") from exc
    for n, row in enumerate(rows, start=2):
        key = row.get("item_id") or row.get("item_key") or row.get("item")
        value = row.get("label") if row.get("label") not in (None, "") else row.get("class_name")
        if not key or value in (None, ""):
            raise Vol3dError(f"{path}: line {n} needs item_id and label")
        value = value.strip()
        if value in class_names:
            out[key] = class_names.index(value)
        elif value.lstrip("-").isdigit() and 0 <= int(value) < len(class_names):
            out[key] = int(value)
        else:
            raise Vol3dError(f"{path}: line {n}: unknown class {value!r} (classes: {', '.join(class_names)})")
    return out


def read_labels(path: Path, class_names: list[str], study=None) -> dict[str, int]:
    """item id -> class index. A CSV names item ids directly; a label database keys items by
    study (``study::item``, as the GUI writes them), so only ``study``'s labels are taken."""
    if path.suffix.lower() == ".csv":
        return read_label_csv(path, class_names)
    from vol3d_gui.core.errors import Vol3dError
    from vol3d_gui.store.labels import LabelStore, split_item_key

    with LabelStore(path) as store:
        if study is None:
            return {split_item_key(k)[1]: int(ev.label) for k, ev in store.current_labels().items()}
        for key in dict.fromkeys(k for k in (study.source, study.name) if k):
            events = store.study_labels(key)
            if events:
                return {item_id: int(ev.label) for item_id, ev in events.items()}
        found = sorted({split_item_key(k)[0] or "(no study)" for k in store.current_labels()})
    raise Vol3dError(f"{path}: no labels for the study {study.source or study.name}; "
                     f"it holds labels for: {', '.join(found) or 'nothing'}")


def run(args) -> int:
    from tqdm import tqdm

    from vol3d_gui.core.errors import Vol3dError
    from vol3d_gui.core.study import open_study
    from vol3d_gui.ml.bundle import load_bundle
    from vol3d_gui.ml.finetune import finetune_bundle

    bundle = load_bundle(args.model)
    study = open_study(args.study)
    labels = read_labels(Path(args.labels), bundle.class_names, study)
    items = [it for it in study if it.id in labels]
    if not items:
        raise Vol3dError(f"{args.labels}: none of its item ids are in {args.study}")
    y = [labels[it.id] for it in items]
    digest = hashlib.sha256(json.dumps(sorted(labels.items())).encode()).hexdigest()
    bar = tqdm(total=args.epochs, unit="epoch", dynamic_ncols=True)

    def on_epoch(rec):
        bar.update(1)
        bar.set_postfix({k: f"{rec[k]:.3f}" for k in ("loss", "val_accuracy") if k in rec})

    report = finetune_bundle(bundle, [it.load for it in items], y, out_dir=args.out, held_out=args.held_out,
                             epochs=args.epochs, learning_rate=args.lr, freeze_base=args.freeze_base,
                             augment=_augment(args.augment, bundle), batch_size=args.batch_size, seed=args.seed,
                             labelset_hash=digest, on_epoch=on_epoch)
    bar.close()
    b, a = report["before"], report["after"]
    print(f"held-out ({b['n']}): accuracy {b['accuracy']:.3f} -> {a['accuracy']:.3f}, "
          f"AUC {b['auc']:.3f} -> {a['auc']:.3f}")
    print(json.dumps({"bundle": report["path"], "before": b, "after": a}, default=float))
    return 0
