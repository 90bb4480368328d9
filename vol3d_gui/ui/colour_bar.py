"""The colour bar of the Overlays panel: what each colour of the selected overlay means.

The overlay's colour map runs from its vmin to its vmax; values at or below the threshold
are not drawn, so that part of the bar is drawn as the slice views show it: not coloured."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from vol3d_gui.viewer.colormaps import lut


class ColourBar(QtWidgets.QWidget):
    BAR_HEIGHT = 14

    def __init__(self, parent=None):
        super().__init__(parent)
        self._lut: np.ndarray | None = None
        self._range = (0.0, 1.0)
        self._threshold = 0.0
        self.setMinimumHeight(self.BAR_HEIGHT + self.fontMetrics().height() + 6)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Fixed)

    def set_layer(self, layer) -> None:
        """Show an OverlayLayer's map, range and threshold (None: an empty bar)."""
        if layer is None:
            self._lut = None
        else:
            self._lut = lut(layer.colormap)
            self._range = (float(layer.vmin), float(layer.vmax))
            self._threshold = float(layer.threshold)
        self.update()

    def threshold_fraction(self) -> float:
        lo, hi = self._range
        return float(np.clip((self._threshold - lo) / (hi - lo), 0.0, 1.0)) if hi > lo else 0.0

    def paintEvent(self, ev):
        p = QtGui.QPainter(self)
        bar = QtCore.QRect(4, 2, max(self.width() - 8, 1), self.BAR_HEIGHT)
        if self._lut is None:
            p.fillRect(bar, self.palette().color(QtGui.QPalette.ColorRole.Mid))
            p.end()
            return
        rgb = np.ascontiguousarray(self._lut[None, :, :])
        img = QtGui.QImage(rgb.data, 256, 1, 256 * 3, QtGui.QImage.Format.Format_RGB888).copy()
        p.drawImage(bar, img)
        cut = int(round(bar.width() * self.threshold_fraction()))
        if cut > 0:  # not drawn in the views: hatched, not coloured
            hidden = QtCore.QRect(bar.left(), bar.top(), cut, bar.height())
            p.fillRect(hidden, QtGui.QColor(200, 200, 200))
            p.fillRect(hidden, QtGui.QBrush(QtGui.QColor(150, 150, 150), QtCore.Qt.BrushStyle.BDiagPattern))
        p.setPen(self.palette().color(QtGui.QPalette.ColorRole.WindowText))
        p.drawRect(bar.adjusted(0, 0, -1, -1))
        lo, hi = self._range
        y = bar.bottom() + 2
        h = self.fontMetrics().height()
        p.drawText(QtCore.QRect(bar.left(), y, bar.width(), h), QtCore.Qt.AlignmentFlag.AlignLeft, _fmt(lo))
        p.drawText(QtCore.QRect(bar.left(), y, bar.width(), h), QtCore.Qt.AlignmentFlag.AlignRight, _fmt(hi))
        if 0 < cut < bar.width():
            x = bar.left() + cut
            p.drawLine(x, bar.top(), x, bar.bottom() + 2)
            text = _fmt(self._threshold)
            tw = self.fontMetrics().horizontalAdvance(text)
            left = min(max(x - tw // 2, bar.left() + tw), bar.right() - 2 * tw)
            p.drawText(QtCore.QRect(left, y, tw + 2, h), QtCore.Qt.AlignmentFlag.AlignLeft, text)
        p.end()


def _fmt(v: float) -> str:
    return f"{v:.3g}"
