"""The results table of `vol3d score`: rows appended durably, resumable after a kill."""

import pytest

from vol3d_gui.core.results_table import ResultsError, ResultsTable, csv_kind, read_results

COLUMNS = {c: csv_kind(c) for c in ("item_id", "path", "status", "predicted_index", "prob_no lesion",
                                    "prob_lesion", "in_domain", "error_message")}


def _row(i, **kw):
    p = (i + 0.5) / 10.0
    return {"item_id": f"case{i}", "path": f"/data/case{i}.nii.gz", "status": "ok", "predicted_index": i % 2,
            "prob_no lesion": 1 - p, "prob_lesion": p, "in_domain": i % 3 != 0, **kw}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_rows_written_in_batches_come_back_typed_and_exact(tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / f"r{suffix}"
    table = ResultsTable(out, COLUMNS)
    table.write([_row(0), _row(1)])
    table.write([_row(2, status="error", error_message="bad\nfile", prob_lesion=None)])
    table.close()
    rows = read_results(out)
    assert [r["item_id"] for r in rows] == ["case0", "case1", "case2"]
    assert rows[1]["prob_lesion"] == 0.15 and rows[1]["predicted_index"] == 1
    assert rows[0]["in_domain"] is False and rows[1]["in_domain"] is True
    assert rows[2]["prob_lesion"] is None
    # a message never spans lines: a cut-off last row must be recognisable as such
    assert rows[2]["error_message"] in ("bad file", "bad\nfile")
    assert ResultsTable(out, COLUMNS).done_keys() == {(f"case{i}", f"/data/case{i}.nii.gz") for i in range(3)}
    assert not out.with_name(out.name + ".parts").exists()


def test_a_half_written_csv_row_is_dropped_on_reopening(tmp_path):
    out = tmp_path / "r.csv"
    table = ResultsTable(out, COLUMNS)
    table.write([_row(0), _row(1)])
    table.close()
    with open(out, "a") as fh:  # a kill in the middle of the next row
        fh.write("case2,/data/case2.nii.gz,o")
    assert [r["item_id"] for r in read_results(out)] == ["case0", "case1"]  # a reader skips it
    again = ResultsTable(out, COLUMNS)
    assert again.done_keys() == {("case0", "/data/case0.nii.gz"), ("case1", "/data/case1.nii.gz")}
    again.write([_row(2)])
    again.close()
    assert [r["item_id"] for r in read_results(out)] == ["case0", "case1", "case2"]


def test_parquet_parts_left_by_a_kill_are_resumed_and_consolidated_once(tmp_path):
    pytest.importorskip("pyarrow")
    out = tmp_path / "r.parquet"
    table = ResultsTable(out, COLUMNS)
    table.write([_row(0)])
    table.write([_row(1)])  # killed here: no close, only parts
    assert not out.exists()
    again = ResultsTable(out, COLUMNS)
    assert len(again.done_keys()) == 2
    again.write([_row(2)])
    again.close()
    # a kill after writing OUT but before removing the parts: the rows are in both
    parts = out.with_name(out.name + ".parts")
    table = ResultsTable(out, COLUMNS)
    table.write([_row(3)])
    (parts / "part-000099.parquet").write_bytes((parts / "part-000001.parquet").read_bytes())
    import pyarrow.parquet as pq

    pq.write_table(pq.read_table(out), parts / "part-000100.parquet")
    final = ResultsTable(out, COLUMNS)
    final.close()
    assert [r["item_id"] for r in read_results(out)] == ["case0", "case1", "case2", "case3"]


def test_a_table_with_other_columns_is_not_resumed(tmp_path):
    out = tmp_path / "r.csv"
    t = ResultsTable(out, COLUMNS)
    t.write([_row(0)])
    t.close()
    with pytest.raises(ResultsError, match="other columns"):
        ResultsTable(out, {**COLUMNS, "prob_third": "float"})


def test_only_csv_and_parquet(tmp_path):
    with pytest.raises(ResultsError, match=r"\.csv or a \.parquet"):
        ResultsTable(tmp_path / "r.xlsx", COLUMNS)


def test_a_fifo_named_like_a_results_file_is_refused_not_read(tmp_path):
    import os

    from vol3d_gui.core.study import open_study

    fifo = tmp_path / "results.csv"
    os.mkfifo(fifo)
    with pytest.raises(ResultsError, match="not a regular file"):
        read_results(fifo)
    with pytest.raises(ResultsError, match="not a regular file"):
        ResultsTable(fifo, COLUMNS)
    with pytest.raises(Exception, match="not a study"):
        open_study(fifo)  # not sniffed as a results table either: it would block
