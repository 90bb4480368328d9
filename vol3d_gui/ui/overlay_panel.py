"""The Overlays panel: pick an overlay layer and edit its colour map, opacity, threshold and
visibility. It observes the viewer model's layer list and edits the layers themselves, so a
change made anywhere else (a script, the model panel) shows here too."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from vol3d_gui.ui.colour_bar import ColourBar
from vol3d_gui.viewer.colormaps import COLORMAPS
from vol3d_gui.viewer.model import ViewerModel


class OverlayPanel(QtWidgets.QWidget):
    def __init__(self, model: ViewerModel, parent=None):
        super().__init__(parent)
        self.model = model
        form = QtWidgets.QFormLayout(self)
        self.combo = QtWidgets.QComboBox()
        self.visible = QtWidgets.QCheckBox("shown")
        self.cmap = QtWidgets.QComboBox()
        self.cmap.addItems([n for n in COLORMAPS if n != "grey"])
        self.opacity = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.threshold = QtWidgets.QDoubleSpinBox()
        self.threshold.setDecimals(3)
        self.threshold.setRange(-1e6, 1e6)
        self.threshold.setSingleStep(0.05)
        self.colour_bar = ColourBar()
        form.addRow("Overlay", self.combo)
        form.addRow("", self.visible)
        form.addRow("Colour map", self.cmap)
        form.addRow("Opacity", self.opacity)
        form.addRow("Threshold", self.threshold)
        form.addRow("", self.colour_bar)
        self.combo.currentTextChanged.connect(lambda _: self.refresh(select=False))
        self.visible.toggled.connect(lambda v: self._edit(visible=v))
        self.cmap.currentTextChanged.connect(lambda v: self._edit(colormap=v))
        self.opacity.valueChanged.connect(lambda v: self._edit(opacity=v / 100))
        self.threshold.valueChanged.connect(lambda v: self._edit(threshold=v))
        for sig in (model.layers.inserted, model.layers.removed, model.layers.changed):
            sig.connect(self._on_layers)
        self.refresh()

    def _on_layers(self, *_args) -> None:
        self.refresh()

    def selected(self):
        return self.model.overlays.get(self.combo.currentText())

    def refresh(self, select: bool = True) -> None:
        combo = self.combo
        names = list(self.model.overlays)
        if select and [combo.itemText(i) for i in range(combo.count())] != names:
            combo.blockSignals(True)
            current = combo.currentText()
            combo.clear()
            combo.addItems(names)
            if current in names:
                combo.setCurrentText(current)
            elif names:
                combo.setCurrentIndex(len(names) - 1)
            combo.blockSignals(False)
        layer = self.selected()
        widgets = (self.visible, self.cmap, self.opacity, self.threshold)
        for w in widgets:
            w.setEnabled(layer is not None)
            w.blockSignals(True)
        if layer is not None:
            self.visible.setChecked(layer.visible)
            self.cmap.setCurrentText(layer.colormap)
            self.opacity.setValue(int(round(layer.opacity * 100)))
            self.threshold.setValue(layer.threshold)
        for w in widgets:
            w.blockSignals(False)
        self.colour_bar.set_layer(layer)

    def _edit(self, **changes) -> None:
        layer = self.selected()
        if layer is not None:
            layer.update(**changes)
