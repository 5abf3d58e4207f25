"""Capacity planning: time to threshold with an interval, growth, reports per host and tag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slothlab.analytics.capacity import (
    CapacityTarget,
    capacity_report,
    growth_rate,
    time_to_threshold,
)
from slothlab.errors import AnalyticsError
from slothlab.metrics import MetricsHistory

DAY = 86400.0
NOW = 20 * DAY  # the history's clock: twenty days after the epoch


def _series(days: float, start: float, per_day: float, noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(NOW - days * DAY, NOW, 600.0)
    y = start + per_day * (t - t[0]) / DAY + rng.normal(0, noise, len(t))
    return t, y


def test_noisy_linear_growth_brackets_the_true_crossing() -> None:
    t, y = _series(14, 0.40, 0.02, 0.01)  # true crossing of 0.95 at 27.5 days from start
    c = time_to_threshold(t, y, 0.95)
    true_when = t[0] + (0.95 - 0.40) / 0.02 * DAY
    assert c.status == "crossing"
    assert c.earliest is not None and c.latest is not None and c.likely is not None
    assert c.earliest < c.likely < c.latest
    assert c.earliest <= true_when <= c.latest
    assert abs(c.likely - true_when) < 0.5 * DAY
    assert c.slope_low_per_day <= 0.02 <= c.slope_high_per_day


def test_outliers_do_not_tilt_the_trend() -> None:
    t, y = _series(7, 0.5, 0.01, 0.002)
    y[::50] = 1.0  # spikes to full every ~8 hours
    assert growth_rate(t, y).per_day == pytest.approx(0.01, abs=0.002)


def test_decline_towards_a_lower_threshold() -> None:
    t, free = _series(10, 100e9, -5e9, 1e8)  # free bytes shrink 5 GB a day
    c = time_to_threshold(t, free, 10e9, direction="down")
    assert c.status == "crossing"
    assert c.likely_days == pytest.approx((100e9 - 50e9 - 10e9) / 5e9, abs=0.3)


def test_flat_exceeded_and_beyond_horizon() -> None:
    t, flat = _series(7, 0.3, 0.0, 0.01)
    assert time_to_threshold(t, flat, 0.9).status in {"flat", "not within horizon"}
    assert time_to_threshold(t, flat, 0.9).likely is None
    t, high = _series(7, 0.97, 0.0, 0.001)
    c = time_to_threshold(t, high, 0.9)
    assert c.status == "exceeded" and c.likely_days == 0
    t, slow = _series(7, 0.1, 0.001, 0.0005)
    c = time_to_threshold(t, slow, 0.9, horizon_s=30 * DAY)
    assert c.status == "not within horizon" and c.likely is None


def test_growth_rate_per_week_and_relative() -> None:
    t, y = _series(7, 100.0, 2.0, 0.0)
    g = growth_rate(t, y)
    assert g.per_week == pytest.approx(14.0)
    assert g.relative_per_day == pytest.approx(2.0 / g.current)


def test_too_few_points_says_what_to_do() -> None:
    with pytest.raises(AnalyticsError, match="widen the window"):
        time_to_threshold([0, 1, 2], [1, 2, 3], 10)
    with pytest.raises(AnalyticsError, match="direction must be"):
        time_to_threshold(np.arange(9.0), np.arange(9.0), 10, direction="sideways")
    with pytest.raises(AnalyticsError, match="equal length"):
        time_to_threshold([0, 1, 2], [1, 2], 10)


@pytest.fixture
def history(tmp_path: Path):
    h = MetricsHistory(tmp_path / "m.duckdb", clock=lambda: NOW, background=False)
    rows = []
    for host, start, per_day in [("web-1", 0.50, 0.02), ("web-2", 0.30, 0.0), ("db-1", 0.2, 0.05)]:
        t, y = _series(14, start, per_day, 0.005, seed=len(rows))
        for mount, offset in [("/", 0.0), ("/data", 0.1)] if host == "db-1" else [("/", 0.0)]:
            rows.append(
                pd.DataFrame(
                    {
                        "ts": t,
                        "host": host,
                        "metric": "slothlab_disk_usage_ratio",
                        "value": y + offset,
                        "labels": [{"mount": mount}] * len(t),
                    }
                )
            )
    h.write(pd.concat(rows, ignore_index=True))
    yield h
    h.close()


def test_report_per_host_and_mount(history: MetricsHistory) -> None:
    target = CapacityTarget("slothlab_disk_usage_ratio", 0.95, "max", "disk")
    report = capacity_report(history, targets=[target], tags={"db-1": "db", "web-1": ["web"]})
    assert list(report["host"]) == ["db-1", "db-1", "web-1", "web-2"]
    first = report.iloc[0]
    assert first["labels"] == "mount=/data" and first["tags"] == "db"
    # db-1 /data: 0.3 + 0.05/day over 14 days -> 1.0 now: already past 0.95
    assert first["status"] == "exceeded" and first["likely_days"] == 0
    assert first["growth_per_day"] == pytest.approx(0.05, abs=0.005)
    root = report.iloc[1]  # db-1 /: 0.9 now, 0.05 a day -> 1 day left
    assert root["status"] == "crossing"
    assert root["likely_days"] == pytest.approx(1.0, abs=0.3)
    web1 = report[report.host == "web-1"].iloc[0]
    assert web1["likely_days"] == pytest.approx((0.95 - 0.50 - 0.28) / 0.02, abs=1.0)
    assert isinstance(web1["likely"], pd.Timestamp) and str(web1["likely"].tz) == "UTC"
    assert report[report.host == "web-2"].iloc[0]["status"] in {"flat", "not within horizon"}


def test_report_per_tag(history: MetricsHistory) -> None:
    target = CapacityTarget("slothlab_disk_usage_ratio", 0.95, "max", "disk")
    tags = {"db-1": ["db", "eu"], "web-1": ["web", "eu"], "web-2": ["web"]}
    by_tag = capacity_report(history, targets=[target], tags=tags, by="tag").set_index("tag")
    assert by_tag.loc["eu", "hosts"] == 2 and by_tag.loc["web", "hosts"] == 2
    assert by_tag.loc["web", "at_risk"] == 1
    assert by_tag.loc["eu", "min_likely_days"] < by_tag.loc["web", "min_likely_days"]


def test_report_marks_short_series_and_rejects_bad_by(history: MetricsHistory) -> None:
    target = CapacityTarget("slothlab_disk_usage_ratio", 0.95, "max", "disk")
    short = capacity_report(history, targets=[target], since=NOW - 3 * 3600)
    assert set(short["status"]) == {"insufficient data"}
    with pytest.raises(AnalyticsError, match="by must be"):
        capacity_report(history, by="region")


def test_time_to_threshold_reads_a_datetime_index_as_epoch_seconds() -> None:
    t, y = _series(10, 50e9, -3e9, 1e7)
    idx = pd.to_datetime(t, unit="s").as_unit("us")
    from_index = time_to_threshold(idx, y, 10e9, direction="down")
    from_seconds = time_to_threshold(t, y, 10e9, direction="down")
    assert from_index.status == from_seconds.status == "crossing"
    assert from_index.likely == pytest.approx(from_seconds.likely)
    assert from_index.now == pytest.approx(NOW - 600.0)
