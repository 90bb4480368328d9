"""Scoring an archive: every volume and DICOM series of a folder (or a manifest) through a
bundle, one results row per item, resumable (see vol3d_gui.core.results_table).

An item is a plain, picklable ``ScoreItem`` (id, path, series): engines send items, not
loaders, to their workers. ``score_batch(bundle, items)`` turns a batch into rows; it never
raises for one item (the row records the error type and message) and runs the network once
per batch. Probabilities are those of ``ModelBundle.predict`` (what `vol3d predict`
prints); a bundle with ``check_domain`` / ``predict_with_uncertainty`` / ``decide`` also
fills the domain, uncertainty and operating-point columns.
"""

from __future__ import annotations

import csv
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vol3d_gui.core.errors import Vol3dError, VolumeReadError
from vol3d_gui.core.results_table import csv_kind


@dataclass(frozen=True)
class ScoreItem:
    id: str
    path: str
    series: str | None = None  # a DICOM series UID within the folder ``path``
    npz_id: str | None = None  # an item of a MedMNIST-style .npz study

    def key(self) -> tuple[str, str]:
        return self.id, self.path


# --- which items -----------------------------------------------------------------------------
def list_items(source) -> list[ScoreItem]:
    """A folder (each volume file and DICOM series, as core.study lists them), a MedMNIST
    .npz, a single volume, or a manifest CSV (column ``path``; optional ``id``, ``series``)."""
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        return read_manifest(source)
    from vol3d_gui.core.study import open_study

    study = open_study(source)
    root = source.resolve()
    items = []
    for it in study:
        if source.is_file() and source.name.lower().endswith(".npz"):
            items.append(ScoreItem(it.id, str(root), npz_id=it.id))
        elif source.is_file():
            items.append(ScoreItem(it.id, str(root)))
        elif "series_uid" in it.extras:
            folder = it.id.rsplit("#", 1)[0]
            items.append(ScoreItem(it.id, str(root / folder if folder else root), it.extras["series_uid"]))
        else:
            items.append(ScoreItem(it.id, str(root / it.id)))
    return items


def read_manifest(path: Path) -> list[ScoreItem]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise VolumeReadError(path, f"cannot read the manifest ({exc})") from exc
    if not rows or "path" not in rows[0]:
        raise VolumeReadError(path, "a manifest needs a header with a 'path' column "
                                    "(optional: 'id', 'series')")
    items, seen = [], set()
    for n, row in enumerate(rows, start=2):
        given = (row.get("path") or "").strip()
        if not given:
            raise VolumeReadError(path, f"line {n} has no path")
        full = Path(given) if Path(given).is_absolute() else path.parent / given
        item = ScoreItem((row.get("id") or "").strip() or given, str(full.resolve()),
                         (row.get("series") or "").strip() or None)
        if item.id in seen:
            raise VolumeReadError(path, f"line {n}: the id {item.id!r} is listed twice")
        seen.add(item.id)
        items.append(item)
    return items


# --- the row ---------------------------------------------------------------------------------
BASE_COLUMNS = ["item_id", "path", "series", "status", "predicted_class", "predicted_index"]
TAIL_COLUMNS = ["model_name", "model_version", "content_hash", "load_s", "predict_s", "total_s",
                "worker", "scored_at", "error_type", "error_message"]
DOMAIN_COLUMNS = ["in_domain", "domain_score", "domain_reasons"]


def bundle_features(bundle_cls=None) -> dict[str, bool]:
    """Which optional parts of the bundle contract this version of ModelBundle has."""
    if bundle_cls is None:
        from vol3d_gui.ml.bundle import ModelBundle as bundle_cls
    return {name: hasattr(bundle_cls, name) for name in ("check_domain", "predict_with_uncertainty", "decide")}


def result_columns(class_names, features: dict[str, bool]) -> dict[str, str]:
    """Column name -> kind, in file order; the same for every row of a run."""
    cols = BASE_COLUMNS + [f"prob_{c}" for c in class_names]
    if features.get("predict_with_uncertainty"):
        cols.append("uncertainty")
    if features.get("check_domain"):
        cols += DOMAIN_COLUMNS
    cols += TAIL_COLUMNS
    return {c: csv_kind(c) for c in cols}


def _uncertainty(bundle, vol) -> float | None:
    out = bundle.predict_with_uncertainty(vol)
    value = out[1] if isinstance(out, tuple) else getattr(out, "uncertainty", None)
    if isinstance(value, dict):  # several measures: the first one is the headline figure
        value = next(iter(value.values()), None)
    return None if value is None else float(np.asarray(value).reshape(-1)[0])


