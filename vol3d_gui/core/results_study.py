"""A results table of `vol3d score` opened as a worklist: a Study whose items are the scored
volumes, each carrying what the archive run said about it.

``item.extras["score"]`` holds: ``status``, ``predicted_class``, ``predicted_index``,
``probabilities`` (class name -> probability), ``uncertainty``, ``in_domain``,
``domain_score``, ``domain_reasons``, ``model`` ("name vVERSION"), ``content_hash`` and, for
a failed item, ``error_type`` and ``error_message`` (columns a run did not write are None).
``order_items(study, by)`` gives the review order: the most uncertain, or the out-of-domain
items, first.
"""

from __future__ import annotations

import math

from vol3d_gui.core.errors import VolumeReadError
from vol3d_gui.core.results_table import read_results
from vol3d_gui.core.study import Study, StudyItem

REVIEW_ORDERS = ("uncertainty", "domain", "probability")


def open_results(path) -> Study:
    """The rows of a results file (.csv or .parquet) as a Study, in file order."""
    from pathlib import Path

    from vol3d_gui.core.io import load_volume

    path = Path(path)
    rows = read_results(path)
    if rows and "item_id" not in rows[0]:
        raise VolumeReadError(path, "is not a results table of vol3d score (no item_id column)")
    class_names = [k[len("prob_"):] for k in (rows[0] if rows else {}) if k.startswith("prob_")]
    items = []
    for row in rows:
        score = {
            "status": row.get("status"),
            "predicted_class": row.get("predicted_class"),
            "predicted_index": row.get("predicted_index"),
            "probabilities": {c: row.get(f"prob_{c}") for c in class_names},
            "uncertainty": row.get("uncertainty"),
            "in_domain": row.get("in_domain"),
            "domain_score": row.get("domain_score"),
            "domain_reasons": row.get("domain_reasons"),
            "model": f"{row.get('model_name')} v{row.get('model_version')}",
            "content_hash": row.get("content_hash"),
            "error_type": row.get("error_type"),
            "error_message": row.get("error_message"),
        }
        vol_path, series = row.get("path"), row.get("series") or None
        name = str(row["item_id"])
        if score["status"] != "ok":  # the reader sees why it has no prediction
            name += f" ({score['error_type'] or 'error'})"
        items.append(StudyItem(id=str(row["item_id"]), name=name,
                               loader=lambda p=vol_path, s=series: load_volume(p, series=s),
                               extras={"score": score, "path": vol_path, "series_uid": series}))
    return Study(name=path.name, items=items, class_names=class_names or None, source=str(path),
                 folder=path.parent)


def _missing_last(value, descending: bool) -> tuple:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (1, 0.0)
    return (0, -float(value) if descending else float(value))


def order_items(study: Study, by: str = "uncertainty") -> list[StudyItem]:
    """Items in review order. ``uncertainty``: most uncertain first; ``domain``: failed
    items, then out-of-domain ones, then the rest (each group most uncertain first);
    ``probability``: highest probability of the last class (e.g. "lesion") first.
    A stable sort: ties keep file order."""
    if by not in REVIEW_ORDERS:
        raise ValueError(f"order by one of {', '.join(REVIEW_ORDERS)}, not {by!r}")
    if by == "uncertainty":
        return sorted(study, key=lambda it: _missing_last(it.extras["score"]["uncertainty"], True))
    if by == "probability":
        last = (study.class_names or [None])[-1]
        return sorted(study, key=lambda it: _missing_last(
            it.extras["score"]["probabilities"].get(last), True))

    def domain_key(it):
        s = it.extras["score"]
        group = 0 if s["status"] != "ok" else (1 if s["in_domain"] is False else 2)
        # the sense of domain_score is the bundle's; the flag and uncertainty are not ambiguous
        return (group, _missing_last(s["uncertainty"], True))
    return sorted(study, key=domain_key)
