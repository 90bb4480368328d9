"""Values of label events: validation, times, and CSV cells a spreadsheet will not run."""

from __future__ import annotations

import json
import math
import operator
from datetime import datetime, timezone

from vol3d_gui.store.item_keys import canonical_key, storable_text

CSV_FIELDS = ["event_id", "item_key", "item_id", "content_hash", "label", "class_name", "reviewer", "created",
              "model_class", "model_probabilities", "model_version", "note", "cleared"]
_SQLITE_INT_MAX = 2**63 - 1
# a spreadsheet runs a cell that starts with one of these as a formula (CSV injection)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CSV_TEXT_FIELDS = ("item_key", "item_id", "content_hash", "class_name", "reviewer", "created",
                    "model_version", "note")
# read back exactly as written (after undoing csv_cell); the others are numbers, times and flags
_VERBATIM_FIELDS = ("item_key", "class_name", "reviewer", "model_version", "note")


def csv_cell(text: str) -> str:
    """A text cell a spreadsheet will not run: one starting with = + - @, a tab or CR gets a
    leading apostrophe (as OWASP advises), and so does one already starting with an apostrophe,
    so that :func:`from_csv_cell` gives every value back unchanged."""
    return "'" + text if text.startswith((*_FORMULA_START, "'")) else text


def from_csv_cell(text: str) -> str:
    """The value :func:`csv_cell` wrote."""
    return text[1:] if text.startswith("'") else text


def neutralised(row: dict) -> dict:
    return {k: csv_cell(v) if k in _CSV_TEXT_FIELDS and isinstance(v, str) else v for k, v in row.items()}


def storable(text: str | None) -> str | None:
    """Free text SQLite can store: a lone surrogate (from a non-UTF-8 name) becomes \\udcxx."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def normalise_time(text: str) -> str:
    """UTC ISO 8601 with microseconds, so that times sort as text."""
    t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError(f"time {text!r} has no time zone")
    try:
        return t.astimezone(timezone.utc).isoformat(timespec="microseconds")
    except OverflowError:  # 9999-12-31T23:00-05:00 is past year 9999 in UTC
        raise ValueError(f"time {text!r} is out of range") from None


def class_index(value, what: str = "class index") -> int:
    """A class index SQLite can store (a signed 64-bit integer) and that is not negative."""
    value = operator.index(value)
    if value < 0:
        raise ValueError(f"{what} must be >= 0, got {value}")
    if value > _SQLITE_INT_MAX:
        raise ValueError(f"{what} {value} is beyond 64 bits")
    return value


def probabilities(probs) -> str:
    values = [float(p) for p in probs]
    if not values or not all(math.isfinite(p) for p in values):
        raise ValueError(f"model probabilities must be finite numbers, got {values}")
    return json.dumps(values)


def parse_csv_row(r: dict) -> dict:
    """One CSV row as the columns of an event; ValueError/TypeError/OverflowError on bad values."""
    if None in r:
        raise ValueError("more fields than the header has")

    def text(name):
        v = r.get(name)
        if not v:
            return None
        if name in _CSV_TEXT_FIELDS and v.startswith("'"):
            return from_csv_cell(v) or None  # neutralised by export_csv: kept exactly
        if name in _VERBATIM_FIELDS:  # a file name or a note may start or end with a space
            return v
        return v.strip() or None

    key = text("item_key")
    if not key:
        raise ValueError("item_key is empty")
    key = canonical_key(key)  # an export written before keys were escaped
    cleared_text = (text("cleared") or "0").lower()
    if cleared_text not in ("0", "1", "true", "false"):
        raise ValueError(f"cleared must be 0 or 1, got {cleared_text!r}")
    cleared = cleared_text in ("1", "true")
    label = None
    if not cleared:
        if text("label") is None:
            raise ValueError(f"no label for {key!r}")
        label = class_index(int(text("label")))
    probs = text("model_probabilities")
    model_class = text("model_class")
    created = normalise_time(text("created")) if text("created") else None
    return {"_untimed": created is None, "item_key": key, "content_hash": text("content_hash"),
            "label": label,
            "class_name": text("class_name"), "reviewer": text("reviewer") or "",
            "created": created,
            "model_class": class_index(int(model_class), "model class") if model_class else None,
            "model_probabilities": probabilities(json.loads(probs)) if probs else None,
            "model_version": text("model_version"), "note": text("note"), "cleared": int(cleared)}


def csv_item_id(item_id: str) -> str:
    """The item id as the CSV can hold it: a non-UTF-8 file name's bytes (surrogateescape) as
    they are; any other lone surrogate (not from a file name) escaped as in keys."""
    try:
        item_id.encode("utf-8", "surrogateescape")
        return item_id
    except UnicodeEncodeError:
        return storable_text(item_id)
