"""Key bindings a reader can change: action -> key sequence (Qt's portable text, e.g. "Ctrl+Z").

Qt-free so that the defaults, validation and saving are tested without a display; ui.shortcuts
turns them into QShortcuts on the window. Class keys 1..9 are bound per class index.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    default: str


ACTIONS: tuple[Action, ...] = (
    *(Action(f"class_{i}", f"Label the case with class {i}", str(i)) for i in range(1, 10)),
    Action("next", "Next case", "N"),
    Action("previous", "Previous case", "B"),
    Action("next_unlabelled", "Next unlabelled case", "U"),
    Action("undo", "Undo the last label", "Ctrl+Z"),
    Action("clear", "Clear the label of the case on screen", "Ctrl+Backspace"),
    Action("preset_brain", "Window: brain (W 80 / L 40)", "F5"),
    Action("preset_lung", "Window: lung (W 1500 / L -600)", "F6"),
    Action("preset_bone", "Window: bone (W 1800 / L 400)", "F7"),
    Action("preset_abdomen", "Window: abdomen (W 400 / L 40)", "F8"),
    Action("preset_auto", "Window: automatic (robust percentiles)", "F9"),
    Action("help", "This overview of the keys", "F1"),
)
ACTION_NAMES = tuple(a.name for a in ACTIONS)


class KeyBindings:
    def __init__(self, overrides: dict[str, str] | None = None):
        self._keys = {a.name: a.default for a in ACTIONS}
        for name, key in (overrides or {}).items():
            if name in self._keys:  # a setting from an older version names an action no more
                self.set(name, key)

    def __getitem__(self, name: str) -> str:
        return self._keys[name]

    def set(self, name: str, key: str) -> None:
        """Bind ``key`` to ``name``; an action that had that key loses it (no two actions on one key)."""
        if name not in self._keys:
            raise ValueError(f"unknown action {name!r}")
        key = str(key or "").strip()
        if key:
            for other, k in self._keys.items():
                if other != name and k.lower() == key.lower():
                    self._keys[other] = ""
        self._keys[name] = key

    def changed(self) -> dict[str, str]:
        """The bindings that differ from the defaults (what settings store)."""
        return {a.name: self._keys[a.name] for a in ACTIONS if self._keys[a.name] != a.default}

    def overview(self) -> list[tuple[str, str]]:
        """(key, what it does) for every bound action, in menu order."""
        return [(self._keys[a.name], a.label) for a in ACTIONS if self._keys[a.name]]
