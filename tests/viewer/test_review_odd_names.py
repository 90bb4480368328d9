"""A study file whose name is not valid UTF-8 is labelled like any other, and the review moves on."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest

from vol3d_gui.core.study import open_study
from vol3d_gui.store.labels import LabelStore
from vol3d_gui.viewer.model import ViewerModel
from vol3d_gui.viewer.review import ReviewSession
from vol3d_gui.viewer.worklist import Worklist


def test_a_non_utf8_file_name_is_labelled_and_read_back(tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    names = [b"caf\xe9.nii", b"a::b.nii", b"100%.nii"]
    try:
        for raw in names:
            nib.save(nib.Nifti1Image(np.arange(27, dtype=np.int16).reshape(3, 3, 3), np.eye(4)),
                     os.fsdecode(os.path.join(os.fsencode(folder), raw)))
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    study = open_study(folder)
    study.class_names = ["no", "yes"]
    model, worklist = ViewerModel(), Worklist()
    model.study = study
    worklist.set_study(study)
    with LabelStore(tmp_path / "labels.db") as store:
        review = ReviewSession(model, worklist, store)
        for i, item in enumerate(study):
            model.set_case(item.load(), item)
            done = review.assign(i % 2)
            assert done.item_id == item.id and done.labelled == i + 1
        assert {os.fsencode(i) for i in store.study_labels(study.source)} == set(names)
        fresh = Worklist()
        fresh.set_study(study)
        ReviewSession(model, fresh, store).load_labels()
        assert fresh.labels == {item.id: i % 2 for i, item in enumerate(study)}
