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
    class_index: int | None  # None: the label was cleared
    class_name: str
    next_id: str | None
    labelled: int
    total: int
    model_answer: str = ""  # what the model said, for the confirmation (shown after the key press)
    model_seen: bool = False  # had the reader seen the model's answer before labelling?


@dataclass(frozen=True)
class _Undo:
    item_id: str
    item_key: str
    previous: int | None  # the label before (None: none)
    previous_name: str | None


def model_seen_note(seen: bool) -> str:
    """The note a label event carries: whether the reader had seen the model's answer."""
    return "model answer seen" if seen else "model answer not seen"


def study_key(study) -> str:
    return str(study.source or study.name)


class ReviewSession:
    def __init__(self, model: ViewerModel, worklist: Worklist, store: LabelStore | None = None):
        self.model = model
        self.worklist = worklist
        self.store = store
        self.reviewer = ""
        self.model_version: str | None = None  # the active model's label, recorded with each label
        self._undo: list[_Undo] = []

    # blind reading (reader studies): truth, prediction, agreement and saliency stay hidden until
    # the reader has labelled the case; each label records whether the model's answer was seen
    @property
    def blind(self) -> bool:
        return self.worklist.blind

    @blind.setter
    def blind(self, on: bool) -> None:
        self.worklist.set_blind(on)

    def answer_visible(self, item_id: str | None) -> bool:
        return self.worklist.answer_visible(item_id)

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
        seen = pred is not None and self.answer_visible(item.id)
        key = self.item_key(item)
        previous = self.worklist.labels.get(item.id)
        try:
            self.store.add_label(key, class_index, class_name=names[class_index],
                                 content_hash=model.volume.content_hash(), reviewer=self.reviewer,
                                 model_version=self.model_version, note=model_seen_note(seen),
                                 model_prediction=None if pred is None else (pred.class_index,
                                                                             pred.probabilities.tolist()))
        except LabelStoreError as exc:
            raise ReviewError(str(exc)) from exc
        self._undo.append(_Undo(item.id, key, previous, names[previous] if previous is not None else None))
        self.worklist.set_label(item.id, class_index)
        next_id = self.worklist.step_from(item.id, 1, order=order)
        answer = f"{pred.class_name} ({pred.confidence:.0%})" if pred is not None else ""
        return Assignment(item.id, item.name, class_index, names[class_index], next_id,
                          len(self.worklist.labels), len(study), answer, seen)

    def clear(self) -> Assignment:
        """Remove the case on screen's label (a new event; its history stays)."""
        item, study = self.model.item, self.model.study
        if item is None or study is None:
            raise ReviewError("no study case is open")
        previous = self.worklist.labels.get(item.id)
        if previous is None:
            raise ReviewError(f"{item.name} has no label to clear")
        key = self.item_key(item)
        self._write_clear(key)
        names = study.class_names or []
        self._undo.append(_Undo(item.id, key, previous, names[previous] if previous < len(names) else None))
        self.worklist.set_label(item.id, None)
        return Assignment(item.id, item.name, None, "no label", None, len(self.worklist.labels), len(study))

    def undo(self) -> Assignment:
        """Revert the last label or clear of this session with a new event (history is kept)."""
        if not self._undo:
            raise ReviewError("nothing to undo")
        if self.store is None:
            raise ReviewError("labels cannot be saved: the label database is not open")
        last = self._undo[-1]
        try:
            if last.previous is None:
                self.store.clear_label(last.item_key, reviewer=self.reviewer, note="undo")
            else:
                self.store.add_label(last.item_key, last.previous, class_name=last.previous_name,
                                     reviewer=self.reviewer, model_version=self.model_version, note="undo")
        except LabelStoreError as exc:
            raise ReviewError(str(exc)) from exc
        self._undo.pop()
        self.worklist.set_label(last.item_id, last.previous)
        study = self.model.study
        item = study.by_id(last.item_id) if study is not None else None
        return Assignment(last.item_id, item.name if item is not None else last.item_id, last.previous,
                          last.previous_name or "no label", last.item_id, len(self.worklist.labels),
                          len(study) if study is not None else 0)

    def _write_clear(self, key: str) -> None:
        if self.store is None:
            raise ReviewError("labels cannot be saved: the label database is not open")
        try:
            self.store.clear_label(key, reviewer=self.reviewer)
        except LabelStoreError as exc:
            raise ReviewError(str(exc)) from exc

    def labelled_items(self) -> list:
        """(item, class) for the current study's labelled items."""
        study = self.model.study
        labels = self.worklist.labels
        return [(it, labels[it.id]) for it in study if it.id in labels] if study else []
