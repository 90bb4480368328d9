"""Item keys of the label store: ``"<study>::<item id>"``, each part escaped.

'%' and ':' become %25 and %3A, and a lone surrogate (a file name that is not valid UTF-8, as
Python decodes it with surrogateescape) becomes %uDCxx. A part therefore never holds '::', the
first '::' is the separator, keys of different (study, item) pairs never collide, and every
key is valid UTF-8 for SQLite. A loose file can use its path alone as its key (no '::').
"""

from __future__ import annotations

import re

KEY_SEP = "::"
_ESCAPE = re.compile(r"[%:\ud800-\udfff]")
_UNESCAPE = re.compile(r"%(25|3A|u[0-9A-F]{4})")


def _escape_part(text: str) -> str:
    return _ESCAPE.sub(lambda m: {"%": "%25", ":": "%3A"}.get(m[0]) or f"%u{ord(m[0]):04X}", text)


def _unescape_part(text: str) -> str:
    return _UNESCAPE.sub(lambda m: {"25": "%", "3A": ":"}.get(m[1]) or chr(int(m[1][1:], 16)), text)


def make_item_key(study, item_id) -> str:
    """The key of an item of a study (its source path or name). Both parts are escaped: no
    two (study, item) pairs give the same key, and any file name (even one that is not valid
    UTF-8) gives a key SQLite can store."""
    return f"{_escape_part(str(study))}{KEY_SEP}{_escape_part(str(item_id))}"


def split_item_key(key: str) -> tuple[str | None, str]:
    """(study, item id) as given to make_item_key; study is None for a key without one (a
    loose file's path)."""
    study, sep, item = key.partition(KEY_SEP)
    return (_unescape_part(study), _unescape_part(item)) if sep else (None, key)


def canonical_key(key: str) -> str:
    """A key from elsewhere (a CSV) in today's form. Before keys were escaped, study and item
    were joined by a bare '::' and split at the last one ('C:\\data::case 1'); such a key is
    rebuilt from that split. A key that make_item_key could have written is kept as it is."""
    if KEY_SEP not in key or make_item_key(*split_item_key(key)) == key:
        return key
    study, _, item = key.rpartition(KEY_SEP)
    return make_item_key(study, item)


def study_key_prefix(study: str) -> str:
    """What the keys of ``study``'s items start with (a trailing '::' is accepted)."""
    study = str(study)
    if study.endswith(KEY_SEP):
        study = study[: -len(KEY_SEP)]
    return _escape_part(study) + KEY_SEP


def check_key(item_key) -> None:
    if not isinstance(item_key, str) or not item_key:
        raise ValueError(f"item key must be a non-empty string, got {item_key!r}")
    try:
        item_key.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the key is not valid UTF-8: build it with make_item_key, which escapes "
                         "any file name") from None


_TEXT_ESCAPE = re.compile(r"[%\ud800-\udfff]")


def storable_text(text: str) -> str:
    """``text`` as valid UTF-8 for a SQLite column of its own (no separator to protect): '%'
    and lone surrogates escaped as in keys; :func:`unstored_text` gives it back exactly."""
    return _TEXT_ESCAPE.sub(lambda m: "%25" if m[0] == "%" else f"%u{ord(m[0]):04X}", text)


def unstored_text(text: str) -> str:
    return _unescape_part(text)
