"""Fine-tuning from the GUI: a new version becomes active, the old one stays; Cancel writes nothing."""

import os
from pathlib import Path

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
    dlg.epochs.setValue(1)
    dlg.lr.setValue(1e-3)
    dlg.start()
    qtbot.waitUntil(lambda: dlg.report is not None, timeout=180000)
    new = Path(dlg.report["path"])
    assert new.parent == Path(os.environ["VOL3D_MODELS_DIR"]) and new.stem == "tiny-ft-1"
    qtbot.waitUntil(lambda: panel.bundle is not None and panel.bundle.name == "tiny-ft-1", timeout=30000)
    assert panel.bundle.card["parent"] == base.label
    items = [panel.combo.itemText(i) for i in range(panel.combo.count())]
    assert "tiny-ft-1" in items
    assert "before" in dlg.result.text() and "after" in dlg.result.text()
    assert len(dlg.losses) >= 1


def test_cancel_writes_nothing(qtbot, window, tiny_bundle_path):
    panel = _labelled_window(qtbot, window, tiny_bundle_path)
    dlg = FinetuneDialog(window, panel, window.review_controller.session.labelled_items())
    qtbot.addWidget(dlg)
    dlg.epochs.setValue(50)
    dlg.start()
    qtbot.waitUntil(lambda: len(dlg.losses) >= 1, timeout=180000)
    dlg.cancel()
    qtbot.waitUntil(lambda: dlg.job is None, timeout=60000)
    assert "nothing was written" in dlg.result.text()
    models = Path(os.environ["VOL3D_MODELS_DIR"])
    assert not models.exists() or not list(models.glob("*.keras"))
