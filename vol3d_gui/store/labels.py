"""The label store: the reader's labels in SQLite, one row per labelling event.

Labels are data that must not be lost. WAL mode with a busy timeout lets two app instances
write to one database; each label is its own short ``BEGIN IMMEDIATE`` transaction, so a
process killed mid-write loses at most the label it was writing and never a committed one.
The current label of an item is its latest event (by time, then by insertion order); history
is kept; a "clear" is a tombstone event, not a delete. Qt-free and standalone: it imports
nothing of vol3d outside vol3d_gui.store, so it defines its own error type.

Item keys are ``"<study>::<item id>"`` built by :func:`make_item_key` (the study is its source
path or name), each part escaped so that keys cannot collide and any file name can be
labelled (see store.item_keys); a loose file can use its path alone.
"""

from __future__ import annotations

import csv
import getpass
import hashlib
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from vol3d_gui.store.csv_files import write_csv_atomically
from vol3d_gui.store.item_keys import (  # noqa: F401 (re-exported: the UI imports them from here)
    KEY_SEP,
    check_key,
    make_item_key,
    split_item_key,
    storable_text,
    study_key_prefix,
)
from vol3d_gui.store.label_schema import MIGRATIONS, SCHEMA_VERSION, fingerprint
from vol3d_gui.store.label_values import (  # noqa: F401 (re-exported)
    CSV_FIELDS,
    class_index,
    csv_cell,
    csv_item_id,
    from_csv_cell,
    neutralised,
    normalise_time,
    parse_csv_row,
    probabilities,
    storable,
)

APPLICATION_ID = 0x766F6C33  # "vol3": tells our databases from any other SQLite file
_WRITE_ATTEMPTS = 3  # on top of SQLite's own busy timeout; bounded so the GUI never hangs for minutes


class LabelStoreError(Exception):
    """The label database (or a CSV) cannot be used. The message names the file and the reason."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class LabelEvent:
    """One labelling event. ``cleared`` events are tombstones (``label`` is None)."""

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

    @property
    def item_id(self) -> str:
        return split_item_key(self.item_key)[1]

    @classmethod
    def from_row(cls, row) -> LabelEvent:
        probs = json.loads(row["model_probabilities"]) if row["model_probabilities"] else None
        return cls(row["id"], row["item_key"], row["content_hash"], row["label"], row["class_name"],
                   row["reviewer"], row["created"], row["model_class"], probs, row["model_version"],
                   row["note"], bool(row["cleared"]))


@dataclass
class ContentCheck:
    """Current labels split by whether the image they were given to is still the same."""

    matching: dict[str, LabelEvent] = field(default_factory=dict)
    stale: dict[str, LabelEvent] = field(default_factory=dict)  # the item's image has changed since
    unverified: dict[str, LabelEvent] = field(default_factory=dict)  # no hash on one side


def default_store_path() -> Path:
    """labels.db in the user data directory (platformdirs)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("vol3d")) / "labels.db"


def study_store_path(study_folder) -> Path:
    """A database beside a study, for labels that travel with the data. For a study that is
    one file (a MedMNIST .npz, a single volume) the database sits next to that file."""
    p = Path(study_folder)
    if p.is_file():
        return p.with_name(f"{p.name}.vol3d-labels.db")
    return p / "vol3d-labels.db"


