"""metrics.anomalies and metrics.forecast from real Lua over a real DuckDB history."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slothlab.lua.runtime import Runtime
from slothlab.metrics import MetricsHistory

NOW = 2 * 86400.0


@pytest.fixture
def history(tmp_path: Path):
    h = MetricsHistory(tmp_path / "m.duckdb", clock=lambda: NOW, background=False)
    t = np.arange(0.0, NOW, 300.0)
    load = 1.0 + 0.5 * np.sin(2 * np.pi * t / 86400.0)
    load[-3] = 40.0  # one spike near the end
    h.write(
        pd.concat(
            [
                pd.DataFrame({"ts": t, "host": "web-1", "metric": "load1", "value": load}),
                pd.DataFrame({"ts": t, "host": "web-2", "metric": "load1", "value": 1.0}),
            ],
            ignore_index=True,
        )
    )
    yield h
    h.close()


def test_anomalies_lists_flagged_samples(history: MetricsHistory) -> None:
    rt = Runtime(context={"history": history})
    rows = rt.execute('return metrics.anomalies("load1")')[0]
    assert [r["host"] for r in rows] == ["web-1"]
    assert rows[0]["value"] == 40.0 and rows[0]["score"] >= 0.5
    assert rows[0]["ts"] == NOW - 900 and rows[0]["time"].startswith("1970-01-02T23:45:00")
    assert rt.execute('return #metrics.anomalies("load1", 0)')[0] == 1
    assert history.query("load1_anomaly_score").empty  # reading does not write back


def test_forecast_returns_points_with_bounds(history: MetricsHistory) -> None:
    rt = Runtime(context={"history": history})
    result = rt.execute(
        'return metrics.forecast("load1", 6, {host = "web-2", step = "5m", model = "naive"})'
    )[0]
    assert result["model"] == "naive" and result["quantile"] == 0.9
    points = result["points"]
    assert len(points) == 6 and points[0]["ts"] == NOW
    assert all(p["lower"] <= p["mean"] <= p["upper"] for p in points)
    assert points[0]["mean"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "call, message",
    [
        ('metrics.forecast("load1", 6)', "needs one host (found: web-1, web-2)"),
        ('metrics.forecast("load1", 0, {host = "web-1"})', "horizon must be a number"),
        ('metrics.forecast("load1", 3, "web-1")', "opts must be a table"),
        ('metrics.forecast("nothing", 3, {host = "web-1"})', "needs one host (found: none)"),
        ("metrics.anomalies(42)", "metric must be a name"),
    ],
)
def test_bad_calls_return_nil_and_a_message(
    history: MetricsHistory, call: str, message: str
) -> None:
    rt = Runtime(context={"history": history})
    value, text = rt.execute(f"return {call}")
    assert value is None and message in text


def test_without_a_history() -> None:
    rt = Runtime()
    assert rt.execute('return metrics.anomalies("load1")') == [
        None,
        "no metrics history configured",
    ]
    assert rt.execute('return metrics.forecast("load1", 3)') == [
        None,
        "no metrics history configured",
    ]
