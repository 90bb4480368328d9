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
    """A hand-written CSV: item_id (or item) and label (a class name or index) per row; a row
    marked cleared, or with neither label nor class name, is skipped."""
    from vol3d_gui.core.errors import Vol3dError
    from vol3d_gui.store.labels import from_csv_cell

    out: dict[str, int] = {}
    try:
        with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise Vol3dError(f"{path}: cannot read labels ({exc})") from exc
    for n, row in enumerate(rows, start=2):
        key = from_csv_cell(row.get("item_id") or row.get("item") or "")
        value = (row.get("label") or "").strip() or from_csv_cell((row.get("class_name") or "").strip())
        if (row.get("cleared") or "").strip().lower() in ("1", "true") or (key and not value):
            continue  # a cleared label is no label, not an error
        if not key:
            raise Vol3dError(f"{path}: line {n} needs item_id and label")
        if value in class_names:
            out[key] = class_names.index(value)
        elif value.isascii() and value.isdigit() and int(value) < len(class_names):
            out[key] = int(value)
        else:
            raise Vol3dError(f"{path}: line {n}: unknown class {value!r} (classes: {', '.join(class_names)})")
    return out


def _has_item_keys(path: Path) -> bool:
    try:
        with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
            return "item_key" in (next(csv.reader(fh), None) or [])
    except (OSError, csv.Error):
        return False


def _exported_csv_store(path: Path, tmp: str):
    """A CSV exported from the GUI (it has item_key) read through a scratch label store, so that
    its history, tombstones and study scoping mean what they mean in the GUI."""
    from vol3d_gui.core.errors import Vol3dError
    from vol3d_gui.store.labels import LabelStore, LabelStoreError

    store = LabelStore(Path(tmp) / "labels.db")
    try:
        store.import_csv(path)
    except LabelStoreError as exc:
        store.close()
        raise Vol3dError(str(exc)) from exc
    return store


def _from_store(path: Path, store, class_names: list[str], study) -> dict[str, int]:
    from vol3d_gui.core.errors import Vol3dError
    from vol3d_gui.store.labels import split_item_key

    if study is None:
        out: dict[str, int] = {}
        for key, ev in store.current_labels().items():
            item_id = split_item_key(key)[1]
            if item_id in out:
                raise Vol3dError(f"{path}: the item {item_id!r} is labelled in more than one study; "
                                 "name the study")
            out[item_id] = int(ev.label)
        return out
    for name in dict.fromkeys(k for k in (study.source, study.name) if k):
        events = store.study_labels(name)
        if events:
            bad = {i: ev.label for i, ev in events.items() if ev.label >= len(class_names)}
            if bad:
                item, label = next(iter(bad.items()))
                raise Vol3dError(f"{path}: {item!r} has class {label}, but the model has "
                                 f"{len(class_names)} classes ({', '.join(class_names)})")
            return {item_id: int(ev.label) for item_id, ev in events.items()}
    found = sorted({split_item_key(k)[0] or "(no study)" for k in store.current_labels()})
    raise Vol3dError(f"{path}: no labels for the study {study.source or study.name}; "
                     f"it holds labels for: {', '.join(found) or 'nothing'}")


def read_labels(path: Path, class_names: list[str], study=None) -> dict[str, int]:
    """item id -> class index. A label database, or a CSV exported from it (it has item_key),
    keys items by study, so only ``study``'s current labels are taken (a cleared label is none);
    a hand-written CSV (item_id, label) names the study's item ids directly."""
    import tempfile

    from vol3d_gui.store.labels import LabelStore

    path = Path(path)
    if path.suffix.lower() == ".csv":
        if not _has_item_keys(path):
            return read_label_csv(path, class_names)
        with tempfile.TemporaryDirectory(prefix="vol3d-labels-") as tmp:
            store = _exported_csv_store(path, tmp)
            try:
                return _from_store(path, store, class_names, study)
            finally:
                store.close()
    if not path.is_file():  # LabelStore would create an empty database there
        from vol3d_gui.core.errors import Vol3dError

        raise Vol3dError(f"{path}: no such label database or CSV")
    with LabelStore(path) as store:
        return _from_store(path, store, class_names, study)


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
