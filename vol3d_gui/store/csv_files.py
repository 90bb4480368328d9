"""Writing a CSV the way the store writes everything: to a temporary file beside the target,
fsynced, then renamed over it, so a reader never sees half a file and a crash leaves the old one."""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def write_csv_atomically(path, fieldnames: list[str], rows: Iterable[dict]) -> Path:
    """Raises OSError (the caller names it in its own typed error); nothing is left behind."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        # surrogateescape: an item id from a non-UTF-8 file name is written as its own bytes
        with os.fdopen(fd, "w", newline="", encoding="utf-8", errors="surrogateescape") as fh:
            w = csv.DictWriter(fh, fieldnames=fieldnames)
            w.writeheader()
            for row in rows:
                w.writerow(row)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise
    return path
