"""The label store: the reader's labels in SQLite, one row per labelling event.

Labels are data that must not be lost. WAL mode with a busy timeout lets two app instances
write to one database; each label is its own short ``BEGIN IMMEDIATE`` transaction, so a
process killed mid-write loses at most the label it was writing and never a committed one.
The current label of an item is its latest event; history is kept; a "clear" is a
tombstone event, not a delete. Qt-free and standalone (imports nothing else of vol3d).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

SCHEMA_VERSION = 1
CSV_FIELDS = ["event_id", "item_key", "content_hash", "label", "class_name", "reviewer", "created",
              "model_class", "model_probabilities", "model_version", "note", "cleared"]


class LabelStoreError(Exception):
    """The label database cannot be used. The message names the file and the reason."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class LabelEvent:
    event_id: int
    item_key: str
    content_hash: str | None
    label: int | None
    class_name: str | None
    reviewer: str
    created: str
    model_class: int | None
    model_probabilities: list | None
    model_version: str | None
    note: str | None
    cleared: bool

    @classmethod
    def from_row(cls, row) -> LabelEvent:
        probs = json.loads(row["model_probabilities"]) if row["model_probabilities"] else None
        return cls(row["id"], row["item_key"], row["content_hash"], row["label"], row["class_name"],
                   row["reviewer"], row["created"], row["model_class"], probs, row["model_version"],
                   row["note"], bool(row["cleared"]))


