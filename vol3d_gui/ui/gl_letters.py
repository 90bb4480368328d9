"""The 3-D view's orientation letters (R, L, A, P, S, I), all six through one QPainter a paint.

pyqtgraph's GLTextItem opens a QPainter on the GL window for each text, so six letters cost
six paint-engine set-ups (each saving and restoring the GL state) every frame: 0.75 ms of a
3-D paint under llvmpipe, a paint that a window/level drag step otherwise spends ~0.6 ms on
(the frame recoloured). One painter draws the same text at the same places.
"""

from __future__ import annotations

from pyqtgraph.opengl import GLGraphicsItem
from PySide6 import QtCore, QtGui


class GLLettersItem(GLGraphicsItem.GLGraphicsItem):
    """Short texts at 3-D points, drawn at the projected point (its bottom-left corner there,
    as GLTextItem's default alignment)."""

    def __init__(self, color=(240, 192, 64, 255), font: QtGui.QFont | None = None):
        super().__init__()
        self.setGLOptions("additive")
        self.color = QtGui.QColor(*color)
        self.font = font if font is not None else QtGui.QFont("Helvetica", 16)
        self.positions: dict[str, tuple[float, float, float]] = {}

    def set_positions(self, positions: dict) -> None:
        self.positions = {str(k): tuple(float(c) for c in p) for k, p in positions.items()}
        self.update()

    def paint(self):
        if not self.positions:
            return
        self.setupGLState()
        rect = QtCore.QRectF(self.view().rect())
        ndc_to_viewport = QtGui.QMatrix4x4()
        ndc_to_viewport.viewport(rect.left(), rect.bottom(), rect.width(), -rect.height())
        project = ndc_to_viewport * self.mvpMatrix()
        painter = QtGui.QPainter(self.view())
        try:
            painter.setPen(self.color)
            painter.setFont(self.font)
            painter.setRenderHints(QtGui.QPainter.RenderHint.Antialiasing | QtGui.QPainter.RenderHint.TextAntialiasing)
            for text, pos in self.positions.items():
                painter.drawText(project.map(QtGui.QVector3D(*pos)).toPointF(), text)
        finally:
            painter.end()
