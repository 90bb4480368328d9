"""What a reading session was doing, so that reopening the app returns to it: the study, the
case, the worklist's filter and order, blind reading. Plain data (JSON in the settings); the
window layout is Qt's own state beside it."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from vol3d_gui.viewer.worklist import FILTERS, SORTS

_PHANTOM = re.compile(r"phantom:seed=(-?\d+),n=(\d+),lesion_fraction=([0-9.]+),shape=(\d+)x(\d+)x(\d+),"
                      r"spacing=([0-9.]+)x([0-9.]+)x([0-9.]+),contrast=([0-9.]+)$")


@dataclass
class SessionState:
    study_source: str | None = None
    volume_path: str | None = None  # a single file opened outside a study
    item_id: str | None = None
    filter: str = "all"
    sort: str = "study"
    blind: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text) -> SessionState:
        """A saved state; anything unreadable or out of range falls back to the default."""
        try:
            raw = json.loads(text) if text else {}
        except (TypeError, ValueError):
            raw = {}
        if not isinstance(raw, dict):
            raw = {}
        state = cls()
        for key in ("study_source", "volume_path", "item_id"):
            if isinstance(raw.get(key), str):
                setattr(state, key, raw[key])
        if raw.get("filter") in FILTERS:
            state.filter = raw["filter"]
        if raw.get("sort") in SORTS:
            state.sort = raw["sort"]
        state.blind = bool(raw.get("blind", False))
        return state

    @classmethod
    def capture(cls, model, worklist, volume_path: str | None = None) -> SessionState:
        study = model.study
        return cls(study_source=str(study.source) if study is not None and study.source else None,
                   volume_path=volume_path if study is None else None,
                   item_id=model.item.id if model.item is not None else None,
                   filter=worklist.filter, sort=worklist.sort, blind=worklist.blind)


def reopen_study(source: str):
    """The Study a saved source names: a path again, or the phantom study it spells out.
    None when it is gone (a removed folder)."""
    m = _PHANTOM.match(source)
    if m:
        from vol3d_gui.core.phantom import phantom_study

        g = m.groups()
        return phantom_study(n=int(g[1]), seed=int(g[0]), lesion_fraction=float(g[2]),
                             shape=tuple(int(v) for v in g[3:6]), spacing=tuple(float(v) for v in g[6:9]),
                             contrast=float(g[9]))
    path = Path(source)
    if not path.exists():
        return None
    from vol3d_gui.core.study import open_study

    return open_study(path)
