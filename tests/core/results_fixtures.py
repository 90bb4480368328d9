"""A small results table of `vol3d score` over real NIfTI files, for the tests that open one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vol3d_gui.core.io import save_nifti
from vol3d_gui.core.results_table import ResultsTable, csv_kind
from vol3d_gui.core.volume import Volume, centered_affine

COLUMNS = ["item_id", "path", "series", "status", "predicted_class", "predicted_index", "prob_no lesion",
           "prob_lesion", "uncertainty", "in_domain", "domain_score", "domain_reasons", "model_name",
           "model_version", "content_hash", "error_type", "error_message"]

# a: confident lesion; b: uncertain; c: out of domain; d: could not be read
SCORES = {
    "a": {"predicted_class": "lesion", "predicted_index": 1, "prob_no lesion": 0.1, "prob_lesion": 0.9,
          "uncertainty": 0.05, "in_domain": True, "domain_score": 0.2},
    "b": {"predicted_class": "no lesion", "predicted_index": 0, "prob_no lesion": 0.6, "prob_lesion": 0.4,
          "uncertainty": 0.4, "in_domain": True, "domain_score": 0.3},
    "c": {"predicted_class": "no lesion", "predicted_index": 0, "prob_no lesion": 0.8, "prob_lesion": 0.2,
          "uncertainty": 0.1, "in_domain": False, "domain_score": 3.0,
          "domain_reasons": "spacing 5 mm outside 1-2 mm"},
    "d": {"status": "error", "error_type": "VolumeReadError", "error_message": "d.nii.gz: bad"},
}


def write_results(folder: Path, suffix: str = ".csv") -> tuple[Path, dict[str, np.ndarray]]:
    """Volumes a-c (distinct asymmetric arrays) and the results table naming them and d."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays, rows = {}, []
    for n, (item_id, score) in enumerate(SCORES.items()):
        path = folder / f"{item_id}.nii.gz"
        if score.get("status") != "error":
            data = (np.arange(6 * 5 * 4, dtype=np.int16) * (n + 1)).reshape(6, 5, 4)
            save_nifti(Volume(data, centered_affine(data.shape)), path)
            arrays[item_id] = data
        rows.append({"item_id": item_id, "path": str(path), "model_name": "m", "model_version": "2",
                     "status": "ok", **score})
    out = folder / f"results{suffix}"
    table = ResultsTable(out, {c: csv_kind(c) for c in COLUMNS})
    table.write(rows)
    table.close()
    return out, arrays
