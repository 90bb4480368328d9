"""The worklist's state and order, without Qt: which items a reader sees, in which order,
with their labels and the model's predictions.

The order shown (after the filter and the sort) is computed here and nowhere else: the
table displays it and the review steps through it, so the two cannot disagree. Stepping
is always relative to the order as it was before a label changed it: labelling a case under
the "unlabelled" filter takes it out of the list, and the next case is the one that
followed it, not the one after that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from psygnal import Signal

FILTERS = ("all", "unlabelled", "disagreements", "outside domain")
SORTS = ("study", "uncertainty", "domain")


@dataclass
class Prediction:
    class_index: int
    class_name: str
    probabilities: np.ndarray
    model: str | None = None
    uncertainty_value: float | None = None  # from the model (e.g. test-time augmentation)
    in_domain: bool | None = None

    @property
    def confidence(self) -> float:
        return float(self.probabilities[self.class_index])

    @property
    def uncertainty(self) -> float:
        """The model's own uncertainty when it gave one, else 1 - the margin between the two
        most likely classes (1 = coin toss)."""
        if self.uncertainty_value is not None:
            return float(self.uncertainty_value)
        p = np.sort(np.asarray(self.probabilities, dtype=float))[::-1]
        return float(1.0 - (p[0] - (p[1] if len(p) > 1 else 0.0)))


class Worklist:
    """Events: ``changed(item_id)`` when one item's label or prediction changes (its row is
    redrawn), ``reordered()`` when the shown order may have changed (filter, sort, a new study,
    or a change that moves items in or out of the filter)."""

    changed = Signal(object)
    reordered = Signal()

    def __init__(self) -> None:
        self.study = None
        self.labels: dict[str, int] = {}
        self.predictions: dict[str, Prediction] = {}
        self.filter = "all"
        self.sort = "study"
        # blind reading: truth, prediction and agreement of a case stay hidden until it is labelled
        self.blind = False
        self._order: list[int] | None = None

    def set_blind(self, on: bool) -> None:
        self.blind = bool(on)
        self._invalidate()

    def answer_visible(self, item_id: str | None) -> bool:
        """May the model's answer and the truth be shown for this case now?"""
        return not self.blind or (item_id is not None and item_id in self.labels)

    # --- content -------------------------------------------------------------------------------
    def set_study(self, study) -> None:
        self.study = study
        self.labels = {}
        self.predictions = {}
        self._invalidate()

    def class_name(self, index: int | None) -> str:
        if index is None:
            return ""
        names = self.study.class_names if self.study is not None else None
        return names[index] if names and 0 <= index < len(names) else str(index)

    def set_label(self, item_id: str, label: int | None) -> None:
        if label is None:
            self.labels.pop(item_id, None)
        else:
            self.labels[item_id] = int(label)
        self._item_changed(item_id)

    def set_labels(self, labels: dict[str, int]) -> None:
        """Labels from the store (another window or session): one reorder, not one per item."""
        self.labels = {k: int(v) for k, v in labels.items()}
        self._invalidate()

    def set_prediction(self, item_id: str, class_index: int, probabilities, **extra) -> None:
        probs = np.asarray(probabilities, dtype=float)
        self.predictions[item_id] = Prediction(int(class_index), self.class_name(int(class_index)),
                                               probs, **extra)
        self._item_changed(item_id)

    def set_predictions(self, predictions: dict[str, Prediction]) -> None:
        """Many at once (kept results shown again after a restart): one reorder."""
        self.predictions.update(predictions)
        self._invalidate()

    def agreement(self, item_id: str) -> bool | None:
        """Does the model agree with the reader's label (or, without one, the ground truth)?"""
        pred = self.predictions.get(item_id)
        item = self._item(item_id)
        ref = self.labels.get(item_id, item.label if item is not None else None)
        if pred is None or ref is None:
            return None
        return pred.class_index == ref

    # --- order ---------------------------------------------------------------------------------
    def set_filter(self, mode: str) -> None:
        if mode not in FILTERS:
            raise ValueError(f"unknown filter {mode!r}; choose from {', '.join(FILTERS)}")
        self.filter = mode
        self._invalidate()

    def set_sort(self, mode: str) -> None:
        if mode not in SORTS:
            raise ValueError(f"unknown order {mode!r}; choose from {', '.join(SORTS)}")
        self.sort = mode
        self._invalidate()

    def accepts(self, item) -> bool:
        if self.filter == "unlabelled":
            return item.id not in self.labels
        if self.filter == "disagreements":
            return self.agreement(item.id) is False
        if self.filter == "outside domain":  # the model's domain check flagged it
            pred = self.predictions.get(item.id)
            return pred is not None and pred.in_domain is False
        return True

    def order(self) -> list[int]:
        """Study rows in the order shown (after filter and sort)."""
        if self._order is None:
            study = self.study or []
            rows = [i for i, item in enumerate(study) if self.accepts(item)]
            if self.sort == "uncertainty":
                # the active-learning order: most uncertain first, unpredicted last; stable
                def key(row):
                    pred = self.predictions.get(study[row].id)
                    return -pred.uncertainty if pred is not None else 1.0

                rows.sort(key=key)
            elif self.sort == "domain":
                # what a domain check flagged first (out of domain, then not checked), each group
                # most uncertain first; unpredicted last
                def key(row):
                    pred = self.predictions.get(study[row].id)
                    if pred is None:
                        return (3, 0.0)
                    group = 0 if pred.in_domain is False else (1 if pred.in_domain is None else 2)
                    return (group, -pred.uncertainty)

                rows.sort(key=key)
            self._order = rows
        return self._order

    def shown_ids(self) -> list[str]:
        return [self.study[r].id for r in self.order()] if self.study is not None else []

    def row_of(self, item_id: str) -> int:
        study = self.study
        if study is None:
            return -1
        try:
            return study.items.index(study.by_id(item_id))
        except (KeyError, ValueError):
            return -1

    def step_from(self, item_id: str | None, delta: int, *, unlabelled_only: bool = False,
                  order: list[str] | None = None) -> str | None:
        """The item ``delta`` places from ``item_id`` in ``order`` (default: the order shown now),
        or None past either end. An item no longer shown steps from where it stood."""
        ids = list(order) if order is not None else self.shown_ids()
        if not ids:
            return None
        if item_id in ids:
            pos = ids.index(item_id)
        else:  # not shown (filtered out): from the first item after it in study order
            pos = -1 if delta > 0 else len(ids)
            row = self.row_of(item_id) if item_id is not None else -1
            if row >= 0:
                rows = [self.row_of(i) for i in ids]
                after = [k for k, r in enumerate(rows) if r > row]
                pos = (after[0] - 1 if after else len(ids) - 1) if delta > 0 else (after[0] if after else len(ids))
        step = 1 if delta > 0 else -1
        i = pos
        for _ in range(abs(delta) if not unlabelled_only else len(ids)):
            i += step
            while 0 <= i < len(ids) and unlabelled_only and ids[i] in self.labels:
                i += step
            if not 0 <= i < len(ids):
                return None
            if unlabelled_only:
                break
        return ids[i] if 0 <= i < len(ids) else None

    # --- internals -------------------------------------------------------------------------------
    def _item(self, item_id: str):
        if self.study is None:
            return None
        try:
            return self.study.by_id(item_id)
        except KeyError:
            return None

    def _item_changed(self, item_id: str) -> None:
        if self.filter != "all" or self.sort != "study":
            self._invalidate()  # the change may move it in or out of the list, or along it
        else:
            self.changed.emit(item_id)

    def _invalidate(self) -> None:
        self._order = None
        self.reordered.emit()


def predictions_from_results(study) -> dict[str, Prediction]:
    """The predictions a results study (core.results_study.open_results) carries, for the
    worklist: every item scored without error."""
    out = {}
    names = list(study.class_names or [])
    for item in study:
        score = item.extras.get("score")
        if not score or score.get("status") != "ok" or score.get("predicted_index") is None:
            continue
        k = int(score["predicted_index"])
        probs = np.array([score["probabilities"].get(c, np.nan) for c in names], dtype=float)
        out[item.id] = Prediction(k, names[k] if 0 <= k < len(names) else str(k), probs,
                                  model=score.get("model"), uncertainty_value=score.get("uncertainty"),
                                  in_domain=score.get("in_domain"))
    return out
