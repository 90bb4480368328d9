"""The results table of an archive run (`vol3d score`): one row per item, written as rows come.

CSV is appended to, flushed and fsynced per batch: a run killed at any moment leaves every
row it reported complete, except at most a last half-written line, which ``ResultsTable``
cuts off when it reopens the file (the one edit in place we allow: it only drops a row
that was never finished, and that item is scored again).
Parquet cannot be appended to, so each batch is a part file (``OUT.parts/part-NNNNNN.parquet``,
written to a temporary name and renamed); ``close()`` consolidates the parts and any earlier
``OUT`` into a new ``OUT`` (temporary file, os.replace) and removes the parts.

A row is identified by its item id and path (``row_key``): reopened with the same columns,
the table reports the keys it holds, so a restarted run skips them and writes no row twice.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
from pathlib import Path

from vol3d_gui.core.errors import Vol3dError

PARTS_SUFFIX = ".parts"


class ResultsError(Vol3dError):
    """A results file cannot be written or read. The message names the file and the reason."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def row_key(row: dict) -> tuple[str, str]:
    return str(row.get("item_id")), str(row.get("path"))


def results_format(path) -> str:
    name = str(path).lower()
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".parquet"):
        return "parquet"
    raise ResultsError(path, "results go to a .csv or a .parquet file")


def _pyarrow(path):
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ResultsError(path, "parquet needs pyarrow (pip install 'vol3d-gui[ray]'), "
                                 "or write a .csv") from exc
    return pa, pq


def _csv_value(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)  # round-trips exactly
    # one physical line per row: that is what makes a cut-off last row detectable
    return str(v).replace("\r", " ").replace("\n", " ")


def parse_csv_value(text: str, kind: str):
    """A CSV cell back to its column type (``kind``: str, float, int, bool)."""
    if text == "":
        return None
    if kind == "float":
        return float(text)
    if kind == "int":
        return int(text)
    if kind == "bool":
        return text == "True"
    return text


