"""The reliability diagram draws the card's table: bar heights where the observed shares are,
nothing in empty bins, the operating point as a line."""

import numpy as np

from tests.ui.conftest import grab
from vol3d_gui.ui.reliability_chart import (
    BAR_COLOUR,
    GAP_COLOUR,
    THRESHOLD_COLOUR,
    ReliabilityChart,
)


def _table(observed):
    bins = []
    for i, obs in enumerate(observed):
        lo, hi = i / 10, (i + 1) / 10
        bins.append({"lo": lo, "hi": hi, "n": 0 if obs is None else 10,
                     "mean_predicted": None if obs is None else (lo + hi) / 2, "observed": obs})
    return {"kind": "positive class", "split": "test", "n": 80, "ece": 0.05, "bins": bins}


def _colour_mask(px, rgb, tol=25):
    return np.all(np.abs(px.astype(int) - np.array(rgb)) < tol, axis=-1)


def _bar_columns(chart, px, offset=0.03):
    """Pixel columns in each bin, beside its centre (where the narrow red gap bar is drawn)."""
    vb = chart.getPlotItem().getViewBox()
    out = []
    for i in range(10):
        scene = vb.mapViewToScene(pg_point((i + 0.5) / 10 + offset, 0.0))
        widget = chart.mapFromScene(scene)
        out.append(int(round(widget.x())))
    return out


def pg_point(x, y):
    from PySide6 import QtCore

    return QtCore.QPointF(x, y)


def test_bars_follow_the_table_and_empty_bins_stay_empty(qtbot):
    observed = [0.0, None, 0.2, None, 0.9, None, 0.5, None, None, 1.0]
    chart = ReliabilityChart(_table(observed), operating_threshold=0.35)
    qtbot.addWidget(chart)
    chart.resize(420, 300)
    chart.show()
    qtbot.waitExposed(chart)
    px = grab(chart)
    bars = _colour_mask(px, BAR_COLOUR)
    heights = [bars[:, c].sum() for c in _bar_columns(chart, px)]
    # empty bins draw nothing; taller observed shares draw taller bars, in proportion
    for h, obs in zip(heights, observed):
        if obs is None or obs == 0.0:
            assert h == 0
    assert heights[4] > heights[6] > heights[2] > 0
    assert heights[9] > heights[4]
    assert abs(heights[6] / heights[9] - 0.5) < 0.1
    # the operating point is a vertical green line left of the middle
    line_cols = np.flatnonzero(_colour_mask(px, THRESHOLD_COLOUR).sum(axis=0) > 50)
    at = _bar_columns(chart, px, offset=0.0)[3]  # x = 0.35
    assert line_cols.size and abs(line_cols.mean() - at) <= 2
    # the gap between said and observed is drawn in red in the bins that have one
    gaps = _colour_mask(px, GAP_COLOUR)
    assert gaps[:, _bar_columns(chart, px, offset=0.0)[4]].sum() > 20
    assert "ECE 0.050" in chart.getPlotItem().titleLabel.text


def test_a_card_without_a_table_says_so(qtbot):
    chart = ReliabilityChart.from_card({"name": "old"})
    qtbot.addWidget(chart)
    assert "no reliability table" in chart.getPlotItem().titleLabel.text
    chart.set_table(_table([None] * 9 + [1.0]), None)
    assert "n = 80" in chart.getPlotItem().titleLabel.text
