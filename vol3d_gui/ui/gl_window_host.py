"""What the native GL windows (the 3-D view, the GL slice views) share: a widget that holds one
in the widget tree, and a frame rendered and read back on demand.

A native GL window is no part of QWidget.grab's render (exports, screenshots), and
QOpenGLWindow.grabFramebuffer only reads whatever the back buffer holds; so a grab renders
one frame into the back buffer and reads it from there (the next paint shows it on screen).
"""

from __future__ import annotations

from PySide6 import QtGui, QtOpenGL, QtWidgets


def render_and_read_back(window: QtOpenGL.QOpenGLWindow, before_paint=None, show: bool = True) -> QtGui.QImage:
    """One paintGL of ``window`` into its back buffer, returned as an image (null when the
    window has no context yet). ``before_paint()`` runs with the context current. ``show``:
    ask for a paint afterwards, which puts the picture on screen (not needed when the screen
    already shows it)."""
    if not window.isValid():
        return QtGui.QImage()
    from OpenGL import GL

    window.makeCurrent()
    try:
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, window.defaultFramebufferObject())
        if before_paint is not None:
            before_paint()
        window.paintGL()
        image = QtOpenGL.QOpenGLWindow.grabFramebuffer(window)
    finally:
        window.doneCurrent()
    if show:
        window.update()
    return image


class GLWindowHost(QtWidgets.QWidget):
    """Holds a native GL window (createWindowContainer) where a widget goes."""

    def __init__(self, window: QtOpenGL.QOpenGLWindow, parent=None):
        super().__init__(parent)
        # no wait for the vertical blank in a swap: the GL windows (three slice views and the
        # 3-D view) all swap on the GUI thread, one after the other (gl_slice_frames); a driver
        # that blocks each swap until the next blank would make a crosshair move cost three
        # frames and the slice views wait for the 3-D view's. They paint on demand, not as an
        # animation (vispy, and so napari, default to vsync off too).
        fmt = window.format()
        fmt.setSwapInterval(0)
        window.setFormat(fmt)
        self.container = QtWidgets.QWidget.createWindowContainer(window, self)
        self.container.setMinimumSize(16, 16)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.container)
