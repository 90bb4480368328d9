"""The reliability diagram of a model card: does "70%" mean 70%?

One bar per probability bin of the card's test split (ml.reliability.reliability_table):
its height is the observed share of positives (for two classes; the accuracy of the top
label for more), the grey diagonal is perfect calibration, and the bars' gap to it is the
calibration error. Bins without cases are left empty, so the reader sees where the card has
no evidence. The card's operating point, when it has one, is a vertical line. Plain data in,
no model or TensorFlow: the GUI process draws the card it already holds.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

BAR_COLOUR = (90, 130, 200)
GAP_COLOUR = (220, 80, 60)
THRESHOLD_COLOUR = (40, 160, 70)


class ReliabilityChart(pg.PlotWidget):
    def __init__(self, table: dict | None = None, operating_threshold: float | None = None, parent=None):
        super().__init__(parent)
        self.setBackground("w")
        self.setMouseEnabled(False, False)
        self.hideButtons()
        self.setMinimumHeight(160)
        self.getPlotItem().showGrid(x=False, y=True, alpha=0.2)
        self._items: list = []
        self.set_table(table, operating_threshold)

    @classmethod
    def from_card(cls, card: dict, parent=None) -> ReliabilityChart:
        op = card.get("operating_point") or {}
        return cls(card.get("reliability"), op.get("threshold"), parent)

    def set_table(self, table: dict | None, operating_threshold: float | None = None) -> None:
        """Draw ``table`` (the card's "reliability" record; None: an empty chart that says so)."""
        for it in self._items:
            self.removeItem(it)
        self._items = []
        self.table = table
        self.setXRange(0, 1, padding=0.02)
        self.setYRange(0, 1, padding=0.02)
        kind = (table or {}).get("kind", "positive class")
        self.getAxis("bottom").setLabel("predicted probability" + (" (top label)" if kind == "top label" else ""))
        self.getAxis("left").setLabel("observed share" if kind != "top label" else "accuracy")
        diagonal = pg.PlotDataItem([0, 1], [0, 1], pen=pg.mkPen((90, 90, 90), width=1,
                                                              style=pg.QtCore.Qt.PenStyle.DashLine))
        diagonal.setZValue(10)  # perfect calibration stays visible over the bars
        self._add(diagonal)
        if not table or not table.get("bins"):
            self.setTitle("no reliability table in this model's card")
            return
        bins = [b for b in table["bins"] if b.get("n")]
        lo = np.array([b["lo"] for b in bins])
        hi = np.array([b["hi"] for b in bins])
        observed = np.array([b["observed"] for b in bins], float)
        predicted = np.array([b["mean_predicted"] for b in bins], float)
        centres, widths = (lo + hi) / 2, (hi - lo) * 0.9
        self._add(pg.BarGraphItem(x=centres, height=observed, width=widths, brush=BAR_COLOUR, pen=None))
        # the gap between what was said and what happened, per bin
        gap = pg.BarGraphItem(x=centres, y0=np.minimum(observed, predicted), height=np.abs(predicted - observed),
                              width=widths * 0.35, brush=GAP_COLOUR, pen=None)
        self._add(gap)
        if operating_threshold is not None:
            self._add(pg.InfiniteLine(pos=float(operating_threshold), angle=90,
                                      pen=pg.mkPen(THRESHOLD_COLOUR, width=2)))
        self.setTitle(f"reliability on {table.get('split', 'test')} (n = {table.get('n', '?')}): "
                      f"ECE {float(table.get('ece', float('nan'))):.3f}")

    def _add(self, item) -> None:
        self.addItem(item)
        self._items.append(item)
