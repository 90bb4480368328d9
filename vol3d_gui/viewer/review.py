"""Review logic without Qt: which case a key press labels, what is stored, which case comes next.

A label always goes to the case on screen (the viewer model's item and volume, which change
together and only when a case has opened); the next case is the one after it in the order
shown before the label changed that order.
"""

from __future__ import annotations

from dataclasses import dataclass

from vol3d_gui.store.labels import LabelStore, LabelStoreError, make_item_key
from vol3d_gui.viewer.model import ViewerModel
from vol3d_gui.viewer.worklist import Worklist


class ReviewError(Exception):
    """A label that cannot be given (no case, no classes, no store): the message says why."""


@dataclass(frozen=True)
class Assignment:
    item_id: str
    item_name: str
    class_index: int
    class_name: str
    next_id: str | None
    labelled: int
    total: int


def study_key(study) -> str:
    return str(study.source or study.name)


class ReviewSession:
    def __init__(self, model: ViewerModel, worklist: Worklist, store: LabelStore | None = None):
        self.model = model
        self.worklist = worklist
        self.store = store
        self.reviewer = ""
        self.model_version: str | None = None  # the active model's label, recorded with each label

    def item_key(self, item) -> str:
        return make_item_key(study_key(self.model.study), item.id)

    def load_labels(self) -> None:
        """The study's current labels from the store (any window, any session)."""
        study = self.model.study
        if self.store is None or study is None:
            return
        labels = {ev.item_id: ev.label for ev in self.store.study_labels(study_key(study)).values()}
        if labels != self.worklist.labels:
            self.worklist.set_labels(labels)

    def assign(self, class_index: int) -> Assignment:
        """Label the case on screen; the store commits before this returns."""
        model, study, item = self.model, self.model.study, self.model.item
        if item is None or study is None or model.volume is None:
            raise ReviewError("no study case is open")
        names = study.class_names or []
        if not 0 <= class_index < len(names):
            raise ReviewError(f"this study has {len(names)} classes; there is no class {class_index + 1}")
        if self.store is None:
            raise ReviewError("labels cannot be saved: the label database is not open")
        order = self.worklist.shown_ids()  # before the label moves the case out of a filter
        pred = self.worklist.predictions.get(item.id)
        try:
            self.store.add_label(self.item_key(item), class_index, class_name=names[class_index],
                                 content_hash=model.volume.content_hash(), reviewer=self.reviewer,
                                 model_version=self.model_version,
                                 model_prediction=None if pred is None else (pred.class_index,
                                                                             pred.probabilities.tolist()))
        except LabelStoreError as exc:
            raise ReviewError(str(exc)) from exc
        self.worklist.set_label(item.id, class_index)
        next_id = self.worklist.step_from(item.id, 1, order=order)
        return Assignment(item.id, item.name, class_index, names[class_index], next_id,
                          len(self.worklist.labels), len(study))

    def labelled_items(self) -> list:
        """(item, class) for the current study's labelled items."""
        study = self.model.study
        labels = self.worklist.labels
        return [(it, labels[it.id]) for it in study if it.id in labels] if study else []
