"""Notices that matter for the case on screen (missing slices, a 4-D file shown as its first
volume, a downsampled 3-D view, a case outside the model's training data): a bar above the
views that stays until the reader dismisses a notice, instead of a status-bar message that
is gone after a few seconds. It floats over the top of the views rather than pushing them
down: a resized GL view repaints at once (QOpenGLWidget renders on resize), and a notice must
not cost the reader a 3-D frame."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from vol3d_gui.viewer.model import ViewerModel


class NoticeBar(QtWidgets.QWidget):
    def __init__(self, model: ViewerModel, parent: QtWidgets.QWidget):
        super().__init__(parent)
        self.model = model
        parent.installEventFilter(self)  # follow the parent's width
        self._layout = QtWidgets.QVBoxLayout(self)
        self._layout.setContentsMargins(4, 2, 4, 2)
        self._layout.setSpacing(2)
        self.setStyleSheet("QLabel { color: #202020; background: #f0c040; padding: 2px 6px; }"
                           "QToolButton { color: #202020; background: #f0c040; border: none; }")
        model.events.notices.connect(self._show)
        self._show(model.notices)

    def texts(self) -> list[str]:
        return [n.text for n in self.model.notices]

    def _show(self, notices) -> None:
        while self._layout.count():
            row = self._layout.takeAt(0).widget()
            if row is not None:
                row.deleteLater()
        for notice in notices:
            row = QtWidgets.QWidget()
            lay = QtWidgets.QHBoxLayout(row)
            lay.setContentsMargins(0, 0, 0, 0)
            lay.setSpacing(0)
            label = QtWidgets.QLabel(notice.text)
            label.setWordWrap(True)
            close = QtWidgets.QToolButton()
            close.setText("✕")
            close.setToolTip("Dismiss this notice")
            close.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
            close.clicked.connect(lambda _=False, key=notice.key: self.model.dismiss_notice(key))
            lay.addWidget(label, 1)
            lay.addWidget(close)
            self._layout.addWidget(row)
        self.setVisible(bool(notices))
        self._place()

    def _place(self) -> None:
        parent = self.parentWidget()
        self.setFixedWidth(parent.width())
        self.adjustSize()
        self.move(0, 0)
        self.raise_()

    def eventFilter(self, obj, ev):
        if obj is self.parentWidget() and ev.type() == QtCore.QEvent.Type.Resize:
            self._place()
        return False


class Readout(QtWidgets.QWidget):
    """The cursor readout of the status bar: a label in a box of its own. A label laid out in
    the status bar invalidates the bar's layout on every ``setText``, and QStatusBar answers
    each layout request by repainting itself whole (the bar, its size grip, every permanent
    widget: 1400 x 27 pixels in a maximised window), once per cursor move. Placed by hand in
    this box, and opaque, the label's new text repaints the label alone."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.label = QtWidgets.QLabel(self)
        self.label.setAutoFillBackground(True)  # opaque: the bar and window are not painted beneath it
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Preferred)
        self._hint = QtCore.QSize(120, self.label.sizeHint().height())

    def setText(self, text: str) -> None:
        self.label.setText(text)

    def text(self) -> str:
        return self.label.text()

    def sizeHint(self) -> QtCore.QSize:
        return self._hint

    def minimumSizeHint(self) -> QtCore.QSize:
        return QtCore.QSize(0, self._hint.height())

    def resizeEvent(self, ev) -> None:
        self.label.setGeometry(self.rect())
