"""The label database's schema and its migrations: MIGRATIONS[n] takes a database at version
n to n + 1, inside the caller's write transaction (LabelStore._migrate)."""

from __future__ import annotations

import hashlib
import json
import sqlite3

from vol3d_gui.store.item_keys import KEY_SEP, make_item_key
from vol3d_gui.store.label_values import normalise_time

SCHEMA_VERSION = 3


def fingerprint(item_key, label, cleared, reviewer, created, content_hash) -> str:
    """What makes two events the same event: an import skips events the store already has."""
    return hashlib.sha256(json.dumps([item_key, None if label is None else int(label), bool(cleared),
                                      reviewer or "", created or "", content_hash or ""]).encode()).hexdigest()


# --- schema migrations: MIGRATIONS[n] takes a database at version n to n + 1 ----------------------
def _v0_to_v1(db: sqlite3.Connection) -> None:
    db.execute("""
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
    db.execute("CREATE INDEX IF NOT EXISTS label_events_item ON label_events(item_key, id)")


def _v1_to_v2(db: sqlite3.Connection) -> None:
    # Version 1 de-duplicated imports only against earlier imports (a UNIQUE import_key), so a
    # CSV exported from a store and imported back doubled every event. Every event now carries a
    # fingerprint; imports skip fingerprints that are already there.
    # Times become microsecond UTC (version 1 wrote milliseconds) so that they sort as text and
    # match what an import of the same event computes.
    db.execute("ALTER TABLE label_events ADD COLUMN fingerprint TEXT")
    updates = []
    for i, key, label, cleared, reviewer, created, content_hash in db.execute(
            "SELECT id, item_key, label, cleared, reviewer, created, content_hash FROM label_events").fetchall():
        try:
            created = normalise_time(created)
        except ValueError:
            pass  # kept as written: it still sorts, and history shows it as it was
        updates.append((created, fingerprint(key, label, cleared, reviewer, created, content_hash), i))
    db.executemany("UPDATE label_events SET created = ?, fingerprint = ? WHERE id = ?", updates)
    db.execute("CREATE INDEX label_events_fingerprint ON label_events(fingerprint)")
    db.execute("CREATE INDEX label_events_item_time ON label_events(item_key, created, id)")


def _v2_to_v3(db: sqlite3.Connection) -> None:
    # Version 2 joined study and item with a bare '::' and split at the last one, so an item id
    # holding '::' took another item's label. Keys are rewritten in the escaped form, split as
    # version 2 split them (that is what they meant then); fingerprints follow their keys.
    updates = []
    for i, key, label, cleared, reviewer, created, content_hash in db.execute(
            "SELECT id, item_key, label, cleared, reviewer, created, content_hash FROM label_events").fetchall():
        study, sep, item = key.rpartition(KEY_SEP)
        if not sep:
            continue
        new = make_item_key(study, item)
        if new != key:
            updates.append((new, fingerprint(new, label, cleared, reviewer, created, content_hash), i))
    db.executemany("UPDATE label_events SET item_key = ?, fingerprint = ? WHERE id = ?", updates)


MIGRATIONS = [_v0_to_v1, _v1_to_v2, _v2_to_v3]
assert len(MIGRATIONS) == SCHEMA_VERSION
