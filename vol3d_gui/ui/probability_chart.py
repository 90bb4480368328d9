"""The class probabilities of the case on screen as bars, the displayed class highlighted, the
MC-dropout spread as error bars, greyed when the case is outside the model's domain."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg


class ProbabilityChart(pg.PlotWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setBackground("w")
        self.setMouseEnabled(False, False)
        self.hideButtons()
        self.setYRange(0, 1, padding=0)
        self.getAxis("left").setLabel("probability")
        self.bars = None
        self.error_bars = None
        self.setMinimumHeight(140)

    GREY = (185, 185, 185)

    def show_probabilities(self, class_names, probs, chosen: int | None = None, grey: bool = False,
                           spread=None) -> None:
        """Bars, the displayed class (``chosen``, default the argmax) in red; all grey when the
        case is outside the model's training data (the numbers do not mean what they say);
        ``spread``: an error bar of +-1 sd of each probability over the MC-dropout samples."""
        self.clear_bars()
        probs = np.asarray(probs, float)
        chosen = int(probs.argmax()) if chosen is None else int(chosen)
        colors = [self.GREY if grey else (220, 80, 60) if i == chosen else (90, 130, 200)
                  for i in range(len(probs))]
        self.bars = pg.BarGraphItem(x=np.arange(len(probs)), height=probs, width=0.6, brushes=colors)
        self.addItem(self.bars)
        if spread is not None:
            sd = np.asarray(spread, float)
            self.error_bars = pg.ErrorBarItem(x=np.arange(len(probs)), y=probs, top=np.minimum(sd, 1 - probs),
                                              bottom=np.minimum(sd, probs), beam=0.15,
                                              pen=pg.mkPen((40, 40, 40), width=2))
            self.addItem(self.error_bars)
        self.getAxis("bottom").setTicks([list(enumerate(class_names))])
        self.setXRange(-0.6, len(probs) - 0.4, padding=0)
        self.setYRange(0, 1, padding=0)

    def clear_bars(self) -> None:
        if self.bars is not None:
            self.removeItem(self.bars)
            self.bars = None
        if self.error_bars is not None:
            self.removeItem(self.error_bars)
            self.error_bars = None
