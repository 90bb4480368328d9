"""Model predictions kept beside the labels ("Classify all" results survive a restart).

``predictions.db`` sits in the label database's folder: one row per (item, model version),
replaced when that model classifies the item again, with the probabilities, the class shown,
the model's uncertainty and domain check when it gave them, and when. SQLite in WAL mode,
like the labels; its own file, so the label database's schema and identity stay its own.
Export joins them with the current labels in one CSV.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from vol3d_gui.store.csv_files import write_csv_atomically
from vol3d_gui.store.item_keys import storable_text, unstored_text
from vol3d_gui.store.label_values import csv_cell
from vol3d_gui.store.labels import LabelStoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    study TEXT NOT NULL,
    item_id TEXT NOT NULL,
    model TEXT NOT NULL,
    class_index INTEGER NOT NULL,
    probabilities TEXT NOT NULL,
    uncertainty REAL,
    in_domain INTEGER,
    content_hash TEXT,
    created TEXT NOT NULL,
    PRIMARY KEY (study, item_id, model)
)
"""


@dataclass(frozen=True)
class StoredPrediction:
    study: str
    item_id: str
    model: str
    class_index: int
    probabilities: list
    uncertainty: float | None
    in_domain: bool | None
    content_hash: str | None
    created: str


def predictions_path(labels_db: Path) -> Path:
    return Path(labels_db).with_name("predictions.db")


class PredictionStore:
    def __init__(self, path, timeout_s: float = 10.0):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path), timeout=timeout_s, isolation_level=None)
            self.db.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise LabelStoreError(self.path, f"cannot open the prediction store ({exc})") from exc

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def record(self, study: str, item_id: str, model: str, class_index: int, probabilities, *,
               uncertainty: float | None = None, in_domain: bool | None = None,
               content_hash: str | None = None) -> None:
        try:
            probs = json.dumps([float(p) for p in probabilities])
            # study and item escaped: a file name that is not UTF-8 is stored like any other
            row = (storable_text(str(study)), storable_text(str(item_id)), str(model), int(class_index), probs,
                   None if uncertainty is None else float(uncertainty),
                   None if in_domain is None else int(bool(in_domain)), content_hash,
                   datetime.now(timezone.utc).isoformat(timespec="microseconds"))
            self.db.execute("INSERT OR REPLACE INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
        except (TypeError, ValueError, OverflowError, sqlite3.Error) as exc:
            raise LabelStoreError(self.path, f"prediction for {item_id!r} not saved ({exc})") from exc

    def latest(self, study: str) -> dict[str, StoredPrediction]:
        """item id -> the newest prediction of any model, for one study's items."""
        try:
            rows = self.db.execute("SELECT * FROM predictions WHERE study = ? ORDER BY created",
                                   (storable_text(str(study)),)).fetchall()
        except sqlite3.Error as exc:
            raise LabelStoreError(self.path, f"cannot read ({exc})") from exc
        out: dict[str, StoredPrediction] = {}
        for r in rows:
            p = StoredPrediction(unstored_text(r[0]), unstored_text(r[1]), r[2], int(r[3]), json.loads(r[4]), r[5],
                                 None if r[6] is None else bool(r[6]), r[7], r[8])
            out[p.item_id] = p  # ordered by time: the newest wins
        return out

    def export_with_labels(self, path, labels: dict, study: str) -> Path:
        """One CSV row per item of ``study`` that has a label or a prediction: the current label
        (``labels``: item id -> LabelEvent) beside the newest prediction and its model."""
        preds = self.latest(study)
        ids = sorted(set(labels) | set(preds))
        path = Path(path)
        fields = ["item_id", "label", "class_name", "reviewer", "labelled", "model", "predicted_class",
                  "probabilities", "uncertainty", "in_domain", "predicted"]
        def rows():
            for item_id in ids:
                ev, p = labels.get(item_id), preds.get(item_id)
                yield {
                    "item_id": _cell(item_id),
                    "label": "" if ev is None else ev.label, "class_name": _cell(ev.class_name if ev else ""),
                    "reviewer": _cell(ev.reviewer if ev else ""), "labelled": ev.created if ev else "",
                    "model": _cell(p.model if p else ""), "predicted_class": "" if p is None else p.class_index,
                    "probabilities": json.dumps(p.probabilities) if p else "",
                    "uncertainty": "" if p is None or p.uncertainty is None else p.uncertainty,
                    "in_domain": "" if p is None or p.in_domain is None else int(p.in_domain),
                    "predicted": p.created if p else ""}

        try:
            write_csv_atomically(path, fields, rows())
        except OSError as exc:
            raise LabelStoreError(path, f"cannot write CSV ({exc})") from exc
        return path


def _cell(text) -> str:
    """A spreadsheet must not run a cell as a formula (=, +, -, @ at its start); the label
    store's rule, so that `vol3d finetune` reads the item ids back unchanged."""
    return csv_cell("" if text is None else str(text))
