"""Evented objects: attributes that announce their changes (psygnal, as napari's models do).

A subclass lists its evented attributes in ``FIELDS``; each gets a signal in ``obj.events``
that fires with the new value when the value really changes. A method ``_check_<name>``
validates and normalises a value before it is stored (raising ValueError for a bad one), so
every path that sets a property, a widget or a script, goes through the same rules.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from psygnal import Signal, SignalGroup

_MISSING = object()


def same_value(a, b) -> bool:
    """Equality that also works for numpy arrays and objects without __eq__."""
    if a is b:
        return True
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        try:
            return bool(np.array_equal(a, b))
        except (TypeError, ValueError):
            return False
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


class Evented:
    FIELDS: ClassVar[tuple[str, ...]] = ()
    _events_class: ClassVar[type]

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        signals = {name: Signal(object) for name in cls.FIELDS}
        cls._events_class = type(f"{cls.__name__}Events", (SignalGroup,), signals)

    def __init__(self) -> None:
        object.__setattr__(self, "events", self._events_class())

    def __setattr__(self, name: str, value) -> None:
        if name not in self.FIELDS:
            object.__setattr__(self, name, value)
            return
        check = getattr(self, f"_check_{name}", None)
        if check is not None:
            value = check(value)
        old = self.__dict__.get(name, _MISSING)
        object.__setattr__(self, name, value)
        if old is not _MISSING and not same_value(old, value):
            getattr(self.events, name).emit(value)

    def update(self, **changes) -> None:
        """Set several fields; each validated before any is stored."""
        unknown = set(changes) - set(self.FIELDS)
        if unknown:
            raise AttributeError(f"{type(self).__name__} has no evented field(s) {sorted(unknown)}")
        checked = {}
        for name, value in changes.items():
            check = getattr(self, f"_check_{name}", None)
            checked[name] = check(value) if check is not None else value
        for name, value in checked.items():
            setattr(self, name, value)
