"""Handing the interpreter lock to the GUI thread during long pure-Python loops.

Readers run in a worker thread while the GUI thread keeps drawing. A GUI frame releases and
retakes the GIL at every call into Qt; while the worker runs pure Python (parsing 300 DICOM
headers, grouping them), each retake waits for the worker's switch interval (5 ms), so one
frame can wait 50-100 ms. Releasing the lock between files costs microseconds and lets a
waiting GUI thread take it at once.
"""

import time


def yield_gil() -> None:
    """Let any thread waiting for the GIL run now (a no-op cost when none is)."""
    time.sleep(0)