def labelset_hash(labels) -> str:
    """A stable hash of a label set, recorded in fine-tuned model cards.

    ``labels``: a mapping key -> class index or -> LabelEvent (e.g. ``current_labels()``), or an
    iterable of LabelEvents (one per item). Only keys and classes count, not their order.
    """
    if isinstance(labels, Mapping):
        pairs = {str(k): (v.label if isinstance(v, LabelEvent) else v) for k, v in labels.items()}
    else:
        pairs = {}
        for ev in labels:
            if ev.item_key in pairs:
                raise ValueError(f"labelset_hash: {ev.item_key!r} appears twice; pass one event per item")
            pairs[ev.item_key] = ev.label
    if any(v is None for v in pairs.values()):
        raise ValueError("labelset_hash: a cleared label is not part of a label set")
    # The same formula as `vol3d finetune` uses for a {item: class} dict: keep them equal.
    return hashlib.sha256(json.dumps(sorted((k, int(v)) for k, v in pairs.items())).encode()).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class LabelStore:
    """A label database. Open one per process (and per thread); close it, or use ``with``."""

    def __init__(self, path, timeout_s: float = 10.0):
        self.path = Path(path)
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path), timeout=timeout_s, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise LabelStoreError(self.path, f"cannot open ({exc})") from exc
        try:
            self.db.row_factory = sqlite3.Row
            self.db.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            self._check_identity()
            mode = self.db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise LabelStoreError(self.path, f"cannot use write-ahead logging here (journal mode {mode})")
            self.db.execute("PRAGMA synchronous = FULL")  # a committed label survives power loss
            self.db.execute("PRAGMA foreign_keys = ON")
            ok = self.db.execute("PRAGMA quick_check").fetchone()[0]
            if ok != "ok":
                raise LabelStoreError(self.path, f"the database is damaged ({ok})")
            self._migrate()
        except sqlite3.OperationalError as exc:
            self.db.close()
            reason = "read-only" if "readonly" in str(exc) or "read-only" in str(exc) else "cannot open"
            raise LabelStoreError(self.path, f"{reason} ({exc})") from exc
        except sqlite3.DatabaseError as exc:
            self.db.close()
            raise LabelStoreError(self.path, f"not a usable label database ({exc})") from exc
        except BaseException:
            self.db.close()
            raise

    def __repr__(self) -> str:
        return f"LabelStore({str(self.path)!r})"

    def _check_identity(self) -> None:
        """Refuse another program's SQLite database rather than adding our table to it."""
        app = self.db.execute("PRAGMA application_id").fetchone()[0]
        if app not in (0, APPLICATION_ID):
            raise LabelStoreError(self.path, f"not a vol3d label database (application id {app:#x})")
        if app == 0:
            tables = {r[0] for r in self.db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
            if tables - {"label_events"}:
                raise LabelStoreError(self.path, "not a vol3d label database (it holds other tables: "
                                                 f"{', '.join(sorted(tables))})")

    def _migrate(self) -> None:
        if self.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            # Read again under the write lock: another process may have migrated meanwhile.
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise LabelStoreError(self.path, f"written by a newer vol3d (schema {version} > {SCHEMA_VERSION})")
            for step in MIGRATIONS[version:]:
                step(self.db)
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    # --- writing ------------------------------------------------------------------------------
    def _write(self, rows: list[dict], *, skip_known: bool = False) -> list[int]:
        """Insert rows in ONE short transaction; returns their ids (None for skipped rows)."""
        if self._closed:
            raise LabelStoreError(self.path, "the label store is closed")
        untimed = [row.pop("_untimed", False) for row in rows]
        for row in rows:
            row["created"] = row["created"] or _now()
            row["fingerprint"] = fingerprint(row["item_key"], row["label"], row["cleared"], row["reviewer"],
                                              row["created"], row["content_hash"])
        last: Exception | None = None
        for _ in range(_WRITE_ATTEMPTS):
            try:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    ids = []
                    for row, no_time in zip(rows, untimed):
                        if skip_known and self._known(row, no_time):
                            ids.append(None)
                            continue
                        cols = ", ".join(row)
                        cur = self.db.execute(f"INSERT INTO label_events ({cols}) VALUES "
                                              f"({', '.join('?' * len(row))})", list(row.values()))
                        ids.append(int(cur.lastrowid))
                    self.db.execute("COMMIT")
                    return ids
                except BaseException:
                    if self.db.in_transaction:
                        self.db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise LabelStoreError(self.path, f"cannot write ({exc})") from exc
                last = exc  # SQLite already waited busy_timeout; try again a bounded number of times
            except sqlite3.DatabaseError as exc:
                raise LabelStoreError(self.path, f"cannot write ({exc})") from exc
            except (OverflowError, UnicodeEncodeError) as exc:  # a value SQLite cannot hold
                raise LabelStoreError(self.path, f"cannot write ({exc})") from exc
        raise LabelStoreError(self.path, f"another writer kept the database locked ({last})")

    def _known(self, row: dict, untimed: bool) -> bool:
        """Is this (imported) event already in the store?"""
        if not untimed:
            return self.db.execute("SELECT 1 FROM label_events WHERE fingerprint = ?",
                                   (row["fingerprint"],)).fetchone() is not None
        # A hand-written row has no time: it is known when the same label by the same reviewer
        # on the same content is there at any time (so importing that file again adds nothing).
        return self.db.execute(
            "SELECT 1 FROM label_events WHERE item_key = ? AND label IS ? AND cleared = ? AND reviewer = ? "
            "AND content_hash IS ?", (row["item_key"], row["label"], row["cleared"], row["reviewer"],
                                      row["content_hash"])).fetchone() is not None

    @staticmethod
    def _reviewer(reviewer: str | None) -> str:
        if reviewer and reviewer.strip():
            return storable(reviewer.strip())
        try:  # a label is never refused for a missing name: record who was logged in
            return getpass.getuser()
        except Exception:
            return "unknown"

    def add_label(self, item_key: str, label: int, *, class_name: str | None = None,
                  content_hash: str | None = None, reviewer: str, model_prediction=None,
                  model_version: str | None = None, note: str | None = None) -> int:
        """Record one labelling event (committed on return); returns its id.

        ``model_prediction``: what the model said at that moment, as (class index, probabilities)
        or just the probabilities (the class is then their argmax), or None.
        """
        try:
            check_key(item_key)
            label = class_index(label)
            model_class, probs = None, None
            if model_prediction is not None:
                if (isinstance(model_prediction, tuple) and len(model_prediction) == 2
                        and not hasattr(model_prediction[0], "__len__")):
                    model_class, probs = model_prediction
                else:
                    probs = list(model_prediction)
                    model_class = max(range(len(probs)), key=lambda i: probs[i]) if probs else None
            probs_json = None if probs is None else probabilities(probs)
            model_class = None if model_class is None else class_index(model_class, "model class")
        except (TypeError, ValueError, OverflowError) as exc:
            raise LabelStoreError(self.path, f"label for {item_key!r} not saved: {exc}") from exc
        return self._write([{
            "item_key": item_key, "content_hash": storable(content_hash), "label": label,
            "class_name": storable(class_name), "reviewer": self._reviewer(reviewer), "created": _now(),
            "model_class": model_class, "model_probabilities": probs_json,
            "model_version": storable(model_version), "note": storable(note), "cleared": 0}])[0]

    def clear_label(self, item_key: str, *, reviewer: str, note: str | None = None) -> int:
        """A tombstone: the item has no current label from now on; its history stays."""
        try:
            check_key(item_key)
        except ValueError as exc:
            raise LabelStoreError(self.path, f"label for {item_key!r} not cleared: {exc}") from exc
        return self._write([{"item_key": item_key, "content_hash": None, "label": None, "class_name": None,
                             "reviewer": self._reviewer(reviewer), "created": _now(), "note": storable(note),
                             "cleared": 1}])[0]

    # --- reading -----------------------------------------------------------------------------------
    def _query(self, sql: str, args=()) -> list:
        if self._closed:
            raise LabelStoreError(self.path, "the label store is closed")
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise LabelStoreError(self.path, f"cannot read ({exc})") from exc

    def current_labels(self, study: str | None = None) -> dict[str, LabelEvent]:
        """item_key -> its latest event, for items whose latest event is not a clear.

        ``study``: only the items of that study (as given to make_item_key); a trailing ``::``
        is accepted. "Latest" is by time, then by insertion order, so that events merged from
        another store's CSV take their place in time rather than winning for being imported last.
        """
        sql = ("SELECT * FROM (SELECT e.*, ROW_NUMBER() OVER (PARTITION BY item_key "
               "ORDER BY created DESC, id DESC) AS rank FROM label_events e {where}) "
               "WHERE rank = 1 AND cleared = 0 ORDER BY item_key")
        args: tuple = ()
        where = ""
        if study is not None:
            prefix = study_key_prefix(study)
            # substr, not LIKE: study paths may hold % or _, and LIKE ignores case for ASCII.
            where = "WHERE substr(item_key, 1, ?) = ?"
            args = (len(prefix), prefix)
        return {r["item_key"]: LabelEvent.from_row(r) for r in self._query(sql.format(where=where), args)}

    def study_labels(self, study: str) -> dict[str, LabelEvent]:
        """item id -> current label, for one study."""
        return {ev.item_id: ev for ev in self.current_labels(study).values()}

    def current_label(self, item_key: str) -> LabelEvent | None:
        hist = self.history(item_key)
        if not hist:
            return None
        last = max(hist, key=lambda e: (e.created, e.event_id))
        return None if last.cleared else last

    def history(self, item_key: str) -> list[LabelEvent]:
        """Every event of one item, oldest first."""
        return [LabelEvent.from_row(r) for r in self._query(
            "SELECT * FROM label_events WHERE item_key = ? ORDER BY created, id", (item_key,))]

    def labelled_count(self, study: str | None = None) -> int:
        return len(self.current_labels(study))

    def check_content(self, hashes: Mapping[str, str]) -> ContentCheck:
        """Compare current labels with the items' content hashes now ({item_key: sha256}).

        A label given to an image that has changed since (re-exported, re-processed, a different
        file under the same name) is ``stale``: show it as such, do not train on it silently.
        """
        out = ContentCheck()
        for key, ev in self.current_labels().items():
            now = hashes.get(key)
            if not now or not ev.content_hash:
                out.unverified[key] = ev
            elif now == ev.content_hash:
                out.matching[key] = ev
            else:
                out.stale[key] = ev
        return out

    def stale_labels(self, hashes: Mapping[str, str]) -> list[str]:
        """Keys of current labels given to different image content than the item has now."""
        return sorted(self.check_content(hashes).stale)

    # --- CSV -----------------------------------------------------------------------------------------
    def export_csv(self, path, *, current_only: bool = False) -> Path:
        """Every event (the full history), or only the current labels, written atomically.

        The ``item_id`` column (the key without its study) lets ``vol3d finetune --labels``
        read a ``current_only`` export directly.
        """
        path = Path(path)
        events = (sorted(self.current_labels().values(), key=lambda e: e.event_id) if current_only else
                  [LabelEvent.from_row(r) for r in self._query("SELECT * FROM label_events ORDER BY id")])
        rows = (neutralised({
            "event_id": e.event_id, "item_key": e.item_key, "item_id": csv_item_id(e.item_id),
            "content_hash": e.content_hash or "", "label": "" if e.label is None else e.label,
            "class_name": e.class_name or "", "reviewer": e.reviewer, "created": e.created,
            "model_class": "" if e.model_class is None else e.model_class,
            "model_probabilities": "" if e.model_probabilities is None else json.dumps(e.model_probabilities),
            "model_version": e.model_version or "", "note": e.note or "", "cleared": int(e.cleared)})
            for e in events)
        try:
            write_csv_atomically(path, CSV_FIELDS, rows)
        except OSError as exc:
            raise LabelStoreError(path, f"cannot write CSV ({exc})") from exc
        return path

    def import_csv(self, path) -> int:
        """Add the events of a CSV (an export of this or another store, or a hand-written file with
        at least item_key and label); returns how many were new. Importing the same file twice
        adds nothing. The file is checked whole first: a bad line adds nothing and the error
        names the file and the line."""
        path = Path(path)
        try:
            # -sig: spreadsheets write a BOM; surrogateescape: what export_csv wrote for odd names
            with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
                reader = csv.DictReader(fh)
                header = reader.fieldnames or []
                if "item_key" not in header or "label" not in header:
                    raise LabelStoreError(path, f"line 1: the header needs item_key and label (found {header})")
                rows = [(reader.line_num, r) for r in reader]
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise LabelStoreError(path, f"cannot read CSV ({exc})") from exc
        parsed, seen = [], set()
        for n, r in rows:
            try:
                parsed_row = parse_csv_row(r)
            except (ValueError, TypeError, OverflowError) as exc:
                raise LabelStoreError(path, f"line {n}: {exc}") from exc
            key = fingerprint(parsed_row["item_key"], parsed_row["label"], parsed_row["cleared"],
                               parsed_row["reviewer"], parsed_row["created"], parsed_row["content_hash"])
            if key not in seen:  # the same event twice in one file counts once
                seen.add(key)
                parsed.append(parsed_row)
        ids = self._write(parsed, skip_known=True) if parsed else []
        return sum(i is not None for i in ids)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.db.close()

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

