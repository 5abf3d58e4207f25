"""capacity_figure and threshold_figure on a real capacity report from a DuckDB history."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slothlab.analytics.capacity import CapacityTarget, capacity_report, time_to_threshold
from slothlab.errors import AnalyticsError
from slothlab.metrics import MetricsHistory
from slothlab.viz import capacity_figure, threshold_figure

DAY = 86400.0
NOW = 14 * DAY


@pytest.fixture
def report(tmp_path: Path) -> pd.DataFrame:
    t = np.arange(0.0, NOW, 1800.0)
    parts = [
        pd.DataFrame({"ts": t, "host": host, "metric": "disk", "value": start + slope * t / DAY})
        for host, start, slope in [("db-1", 0.3, 0.04), ("web-1", 0.2, 0.01), ("idle", 0.1, 0.0)]
    ]
    with MetricsHistory(tmp_path / "m.duckdb", clock=lambda: NOW, background=False) as h:
        h.write(pd.concat(parts, ignore_index=True))
        target = CapacityTarget("disk", 0.95, "max", "disk")
        return capacity_report(h, targets=[target], horizon=90 * DAY)


def test_bars_to_the_likely_crossing_soonest_on_top(report: pd.DataFrame) -> None:
    fig = capacity_figure(report, horizon_days=90)
    bars, risk = fig.data
    assert (bars.name, risk.name) == ("likely", "earliest only")
    assert list(bars.y) == ["web-1 · disk", "db-1 · disk"]  # plotly draws the last on top
    db = report.set_index("host").loc["db-1"]
    assert bars.x[-1] == pytest.approx(db["likely_days"])
    assert bars.error_x.arrayminus[-1] == pytest.approx(db["likely_days"] - db["earliest_days"])
    assert bars.orientation == "h"
    assert [s.x0 for s in fig.layout.shapes] == [90]
    assert fig.layout.xaxis.title.text == "days from now"


def test_threshold_figure_shades_the_crossing_window() -> None:
    t = np.arange(0.0, 10 * DAY, 3600.0)
    y = 0.5 + 0.02 * t / DAY + np.random.default_rng(1).normal(0, 0.01, len(t))
    crossing = time_to_threshold(t, y, 0.9)
    fig = threshold_figure(pd.DataFrame({"ts": t, "value": y}), crossing, y_title="disk used")
    assert [tr.name for tr in fig.data] == ["history", "trend"]
    names = [s.name for s in fig.layout.shapes]
    assert names == ["threshold", "crossing window", "likely crossing"]
    window = fig.layout.shapes[1]
    assert pd.Timestamp(window.x0) == pd.Timestamp(crossing.earliest, unit="s", tz="UTC")
    assert pd.Timestamp(window.x1) == pd.Timestamp(crossing.latest, unit="s", tz="UTC")
    assert fig.data[1].y[-1] >= 0.9  # the trend is drawn up to the threshold
    assert fig.layout.yaxis.title.text == "disk used"


def test_missing_columns_are_named() -> None:
    with pytest.raises(AnalyticsError, match="earliest_days"):
        capacity_figure(pd.DataFrame({"host": ["a"], "resource": ["cpu"]}))
