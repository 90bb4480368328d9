"""The viewer layer: the state of a reading session and the logic views show, without Qt.

Imports neither Qt nor TensorFlow (an import-linter contract says so): everything here is
tested without a display.
"""

from vol3d_gui.viewer.layers import ImageLayer, Layer, LayerList, OverlayLayer
from vol3d_gui.viewer.model import Notice, ViewerModel
from vol3d_gui.viewer.worklist import Prediction, Worklist

__all__ = ["ImageLayer", "Layer", "LayerList", "Notice", "OverlayLayer", "Prediction", "ViewerModel",
           "Worklist"]
