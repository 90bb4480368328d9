"""Review logic without a display: the order shown, stepping, and which case a label lands on."""

import numpy as np
import pytest

from vol3d_gui.core.phantom import phantom_study
from vol3d_gui.store.labels import LabelStore
from vol3d_gui.viewer.model import ViewerModel
from vol3d_gui.viewer.prepare import display_grid, prepare_case
from vol3d_gui.viewer.review import ReviewError, ReviewSession
from vol3d_gui.viewer.worklist import Worklist


@pytest.fixture
def session(tmp_path):
    study = phantom_study(n=8, seed=3, shape=(24, 24, 16))
    model, wl = ViewerModel(), Worklist()
    model.study = study
    wl.set_study(study)
    store = LabelStore(tmp_path / "labels.db")
    yield ReviewSession(model, wl, store)
    store.close()


def _open(session, item_id):
    item = session.model.study.by_id(item_id)
    session.model.set_case(item.load(), item)


@pytest.mark.parametrize("filter_mode", ["all", "unlabelled", "disagreements"])
def test_a_reading_pass_labels_every_shown_case_once_in_order(session, filter_mode):
    wl, study = session.worklist, session.model.study
    for item in study:  # a prediction that disagrees with the truth for every case
        wl.set_prediction(item.id, 1 - item.label, [0.3, 0.7] if item.label == 0 else [0.7, 0.3])
    wl.set_filter(filter_mode)
    expected = wl.shown_ids()
    assert expected == [it.id for it in study]
    _open(session, expected[0])
    seen = []
    while True:
        item_id = session.model.item.id
        seen.append(item_id)
        done = session.assign(study.by_id(item_id).label)  # the reader agrees with the truth
        if done.next_id is None:
            break
        _open(session, done.next_id)
    assert seen == expected
    stored = session.store.study_labels(str(study.source or study.name))
    assert sorted(stored) == sorted(expected) and all(len(session.store.history(ev.item_key)) == 1
                                                      for ev in stored.values())


def test_a_label_goes_to_the_case_on_screen_not_the_one_asked_for(session):
    study = session.model.study
    _open(session, study[0].id)
    # the reader clicked case 2 but it failed to open: nothing changed in the model
    done = session.assign(1)
    assert done.item_id == study[0].id
    assert session.worklist.labels == {study[0].id: 1}


def test_stepping_from_a_case_that_left_the_filter(session):
    wl, study = session.worklist, session.model.study
    wl.set_filter("unlabelled")
    wl.set_label(study[2].id, 0)
    assert study[2].id not in wl.shown_ids()
    assert wl.step_from(study[2].id, 1) == study[3].id
    assert wl.step_from(study[2].id, -1) == study[1].id
    assert wl.step_from(study[7].id, 1) is None


def test_uncertainty_order_and_unlabelled_steps(session):
    wl, study = session.worklist, session.model.study
    margins = [0.9, 0.5, 0.99, 0.6, 0.7, 0.8, 0.95, 0.55]
    for item, p in zip(study, margins):
        wl.set_prediction(item.id, 0, [p, 1 - p])
    wl.set_sort("uncertainty")
    order = wl.shown_ids()
    assert order[0] == study[1].id and order[1] == study[7].id and order[-1] == study[2].id
    wl.set_label(order[1], 1)
    assert wl.step_from(order[0], 1, unlabelled_only=True) == order[2]


def test_review_refuses_without_a_case_or_beyond_the_classes(session):
    with pytest.raises(ReviewError):
        session.assign(0)
    _open(session, session.model.study[0].id)
    with pytest.raises(ReviewError):
        session.assign(5)


def test_a_lone_file_opened_beside_a_study_takes_no_label(session):
    """A file opened on its own while a study's worklist stays listed (a restored session, then
    File > Open) is no case of that study: a label key there must not land on the worklist's
    last case, nor undo or clear one of its labels."""
    study = session.model.study
    _open(session, study[2].id)
    session.assign(1)
    lone = study[5].load()  # any volume the study's item is not attached to
    session.model.set_case(lone, None)
    for act in (lambda: session.assign(0), session.clear):
        with pytest.raises(ReviewError, match="no study case"):
            act()
    assert session.worklist.labels == {study[2].id: 1}
    stored = session.store.study_labels(str(study.source or study.name))
    assert {ev.item_id: ev.label for ev in stored.values()} == {study[2].id: 1}


def test_labels_from_another_writer_are_loaded(session, tmp_path):
    study = session.model.study
    other = LabelStore(tmp_path / "labels.db")
    other.add_label(session.item_key(study[4]), 1, reviewer="someone else")
    other.close()
    session.load_labels()
    assert session.worklist.labels == {study[4].id: 1}


def test_prepare_case_computes_window_texture_and_hash_once():
    study = phantom_study(n=1, seed=0, shape=(40, 36, 20))
    item = study[0]
    case = prepare_case(item.load, item=item, load_mask=item.load_mask, max_texture=16)
    vol = case.volume
    assert case.grid.factor == 3 and case.grid.texture.dtype == np.uint16
    assert case.grid.shape == (13, 12, 6)
    assert vol.__dict__.get("_content_hash") == vol.content_hash()
    lo, hi = case.grid.value_range
    block = vol.data[:3, :3, :3].astype(np.float64).mean()
    assert case.grid.texture[0, 0, 0] == pytest.approx((block - lo) / (hi - lo) * 65535, abs=1.5)
    full = display_grid(vol)
    assert full.factor == 1 and full.texture.shape == vol.shape[::-1]
