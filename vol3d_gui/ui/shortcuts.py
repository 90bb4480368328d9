"""Keyboard: the reader's key bindings (viewer.keys) as shortcuts on the whole window, the F1
overview, and a dialog to change them (kept in the settings)."""

from __future__ import annotations

import json

from PySide6 import QtCore, QtGui, QtWidgets

from vol3d_gui.ui.settings import app_settings
from vol3d_gui.viewer.keys import ACTIONS, KeyBindings


def load_bindings() -> KeyBindings:
    raw = app_settings().value("key_bindings", "") or ""
    try:
        overrides = json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        overrides = {}
    return KeyBindings(overrides if isinstance(overrides, dict) else {})


def save_bindings(bindings: KeyBindings) -> None:
    app_settings().setValue("key_bindings", json.dumps(bindings.changed()))


class Shortcuts(QtCore.QObject):
    """One QShortcut per action on ``window``: they fire whatever child has the focus (a text
    field keeps its own keys)."""

    def __init__(self, window: QtWidgets.QWidget, handlers: dict, parent=None):
        super().__init__(parent or window)
        self.window = window
        self.handlers = handlers  # action name -> callable
        self.bindings = load_bindings()
        self._shortcuts: dict[str, QtGui.QShortcut] = {}
        self.apply()

    def apply(self) -> None:
        for sc in self._shortcuts.values():
            sc.setEnabled(False)
            sc.deleteLater()
        self._shortcuts = {}
        for action in ACTIONS:
            key = self.bindings[action.name]
            fn = self.handlers.get(action.name)
            if not key or fn is None:
                continue
            sc = QtGui.QShortcut(QtGui.QKeySequence(key), self.window)
            sc.setContext(QtCore.Qt.ShortcutContext.WindowShortcut)
            sc.activated.connect(fn)
            self._shortcuts[action.name] = sc

    def dispatch(self, ev: QtGui.QKeyEvent) -> bool:
        """Run the action bound to a key event that reached the window unhandled."""
        pressed = QtGui.QKeySequence(ev.keyCombination()).toString(QtGui.QKeySequence.SequenceFormat.PortableText)
        for action in ACTIONS:
            key = self.bindings[action.name]
            if key and key.lower() == pressed.lower() and action.name in self.handlers:
                self.handlers[action.name]()
                return True
        return False

    def key_of(self, name: str) -> str:
        return self.bindings[name]

    def show_overview(self) -> None:
        rows = "".join(f"<tr><td><b>{k}</b></td><td>{label}</td></tr>"
                       for k, label in self.bindings.overview())
        extra = ("<tr><td><b>Wheel, Page Up/Down</b></td><td>Step through slices</td></tr>"
                 "<tr><td><b>Right-drag</b></td><td>Window / level</td></tr>"
                 "<tr><td><b>Ctrl+wheel, middle-drag</b></td><td>Zoom, pan</td></tr>"
                 "<tr><td><b>Double-click a view</b></td><td>Maximise / restore it</td></tr>")
        box = QtWidgets.QMessageBox(self.window)
        box.setWindowTitle("Keyboard shortcuts")
        box.setTextFormat(QtCore.Qt.TextFormat.RichText)
        box.setText(f"<table cellspacing=6>{rows}{extra}</table>"
                    "<p>Change them in Review &gt; Key bindings…</p>")
        box.setModal(False)
        box.show()
        self.overview_box = box

    def edit(self) -> None:
        dlg = KeyBindingsDialog(self.bindings, self.window)
        if dlg.exec() == QtWidgets.QDialog.DialogCode.Accepted:
            self.bindings = dlg.result_bindings()
            save_bindings(self.bindings)
            self.apply()


class KeyBindingsDialog(QtWidgets.QDialog):
    def __init__(self, bindings: KeyBindings, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Key bindings")
        self._edits: dict[str, QtWidgets.QKeySequenceEdit] = {}
        form = QtWidgets.QFormLayout()
        for action in ACTIONS:
            edit = QtWidgets.QKeySequenceEdit(QtGui.QKeySequence(bindings[action.name]))
            edit.setMaximumSequenceLength(1)
            form.addRow(action.label, edit)
            self._edits[action.name] = edit
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel
                                             | QtWidgets.QDialogButtonBox.StandardButton.RestoreDefaults)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        buttons.button(QtWidgets.QDialogButtonBox.StandardButton.RestoreDefaults).clicked.connect(self._defaults)
        scroll = QtWidgets.QScrollArea()
        inner = QtWidgets.QWidget()
        inner.setLayout(form)
        scroll.setWidget(inner)
        scroll.setWidgetResizable(True)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(scroll)
        lay.addWidget(buttons)
        self.resize(460, 520)

    def _defaults(self) -> None:
        for action in ACTIONS:
            self._edits[action.name].setKeySequence(QtGui.QKeySequence(action.default))

    def result_bindings(self) -> KeyBindings:
        out = KeyBindings()
        for action in ACTIONS:
            out.set(action.name, self._edits[action.name].keySequence().toString(
                QtGui.QKeySequence.SequenceFormat.PortableText))
        return out
