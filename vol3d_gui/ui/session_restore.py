"""The reading session across restarts: saved at close, reopened at start (ui.app).

What is saved is viewer.session.SessionState (Qt-free); this module applies it to the window's
controllers: blind mode, the worklist's filter and order, then the study and case, which open
off the GUI thread like File > Open."""

from __future__ import annotations

from pathlib import Path

from vol3d_gui.core.errors import Vol3dError
from vol3d_gui.ui.settings import app_settings
from vol3d_gui.viewer.session import SessionState, reopen_study


def save_session(window) -> None:
    state = SessionState.capture(window.viewer, window.worklist_state, window.io.last_opened)
    app_settings().setValue("session", state.to_json())


def restore_session(window) -> bool:
    """Back to the study, case, filter and order of the last session (the layout is restored
    at start). False when there was none or its study is gone."""
    state = SessionState.from_json(app_settings().value("session", "") or "")
    window.act_blind.setChecked(state.blind)
    window.review_controller.set_blind(state.blind)
    window.worklist.set_filter(state.filter)
    window.worklist.sort_by_uncertainty(state.sort == "uncertainty")
    window.worklist.sort_by_domain(state.sort == "domain")
    io = window.io
    if state.study_source:
        if Path(state.study_source).exists():
            io.open_study(Path(state.study_source), item_id=state.item_id)
            return True
        try:
            study = reopen_study(state.study_source)  # a phantom study: made, not read
        except Vol3dError as exc:
            window.statusBar().showMessage(f"The last study cannot be reopened: {exc}", 10000)
            return False
        if study is None:
            return False
        io.open_study(study, item_id=state.item_id)
        return True
    if state.volume_path and Path(state.volume_path).exists():
        io.open_path(state.volume_path)
        return True
    return False
