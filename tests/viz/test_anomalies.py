"""anomaly_figure: traces, shaded flagged intervals, axis titles, input errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from slothlab.analytics import detect, flagged_intervals
from slothlab.errors import AnalyticsError
from slothlab.viz import anomaly_figure, flagged_spans


def _utc(value: object) -> pd.Timestamp:
    """A plotted x value as a UTC timestamp (plotly keeps UTC datetimes without the zone)."""
    stamp = pd.Timestamp(value)
    return stamp if stamp.tzinfo else stamp.tz_localize("UTC")


def _rects(fig) -> list:
    return [s for s in fig.layout.shapes if s.type == "rect"]


def test_traces_and_one_rect_per_interval_and_panel(detected: pd.DataFrame) -> None:
    fig = anomaly_figure(detected, title="latency")
    assert [t.name for t in fig.data] == ["value", "flagged", "anomaly score"]
    assert len(fig.data[1].x) == 4  # the flagged rows as markers
    rects = _rects(fig)
    assert len(rects) == 4 and {r.name for r in rects} == {"flagged interval"}
    assert {r.xref for r in rects} == {"x", "x2"}
    first = sorted(rects, key=lambda r: r.x0)[0]
    # rows 10..12 at 5-minute steps, widened by half a step each side
    assert first.x0 == pd.Timestamp("2024-01-01 00:47:30", tz="UTC")
    assert first.x1 == pd.Timestamp("2024-01-01 01:02:30", tz="UTC")
    threshold = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(threshold) == 1 and threshold[0].y0 == 0.5
    assert fig.layout.title.text == "latency"
    assert fig.layout.yaxis.title.text == "value"
    assert fig.layout.yaxis2.title.text == "anomaly score"
    assert fig.layout.xaxis2.title.text == "time (UTC)"


def test_no_flags_no_rects_and_no_threshold(detected: pd.DataFrame) -> None:
    quiet = detected.assign(flagged=False)
    fig = anomaly_figure(quiet, threshold=None)
    assert fig.layout.shapes == ()
    assert len(fig.data[1].x) == 0
    assert flagged_spans(quiet["ts"], quiet["flagged"]) == []


def test_epoch_seconds_become_datetimes(detected: pd.DataFrame) -> None:
    epoch = detected.assign(ts=(detected["ts"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds())
    fig = anomaly_figure(epoch)
    assert _utc(fig.data[0].x[0]) == pd.Timestamp("2024-01-01", tz="UTC")


def test_missing_columns_are_named(detected: pd.DataFrame) -> None:
    with pytest.raises(AnalyticsError, match=r"needs the columns \['flagged'\]"):
        anomaly_figure(detected.drop(columns="flagged"))
    with pytest.raises(AnalyticsError, match="takes a DataFrame"):
        anomaly_figure([1, 2, 3])  # type: ignore[arg-type]


def test_real_nab_series_matches_detect_intervals(shared_dir: Path) -> None:
    path = shared_dir / "data" / "nab" / "data" / "realKnownCause"
    raw = pd.read_csv(path / "ec2_request_latency_system_failure.csv", parse_dates=["timestamp"])
    frame = detect(pd.Series(raw["value"].to_numpy(), index=raw["timestamp"]))
    fig = anomaly_figure(frame)
    intervals = flagged_intervals(frame)
    assert intervals, "the detector flags this file's failure"
    assert len(_rects(fig)) == 2 * len(intervals)
    assert len(fig.data[0].x) == len(raw)
