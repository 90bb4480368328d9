"""Stale-reply handling: which answer still belongs to what is on screen.

Work that runs elsewhere (a read, a prediction, a Grad-CAM map) answers later, perhaps after
the reader has moved on. Every request of a channel gets a token; only the newest token of its
channel is current, so an answer for a case that is no longer on screen is dropped instead
of being drawn over the wrong image.
"""

from __future__ import annotations

import itertools
import threading


class RequestTracker:
    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._current: dict[str, int] = {}
        self._lock = threading.Lock()

    def issue(self, channel: str) -> int:
        """A new request on ``channel``: every earlier one of it is stale from now on."""
        with self._lock:
            token = next(self._ids)
            self._current[channel] = token
            return token

    def is_current(self, channel: str, token: int) -> bool:
        with self._lock:
            return self._current.get(channel) == token

    def current(self, channel: str) -> int | None:
        with self._lock:
            return self._current.get(channel)