class ResultsTable:
    """Append rows of fixed ``columns`` (name -> kind: "str", "float", "int", "bool")."""

    def __init__(self, path, columns: dict[str, str]):
        self.path = Path(path)
        self.format = results_format(self.path)
        self.columns = dict(columns)
        self.parts = self.path.with_name(self.path.name + PARTS_SUFFIX)
        self._fh = None
        self._n_parts = 0
        self.existing: list[dict] = self._read_existing()

    # --- what is there already -------------------------------------------------------------
    def done_keys(self) -> set[tuple[str, str]]:
        return {row_key(r) for r in self.existing}

    def _read_existing(self) -> list[dict]:
        if self.format == "csv":
            return self._read_csv()
        rows = read_results(self.path) if self.path.exists() else []
        self._check_columns(rows[0].keys() if rows else None, self.path)
        if self.parts.is_dir():
            for part in sorted(self.parts.glob("part-*.parquet")):
                part_rows = read_results(part)
                self._check_columns(part_rows[0].keys() if part_rows else None, part)
                rows += part_rows
                self._n_parts = max(self._n_parts, int(part.stem.split("-")[1]))
        return _unique(rows)

    def _check_columns(self, found, where):
        if found is not None and list(found) != list(self.columns):
            raise ResultsError(where, "holds results with other columns (another model or class "
                                      "names?); choose another output file")

    def _read_csv(self) -> list[dict]:
        if not self.path.exists():
            return []
        with _open_regular(self.path) as fh:
            data = fh.read()
        if data and not data.endswith(b"\n"):
            # killed in the middle of a row: drop the unfinished line (its item is redone)
            keep = data.rfind(b"\n") + 1
            os.truncate(self.path, keep)
            data = data[:keep]
        if not data:
            return []
        try:
            reader = csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""))
            self._check_columns(reader.fieldnames, self.path)
            return [{k: parse_csv_value(r[k], self.columns[k]) for k in self.columns} for r in reader]
        except (UnicodeDecodeError, csv.Error, ValueError, KeyError) as exc:
            raise ResultsError(self.path, f"is not a results table this run can resume ({exc})") from exc

    # --- writing ---------------------------------------------------------------------------
    def write(self, rows: list[dict]) -> None:
        """Append ``rows`` durably (flushed and fsynced, or an atomically renamed part file)."""
        if not rows:
            return
        rows = [{k: r.get(k) for k in self.columns} for r in rows]
        if self.format == "csv":
            self._write_csv(rows)
        else:
            self._write_part(rows)

    def _write_csv(self, rows):
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists() or self.path.stat().st_size == 0
            self._fh = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115 (kept open across batches)
            self._writer = csv.writer(self._fh)
            if new:
                self._writer.writerow(self.columns)
        for r in rows:
            self._writer.writerow([_csv_value(r[k]) for k in self.columns])
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def _arrow_table(self, rows):
        pa, _ = _pyarrow(self.path)
        types = {"str": pa.string(), "float": pa.float64(), "int": pa.int64(), "bool": pa.bool_()}
        schema = pa.schema([(k, types[v]) for k, v in self.columns.items()])
        return pa.Table.from_pylist(rows, schema=schema)

    def _write_part(self, rows):
        _, pq = _pyarrow(self.path)
        self.parts.mkdir(parents=True, exist_ok=True)
        self._n_parts += 1
        final = self.parts / f"part-{self._n_parts:06d}.parquet"
        _atomic(final, lambda tmp: pq.write_table(self._arrow_table(rows), tmp))

    def close(self) -> None:
        """CSV: close the file. Parquet: one OUT from the earlier OUT and every part."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self.format != "parquet" or not self.parts.is_dir():
            return
        rows = self._read_existing()
        _, pq = _pyarrow(self.path)
        _atomic(self.path, lambda tmp: pq.write_table(self._arrow_table(rows), tmp))
        shutil.rmtree(self.parts)
        self.existing = rows


def _open_regular(path: Path):
    """Binary reading of a regular file only: a FIFO named like a results file would block."""
    from vol3d_gui.core.errors import VolumeReadError
    from vol3d_gui.core.readers.budget import open_regular

    if not path.exists():
        raise ResultsError(path, "no such results file")
    try:
        return open_regular(path, "results file")
    except VolumeReadError as exc:
        raise ResultsError(path, exc.reason) from exc


def _unique(rows: list[dict]) -> list[dict]:
    # a kill between consolidating and removing the parts leaves rows in both: keep one
    seen, out = set(), []
    for r in rows:
        key = row_key(r)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_results(path) -> list[dict]:
    """Every row of a results file (.csv or .parquet) as a dict; CSV cells typed by the
    column names this module writes (see vol3d_gui.ml.scoring.result_columns)."""
    path = Path(path)
    if results_format(path) == "parquet":
        _, pq = _pyarrow(path)
        try:
            with _open_regular(path) as fh:
                return pq.read_table(fh).to_pylist()
        except ResultsError:
            raise
        except Exception as exc:  # pyarrow raises its own error types for broken files
            raise ResultsError(path, f"is not a readable parquet file ({exc})") from exc
    try:
        with _open_regular(path) as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            # a last line cut off by a kill has too few cells (None values): not a row yet
            return [{k: parse_csv_value(v, csv_kind(k)) for k, v in r.items()} for r in reader
                    if None not in r and None not in r.values()]
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as exc:
        raise ResultsError(path, f"is not a readable results table ({exc})") from exc


FLOAT_PREFIXES = ("prob_", "uncertainty")
FLOAT_COLUMNS = {"domain_score", "load_s", "predict_s", "total_s"}
INT_COLUMNS = {"predicted_index"}
BOOL_COLUMNS = {"in_domain"}


def csv_kind(column: str) -> str:
    """The type of a results column by its name (CSV has no types of its own)."""
    if column in FLOAT_COLUMNS or column.startswith(FLOAT_PREFIXES):
        return "float"
    if column in INT_COLUMNS:
        return "int"
    if column in BOOL_COLUMNS:
        return "bool"
    return "str"
