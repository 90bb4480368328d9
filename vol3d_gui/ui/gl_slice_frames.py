"""The GL slice views of one viewer model painted together, then presented together.

Left to Qt, each view (a native window) paints and swaps on its own update request, and the
swap waits for the driver to finish drawing that view before the next view's paint (its
Python, its plane's upload) starts. A crosshair move changes all three views at once; here
the views a change asked for are painted one after the other, each flushed so the
rasteriser (llvmpipe's threads, or a GPU) draws it while the next one is prepared, and then
presented in one go, at the next turn of the event loop (as an update request is).
Measured through the event loop on the 512x512x300 bench case, a drag move under llvmpipe:
10.5 -> 10.2 ms at load 4 (both cores busy, so little to overlap with). The window's widgets
that the same change repainted (slice numbers, the status readout) are painted between the
views' paints and their swaps: a drag move 7.97 -> 7.76 and 8.22 -> 8.02 ms, a scroll 6.23 ->
6.14 and 6.30 -> 6.19 ms (in-process A/B, load 1.2). The views whose lines alone move check
their back buffer before any view is drawn: a scroll 5.9-7.1 -> 4.8-6.0 ms, a drag 7.0-8.8 ->
7.1-8.1 ms (five A/B runs, load 1.0). And in the idle time after a present, each view swapped
reads its mark for its next paint (``_read_back_buffers``): the next move no longer pays for
the drawable's revalidation after the swap, a scroll 8.6-9.4 -> 7.3-7.8 ms, a drag 11.4-12.6
-> 11.3-12.0 ms (three in-process A/B runs of 120 moves, load 1.0-1.3, on a slower machine).
The work per move is the same; what the reader waits for after a move is shorter. Every
view's new planes are uploaded before any view draws (GLSliceCanvas.prepare): an upload
waits for the pictures flushed before it, and a drag move 10.95-11.21 -> 10.22-10.61 ms
(two in-process A/B runs of 120 moves each, load 1.1).
"""

from __future__ import annotations

import weakref

import shiboken6
from OpenGL import GL
from PySide6 import QtCore, QtWidgets

from vol3d_gui.ui.gl_calls import gl


class SliceFrames:
    """Holds no QObject of its own: it lives as long as its viewer model, and Python's
    collector may free that in any thread (a case-prefetch thread did); a QTimer freed there
    was destroyed off the GUI thread and deadlocked against the GUI thread's own deletions.
    The turn is a single-shot timer that Qt owns."""

    def __init__(self):
        self._canvases: list[weakref.ref] = []
        self._scheduled = False
        self.presents = 0  # turns that painted something
        self._read_ahead: list[weakref.ref] = []  # views swapped by the last present

    def add(self, canvas) -> None:
        self._canvases.append(weakref.ref(canvas))

    def schedule(self) -> None:
        """A canvas asked for a paint: present every asking canvas at the next turn."""
        if not self._scheduled:
            self._scheduled = True
            QtCore.QTimer.singleShot(0, self._turn)

    def _turn(self) -> None:
        if self._scheduled:  # not presented in the meantime (render_now)
            self.present()

    def present(self) -> None:
        """Paint every canvas whose ``dirty`` is set, then swap them all. A canvas not on
        screen is left to Qt, which paints it when it is exposed."""
        self._scheduled = False
        # a view closed since it asked (its window destroyed with it) is forgotten
        self._canvases = [ref for ref in self._canvases if ref() is not None and shiboken6.isValid(ref())]
        painted = []
        ready = []
        for ref in self._canvases:
            canvas = ref()
            if not canvas.dirty:
                continue
            if not canvas.isExposed() or not canvas.isValid():
                canvas.update()
                continue
            ready.append(canvas)
        # a view whose lines alone move reads its back buffer's mark first: read after another
        # view's draw, it waited for that view's raster (a scroll, 1.2 ms of 5.9), which now
        # runs while the Python of the views' paints does
        for canvas in [c for c in ready if not c.has_reading() and c.lines_only_likely()]:
            _read_mark(canvas)
        # every view's new planes are uploaded before any view draws: under llvmpipe an upload
        # waits for the pictures flushed before it (GLSliceCanvas.prepare); a view whose plane
        # is still being cut on the gathering threads goes last
        for canvas in sorted(ready, key=lambda c: c.plane.gathering()):
            canvas.makeCurrent()
            try:
                canvas.prepare()
            finally:
                canvas.doneCurrent()
        for canvas in ready:
            canvas.makeCurrent()
            try:
                gl.glBindFramebuffer(GL.GL_FRAMEBUFFER, canvas.defaultFramebufferObject())
                canvas.paintGL()
                gl.glFlush()  # drawn from here on while the next canvas is prepared
            finally:
                canvas.doneCurrent()
            painted.append(canvas)
        # the widgets the change repainted (slice numbers, the status readout) are painted
        # while the rasteriser draws the views, and shown with them: not after the swaps
        for top in {QtWidgets.QWidget.window(c.owner) for c in painted}:
            QtWidgets.QApplication.sendPostedEvents(top, QtCore.QEvent.Type.UpdateRequest)
        painted = [c for c in painted if shiboken6.isValid(c) and c.isValid()]  # none closed meanwhile
        for canvas in painted:
            canvas.makeCurrent()
            try:
                canvas.context().swapBuffers(canvas)
            finally:
                canvas.doneCurrent()
        if painted:
            self.presents += 1
            self._read_ahead = [weakref.ref(c) for c in painted]
            QtCore.QTimer.singleShot(0, self._read_back_buffers)

    def _read_back_buffers(self) -> None:
        """In the idle time after a present, each view just swapped reads its back buffer's
        mark for its next paint (check_back_buffer). The first GL call after a swap costs
        Mesa's software path ~0.3-0.5 ms a view (the drawable revalidated: an X round trip
        and its state), paid until now by the next move's paint; now between the moves. Only
        where the views' buffers have been found kept: on a driver that hands out another
        buffer the reading is of no use."""
        refs, self._read_ahead = self._read_ahead, []
        canvases = [r() for r in refs]
        canvases = [c for c in canvases if c is not None and shiboken6.isValid(c)]
        kept = [c.back_buffer_kept for c in canvases if c.back_buffer_kept is not None]
        if not kept or not all(kept):
            return
        for canvas in canvases:
            if canvas.dirty or canvas.has_reading() or not canvas.isExposed() or not canvas.isValid():
                continue  # a paint is on its way (it reads what it needs), or none can be
            _read_mark(canvas)


def _read_mark(canvas) -> None:
    """The canvas reads its back buffer's corner mark for its next paint (check_back_buffer)."""
    canvas.makeCurrent()
    try:
        gl.glBindFramebuffer(GL.GL_FRAMEBUFFER, canvas.defaultFramebufferObject())
        canvas.check_back_buffer()
    finally:
        canvas.doneCurrent()
