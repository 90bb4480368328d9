"""A brief confirmation over the views (which case, which class) that takes no focus and no
clicks, and goes by itself: the reader keeps their hands on the keys."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

TOAST_MS = 1500


class Toast(QtWidgets.QLabel):
    def __init__(self, parent: QtWidgets.QWidget):
        super().__init__(parent)
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.setStyleSheet("background: rgba(20, 20, 20, 210); color: #f0f0f0; border: 1px solid #f0c040;"
                           " border-radius: 4px; padding: 6px 12px; font-size: 13px;")
        self.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.hide)
        self.hide()

    def show_text(self, html: str, ms: int = TOAST_MS) -> None:
        self.setText(html)
        self.adjustSize()
        parent = self.parentWidget()
        self.move(max(0, (parent.width() - self.width()) // 2), 36)
        self.raise_()
        self.show()
        self._timer.start(ms)

    def hideEvent(self, ev):
        self._timer.stop()  # no timer outlives the window
        super().hideEvent(ev)
