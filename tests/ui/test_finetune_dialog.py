"""Fine-tuning from the GUI: a new version becomes active, the old one stays; Cancel writes nothing."""

import os
import re
from pathlib import Path

import numpy as np
from PySide6 import QtCore

from vol3d_gui.core.phantom import phantom_study
from vol3d_gui.ui.finetune_dialog import FinetuneDialog

SMALL = (32, 32, 24)


def _labelled_window(qtbot, window, tiny_bundle_path, n=8):
    panel = window.attach_model(str(tiny_bundle_path))
    qtbot.waitUntil(lambda: panel.bundle is not None, timeout=60000)
    study = phantom_study(n=n, seed=9, shape=SMALL, spacing=(4.0, 4.0, 6.0))
    window.open_study(study)
    for it in study:
        assert window.current_item.id == it.id
        window.review_controller.assign(it.label)
        window.io.wait()
    return panel


def test_finetune_makes_a_new_active_version(qtbot, window, tiny_bundle_path):
    panel = _labelled_window(qtbot, window, tiny_bundle_path)
    base = panel.bundle
    dlg = FinetuneDialog(window, panel, window.review_controller.session.labelled_items())
    qtbot.addWidget(dlg)
    dlg.epochs.setValue(2)
    dlg.lr.setValue(1e-3)
    seen = []  # every Progress, as the worker emits it
    panel.ml.submitted.connect(lambda task: task.progress.connect(seen.append, QtCore.Qt.ConnectionType.DirectConnection))
    dlg.start()
    qtbot.waitUntil(lambda: dlg.report is not None, timeout=180000)
    new = Path(dlg.report["path"])
    assert new.parent == Path(os.environ["VOL3D_MODELS_DIR"]) and new.stem == "tiny-ft-1"
    qtbot.waitUntil(lambda: panel.bundle is not None and panel.bundle.name == "tiny-ft-1", timeout=30000)
    assert panel.bundle.card["parent"] == base.label
    items = [panel.combo.itemText(i) for i in range(panel.combo.count())]
    assert "tiny-ft-1" in items
    assert "before" in dlg.result.text() and "after" in dlg.result.text()
    assert "95% CI" in dlg.result.text()  # a handful of held-out cases: the reader sees how little they tell
    auc_change = dlg.report["change"]["auc"]
    if np.isfinite(auc_change["difference"]):
        assert "paired on the same cases" in dlg.result.text()
    # structured progress: the volumes, then every batch of both epochs with its loss and ETA
    prep = [p for p in seen if p.stage == "preparing volumes"]
    batches = [p for p in seen if p.stage == "training"]
    assert [p.done for p in prep] == list(range(1, 9))
    n = batches[0].n_batches
    assert [(p.epoch, p.batch, p.n_epochs) for p in batches] == [(e, b, 2) for e in (1, 2) for b in range(1, n + 1)]
    assert [p.done for p in batches] == list(range(1, 2 * n + 1)) and batches[-1].total == 2 * n
    assert all(p.eta_s is not None and p.eta_s >= 0 for p in batches[1:]) and batches[-1].eta_s == 0
    assert [p.epoch for p in seen if p.stage == "epoch done"] == [1, 2]
    # the dialog's curve is exactly those losses (no text parsed)
    assert dlg.losses == [p.loss for p in batches]
    xs, ys = dlg.curve.getData()
    np.testing.assert_allclose(ys, [p.loss for p in batches])


def test_cancel_writes_nothing(qtbot, window, tiny_bundle_path):
    panel = _labelled_window(qtbot, window, tiny_bundle_path)
    dlg = FinetuneDialog(window, panel, window.review_controller.session.labelled_items())
    qtbot.addWidget(dlg)
    dlg.epochs.setValue(50)
    dlg.start()
    qtbot.waitUntil(lambda: len(dlg.losses) >= 2, timeout=180000)
    assert "s left" in dlg.eta.text()
    assert dlg.progress.maximum() % 50 == 0 and re.search(r"epoch \d+/50", dlg.progress.format())
    dlg.cancel()
    qtbot.waitUntil(lambda: dlg.job is None, timeout=60000)
    assert "nothing was written" in dlg.result.text()
    models = Path(os.environ["VOL3D_MODELS_DIR"])
    assert not models.exists() or not list(models.glob("*.keras"))


def test_the_paired_change_is_said_in_words_a_reader_can_act_on():
    from vol3d_gui.ui.finetune_dialog import change_text, result_table

    def change(diff, lo, hi, p):
        return {"auc": {"difference": diff, "interval": [lo, hi], "p_value": p}}

    assert "not distinguishable" in change_text(change(0.05, -0.08, 0.18, 0.4))
    assert "better than the base beyond chance" in change_text(change(0.1, 0.02, 0.18, 0.01))
    assert "worse than the base beyond chance" in change_text(change(-0.1, -0.18, -0.02, 0.01))
    assert change_text(change(float("nan"), float("nan"), float("nan"), float("nan"))) == ""
    assert change_text(None) == ""
    before = {"accuracy": 0.5, "auc": float("nan"), "intervals": {"accuracy": [0.2, 0.8]}}
    table = result_table(before, {"accuracy": 0.75, "intervals": {"accuracy": [0.4, 0.93]}})
    assert "0.50 (95% CI 0.20-0.80)" in table and "0.75 (95% CI 0.40-0.93)" in table
    assert "auc" not in table  # one class held out: no AUC to show, rather than 'nan'