def default_store_path() -> Path:
    """labels.db in the user data directory (platformdirs)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("vol3d")) / "labels.db"


def study_store_path(study_folder) -> Path:
    """A database beside a study, for labels that travel with the data."""
    return Path(study_folder) / "vol3d-labels.db"


def labelset_hash(labels: dict[str, int]) -> str:
    """A stable hash of a label set {item_key: label}, recorded in fine-tuned model cards."""
    return hashlib.sha256(json.dumps(sorted(labels.items())).encode()).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class LabelStore:
    def __init__(self, path, timeout_s: float = 10.0):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path), timeout=timeout_s, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            mode = self.db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise LabelStoreError(self.path, f"cannot use write-ahead logging here (journal mode {mode})")
            self.db.execute("PRAGMA synchronous = FULL")  # a committed label survives power loss
            self.db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise LabelStoreError(self.path, f"not a usable label database ({exc})") from exc
        except OSError as exc:
            raise LabelStoreError(self.path, f"cannot open ({exc})") from exc

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LabelStoreError(self.path, f"written by a newer vol3d (schema {version} > {SCHEMA_VERSION})")
        if version == SCHEMA_VERSION:
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("""
                CREATE TABLE IF NOT EXISTS label_events (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    item_key TEXT NOT NULL,
                    content_hash TEXT,
                    label INTEGER,
                    class_name TEXT,
                    reviewer TEXT NOT NULL,
                    created TEXT NOT NULL,
                    model_class INTEGER,
                    model_probabilities TEXT,
                    model_version TEXT,
                    note TEXT,
                    cleared INTEGER NOT NULL DEFAULT 0,
                    import_key TEXT UNIQUE
                )""")
            self.db.execute("CREATE INDEX IF NOT EXISTS label_events_item ON label_events(item_key, id)")
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    # --- writing ------------------------------------------------------------------------------
    def _insert(self, values: dict) -> int:
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        for attempt in range(50):
            try:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    cur = self.db.execute(f"INSERT INTO label_events ({cols}) VALUES ({marks})",
                                          list(values.values()))
                    self.db.execute("COMMIT")
                    return int(cur.lastrowid)
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise LabelStoreError(self.path, f"cannot write ({exc})") from exc
                time.sleep(0.05 * (attempt + 1))
            except sqlite3.DatabaseError as exc:
                raise LabelStoreError(self.path, f"cannot write ({exc})") from exc
        raise LabelStoreError(self.path, "the database stayed locked by another writer")

    def add_label(self, item_key: str, label: int, *, class_name: str | None = None, content_hash=None,
                  reviewer: str = "", model_prediction=None, model_version: str | None = None,
                  note: str | None = None) -> int:
        """Record one labelling event; returns its id. ``model_prediction``: the model's class
        index and probabilities at that moment, as (class, probabilities) or None."""
        model_class, probs = (None, None) if model_prediction is None else model_prediction
        return self._insert({
            "item_key": str(item_key), "content_hash": content_hash, "label": int(label),
            "class_name": class_name, "reviewer": reviewer or os.environ.get("USER", ""), "created": _now(),
            "model_class": None if model_class is None else int(model_class),
            "model_probabilities": None if probs is None else json.dumps([float(p) for p in probs]),
            "model_version": model_version, "note": note, "cleared": 0})

    def clear_label(self, item_key: str, *, reviewer: str = "", note: str | None = None) -> int:
        """A tombstone: the item has no current label; its history stays."""
        return self._insert({"item_key": str(item_key), "label": None, "reviewer": reviewer, "created": _now(),
                             "note": note, "cleared": 1})

    # --- reading -----------------------------------------------------------------------------------
    def _query(self, sql: str, args=()) -> list:
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise LabelStoreError(self.path, f"cannot read ({exc})") from exc

    def current_labels(self, prefix: str | None = None) -> dict[str, LabelEvent]:
        """item_key -> its latest event, for items whose latest event is not a clear."""
        sql = ("SELECT e.* FROM label_events e JOIN (SELECT item_key, MAX(id) AS id FROM label_events "
               "GROUP BY item_key) last ON e.id = last.id WHERE e.cleared = 0")
        args: tuple = ()
        if prefix:
            sql += " AND e.item_key LIKE ? ESCAPE '\\'"
            args = (prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",)
        return {r["item_key"]: LabelEvent.from_row(r) for r in self._query(sql, args)}

    def history(self, item_key: str) -> list[LabelEvent]:
        return [LabelEvent.from_row(r) for r in
                self._query("SELECT * FROM label_events WHERE item_key = ? ORDER BY id", (item_key,))]

    def labelled_count(self) -> int:
        return len(self.current_labels())

    def stale_labels(self, hashes: dict[str, str]) -> list[str]:
        """Items whose current label was given to different image content than they have now."""
        cur = self.current_labels()
        return [k for k, ev in cur.items() if k in hashes and ev.content_hash and ev.content_hash != hashes[k]]

    # --- CSV -----------------------------------------------------------------------------------------
    def export_csv(self, path) -> Path:
        """Every event (the full history), written atomically."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
                w.writeheader()
                for r in self._query("SELECT * FROM label_events ORDER BY id"):
                    w.writerow({"event_id": r["id"], **{k: r[k] for k in CSV_FIELDS[1:]}})
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise LabelStoreError(path, f"cannot write CSV ({exc})") from exc
        return path

    def import_csv(self, path) -> int:
        """Add the events of a CSV export; importing the same file twice adds nothing."""
        path = Path(path)
        try:
            with open(path, newline="") as fh:
                rows = list(csv.DictReader(fh))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise LabelStoreError(path, f"cannot read CSV ({exc})") from exc
        added = 0
        for n, row in enumerate(rows, start=2):
            try:
                key = row["item_key"]
                cleared = row.get("cleared") in ("1", "True", "true")
                label = None if cleared or row.get("label") in ("", None) else int(row["label"])
                created = row.get("created") or _now()
                reviewer = row.get("reviewer") or ""
            except (KeyError, ValueError) as exc:
                raise LabelStoreError(path, f"line {n}: {exc}") from exc
            if not key or (label is None and not cleared):
                raise LabelStoreError(path, f"line {n}: needs item_key and label")
            import_key = hashlib.sha256(json.dumps([key, label, created, reviewer, cleared]).encode()).hexdigest()
            if self._query("SELECT 1 FROM label_events WHERE import_key = ?", (import_key,)):
                continue
            mc = row.get("model_class")
            self._insert({"item_key": key, "content_hash": row.get("content_hash") or None, "label": label,
                          "class_name": row.get("class_name") or None, "reviewer": reviewer, "created": created,
                          "model_class": int(mc) if mc not in (None, "") else None,
                          "model_probabilities": row.get("model_probabilities") or None,
                          "model_version": row.get("model_version") or None, "note": row.get("note") or None,
                          "cleared": int(cleared), "import_key": import_key})
            added += 1
        return added

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
