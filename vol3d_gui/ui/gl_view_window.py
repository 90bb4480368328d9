"""pyqtgraph's 3-D view as a native QOpenGLWindow, put into the widget tree with
``QWidget.createWindowContainer``.

Why not pyqtgraph's GLViewWidget (a QOpenGLWidget): a texture-backed widget anywhere in a
window makes Qt compose the whole top-level window through OpenGL on every repaint of any
widget in it. Under Mesa llvmpipe that composition costs ~20 ms per repaint, so each move
of the crosshair paid it for the slice views, which never draw with GL. A QOpenGLWindow is a
native child window with its own surface: the slice views flush as plain raster again.

The mixin gives the camera, items and mouse handling; what differs from a widget is here:
the device pixel ratio's name and a grab that renders a frame (QOpenGLWindow's own
grabFramebuffer only reads whatever the back buffer holds).
"""

from __future__ import annotations

from pyqtgraph.opengl.GLViewWidget import GLViewMixin
from PySide6 import QtCore, QtGui, QtOpenGL

from vol3d_gui.ui.gl_window_host import GLWindowHost, render_and_read_back


class GLViewWindow(GLViewMixin, QtOpenGL.QOpenGLWindow):
    max_3d_texture: int | None = None  # GL_MAX_3D_TEXTURE_SIZE, read when the context is made

    last_frame: QtGui.QImage | None = None  # the last whole frame shown, for GLViewHost
    snapshot_wanted = None  # callable() -> bool: keep this paint's picture as last_frame

    def paintGL(self) -> None:
        super().paintGL()
        if self.snapshot_wanted is not None and self.snapshot_wanted():
            # read back the frame just drawn (a few ms, once per finished frame, not per band)
            self.last_frame = QtOpenGL.QOpenGLWindow.grabFramebuffer(self)

    def initializeGL(self) -> None:
        super().initializeGL()
        from OpenGL import GL

        try:
            self.max_3d_texture = int(GL.glGetIntegerv(GL.GL_MAX_3D_TEXTURE_SIZE)) or None
        except Exception:  # the view still draws; the texture budget takes the default
            self.max_3d_texture = None

    def devicePixelRatioF(self) -> float:  # the mixin's name (QWidget's), QWindow's value
        return float(self.devicePixelRatio())

    def rect(self) -> QtCore.QRect:  # GLTextItem places its text in the view's rect
        return QtCore.QRect(0, 0, self.width(), self.height())

    def grabFramebuffer(self) -> QtGui.QImage:
        """Render one frame and return it (one paintGL, as QOpenGLWidget.grabFramebuffer
        does). It is drawn into the window's back buffer, where QPainter (the orientation
        letters) draws too, and read from there; the next paint shows it on screen."""
        from OpenGL import GL

        return render_and_read_back(
            self, lambda: GL.glViewport(0, 0, self.deviceWidth(), self.deviceHeight()))


class GLViewHost(GLWindowHost):
    """Holds the GL window's container. On screen the native GL window covers it; when the
    widget tree is rendered into an image (QWidget.grab of the main window: exports and
    screenshots), the GL window is no part of that render, so this draws the view's last
    whole frame underneath (hidden on screen)."""

    def __init__(self, view: GLViewWindow, parent=None):
        super().__init__(view, parent)
        self.view = view

    def paintEvent(self, ev):
        if self.view.last_frame is None:
            return
        painter = QtGui.QPainter(self)
        try:
            painter.drawImage(self.rect(), self.view.last_frame)
        finally:
            painter.end()
