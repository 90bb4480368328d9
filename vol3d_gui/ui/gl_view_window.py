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
    snapshot_wanted = None  # callable() -> bool: this paint's picture is one to keep as last_frame
    SNAPSHOT_MS = 250  # after the last such paint: a W/L drag recolours a whole frame each step

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._grabbing = False
        self._stale = False  # a whole frame shown since last_frame was read back
        # the read-back of a whole frame costs a few ms: taken once the pictures stop changing
        # (or at once when the widget tree is grabbed), not after every paint that shows one
        self._snapshot = QtCore.QTimer()
        self._snapshot.setSingleShot(True)
        self._snapshot.setInterval(self.SNAPSHOT_MS)
        self._snapshot.timeout.connect(lambda: self.take_snapshot())

    def paintGL(self) -> None:
        super().paintGL()
        if not self._grabbing and self.snapshot_wanted is not None and self.snapshot_wanted():
            self._stale = True
            if self.isVisible():
                self._snapshot.start()

    def snapshot_due(self) -> bool:
        return self._stale

    def take_snapshot(self) -> None:
        """Keep the current whole frame as last_frame now (it is already on screen)."""
        self._snapshot.stop()
        self._keep(self._render(show=False))

    def _keep(self, image: QtGui.QImage) -> None:
        """``image``, just rendered, becomes last_frame when it shows a whole frame."""
        if not image.isNull() and self.snapshot_wanted is not None and self.snapshot_wanted():
            self._snapshot.stop()
            self.last_frame, self._stale = image, False

    def hideEvent(self, ev):
        self._snapshot.stop()  # still due: GLViewHost takes it when the widget tree is drawn
        super().hideEvent(ev)

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
        image = self._render(show=True)
        self._keep(image)
        return image

    def _render(self, show: bool) -> QtGui.QImage:
        from OpenGL import GL

        self._grabbing = True
        try:
            return render_and_read_back(
                self, lambda: GL.glViewport(0, 0, self.deviceWidth(), self.deviceHeight()), show=show)
        finally:
            self._grabbing = False


class GLViewHost(GLWindowHost):
    """Holds the GL window's container. On screen the native GL window covers it; when the
    widget tree is rendered into an image (QWidget.grab of the main window: exports and
    screenshots), the GL window is no part of that render, so this draws the view's last
    whole frame underneath (hidden on screen)."""

    def __init__(self, view: GLViewWindow, parent=None):
        super().__init__(view, parent)
        self.view = view

    def paintEvent(self, ev):
        if self.view.snapshot_due():
            self.view.take_snapshot()
        if self.view.last_frame is None:
            return
        painter = QtGui.QPainter(self)
        try:
            painter.drawImage(self.rect(), self.view.last_frame)
        finally:
            painter.end()
