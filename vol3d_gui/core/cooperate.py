"""Reader threads that cooperate: they hand the interpreter lock over and honour a Cancel.

Readers run in a worker thread while the GUI thread keeps drawing. A GUI frame releases and
retakes the GIL at every call into Qt; while the worker runs pure Python (parsing 300 DICOM
headers, grouping them), each retake waits for the worker's switch interval (5 ms), so one
frame can wait 50-100 ms. ``checkpoint()``, called by the readers between files and chunks,
releases the lock (microseconds) so a waiting GUI thread takes it at once, and raises
ReadCancelled when the thread's cancel event (``cancellable``) is set, so Cancel stops a long
read where it is instead of after it.
"""

from __future__ import annotations

import contextlib
import threading
import time

_local = threading.local()


class ReadCancelled(BaseException):
    """The reader was asked to stop (not an error: nothing is shown). A BaseException, as
    asyncio.CancelledError is: it must pass the readers' ``except Exception`` that turn a
    library's failure into a VolumeReadError."""


@contextlib.contextmanager
def cancellable(event: threading.Event | None):
    """Readers called in this block, in this thread, stop at their next checkpoint once
    ``event`` is set."""
    previous = getattr(_local, "event", None)
    _local.event = event
    try:
        yield
    finally:
        _local.event = previous


def cancel_requested() -> bool:
    event = getattr(_local, "event", None)
    return event is not None and event.is_set()


def checkpoint() -> None:
    """Let any thread waiting for the GIL run now; stop here if Cancel was pressed."""
    time.sleep(0)
    if cancel_requested():
        raise ReadCancelled()
