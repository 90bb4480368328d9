"""'Go to peak': moves the crosshair to the saliency map's peak, but only for a peak inside the
body of a case in the model's domain (a peak in the air, or on a case the model was never
trained for, must not draw the reader's eye); its tooltip says why when it does not."""

from __future__ import annotations

import numpy as np
from PySide6 import QtWidgets

from vol3d_gui.viewer.model import ViewerModel


class PeakButton(QtWidgets.QPushButton):
    def __init__(self, viewer: ViewerModel, parent=None):
        super().__init__("Go to peak", parent)
        self.viewer = viewer
        self.target: np.ndarray | None = None
        self.setEnabled(False)
        self.clicked.connect(self.go_to_peak)

    def update_from(self, saliency, body, in_domain: bool | None) -> None:
        from vol3d_gui.core.foreground import crosshair_target, saliency_peak

        if body is None:
            self.set_target(saliency_peak(saliency), "the saliency map's maximum")
            return
        outside = in_domain is False
        target = crosshair_target(saliency, body, not outside)
        why = ("the case is outside this model's training data" if outside else
               "the saliency peak is not inside the body" if target is None else "the saliency peak, inside the body")
        self.set_target(target, why)

    def set_target(self, target, why: str) -> None:
        self.target = None if target is None else np.asarray(target, float)
        self.setEnabled(self.target is not None)
        self.setToolTip(f"Move the crosshair to {why}" if target is not None else
                        f"No jump: {why}" if why else "No saliency map yet")

    def go_to_peak(self) -> None:
        if self.target is not None:
            self.viewer.cursor = self.target