def score_batch(bundle, items: list[ScoreItem], worker: str | None = None) -> list[dict]:
    """Rows for ``items``: every volume read and preprocessed, then one forward pass."""
    from vol3d_gui.core.io import load_volume

    features = bundle_features(type(bundle))
    worker = worker or f"{socket.gethostname()}:{os.getpid()}"
    rows, tensors, volumes = [], [], []
    for item in items:
        t0 = time.perf_counter()
        row = {"item_id": item.id, "path": item.path, "series": item.series, "worker": worker,
               "model_name": bundle.name, "model_version": bundle.version}
        try:
            vol = _load(item) if item.npz_id else load_volume(item.path, series=item.series)
            row["content_hash"] = vol.content_hash()
            row["load_s"] = time.perf_counter() - t0
            tensors.append(bundle.preprocess(vol))
            volumes.append((row, vol, t0))
        except Exception as exc:  # one bad item is a row, never the end of the run
            _fail(row, exc, t0)
        rows.append(row)
    if tensors:
        t1 = time.perf_counter()
        try:
            probs = bundle.forward(np.stack(tensors))
        except Exception as exc:
            for row, _, t0 in volumes:
                _fail(row, exc, t0)
            return rows
        share = (time.perf_counter() - t1) / len(tensors)
        for (row, vol, t0), p in zip(volumes, probs):
            try:
                _fill(row, bundle, vol, p, features)
                row["predict_s"] = share
                row["total_s"] = time.perf_counter() - t0
            except Exception as exc:
                _fail(row, exc, t0)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for row in rows:
        row["scored_at"] = stamp
    return rows


def _fill(row, bundle, vol, p, features):
    k = int(bundle.decide(p)) if features["decide"] else int(np.argmax(p))
    row.update(status="ok", predicted_index=k, predicted_class=bundle.class_names[k],
               **{f"prob_{c}": float(v) for c, v in zip(bundle.class_names, p)})
    if features["predict_with_uncertainty"]:
        row["uncertainty"] = _uncertainty(bundle, vol)
    if features["check_domain"]:
        check = bundle.check_domain(vol)
        row.update(in_domain=bool(check.in_domain), domain_score=float(check.score),
                   domain_reasons="; ".join(map(str, check.reasons)))


def _fail(row, exc, t0):
    row.update(status="error", error_type=type(exc).__name__, error_message=str(exc)[:2000],
               total_s=time.perf_counter() - t0)


_NPZ_STUDIES: dict = {}


def _load(item: ScoreItem):
    from vol3d_gui.core.study import open_study

    if item.path not in _NPZ_STUDIES:  # one decode of each split per worker, not per item
        _NPZ_STUDIES[item.path] = open_study(item.path)
    return _NPZ_STUDIES[item.path].by_id(item.npz_id).load()


# --- a run ---------------------------------------------------------------------------------
def batches_of(items: list[ScoreItem], size: int) -> list[list[dict]]:
    """Items as plain dicts in batches (what engines send to their workers)."""
    return [[asdict(it) for it in items[i : i + size]] for i in range(0, len(items), size)]


def run_scoring(model, items: list[ScoreItem], out, *, engine: str = "local", workers: int | None = None,
                address: str | None = None, batch_size: int = 4, progress: bool = True,
                on_rows=None) -> dict:
    """Score ``items`` not yet in ``out`` with ``engine`` and append their rows as they come
    (``on_rows(rows)`` after each batch is on disk). Returns a summary: rows written now,
    skipped (done before), failed, seconds."""
    from tqdm import tqdm

    from vol3d_gui.core.results_table import ResultsTable
    from vol3d_gui.ml.bundle import bundle_paths, read_card
    from vol3d_gui.ml.score_engines import ENGINES

    if engine not in ENGINES:
        raise Vol3dError(f"unknown engine {engine!r} (choose {', '.join(ENGINES)})")
    card = read_card(model)
    model_path = bundle_paths(model)[0]
    table = ResultsTable(out, result_columns(card["class_names"], bundle_features()))
    other = {(r["model_name"], r["model_version"]) for r in table.existing} - {
        (card["name"], str(card.get("version", "1")))}
    if other:
        name, version = sorted(other)[0]
        raise Vol3dError(f"{out}: holds results of {name} v{version}; choose another output file")
    done = table.done_keys()
    todo = [it for it in items if it.key() not in done]
    summary = {"out": str(out), "items": len(items), "skipped": len(items) - len(todo), "written": 0,
               "failed": 0, "engine": engine}
    t0 = time.perf_counter()
    with tqdm(total=len(items), initial=len(items) - len(todo), unit="vol", disable=not progress,
              dynamic_ncols=True) as bar:
        try:
            if todo:
                for rows in ENGINES[engine](model_path, batches_of(todo, batch_size), workers, address):
                    table.write(rows)
                    summary["written"] += len(rows)
                    summary["failed"] += sum(r["status"] != "ok" for r in rows)
                    bar.update(len(rows))
                    if on_rows is not None:
                        on_rows(rows)
        finally:
            table.close()
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    return summary
