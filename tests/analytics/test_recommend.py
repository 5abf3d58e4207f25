"""Performance recommendations: the limiting resource per host and saturation signals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slothlab.analytics.prices import PriceCatalogue
from slothlab.analytics.recommend import bottlenecks, recommend
from slothlab.metrics import MetricsHistory

HOUR = 3600.0
NOW = 6 * HOUR


def _rows(host: str, metric: str, level: float, labels: dict[str, str] | None = None):
    t = np.arange(0.0, NOW, 60.0)
    noise = np.random.default_rng(len(host) + len(metric)).normal(0, 0.003, len(t))
    return pd.DataFrame(
        {
            "ts": t,
            "host": host,
            "metric": metric,
            "value": level + noise,
            "labels": [labels or {}] * len(t),
        }
    )


@pytest.fixture
def history(tmp_path: Path):
    h = MetricsHistory(tmp_path / "m.duckdb", clock=lambda: NOW, background=False)
    spec = {
        # load 6 on 4 cores (counted from per-core labels): saturated although CPU is 0.85
        "cpu-host": {"cpu": 0.85, "memory": 0.4, "disk": 0.3, "swap": 0.0, "load1": 6.0},
        "mem-host": {"cpu": 0.3, "memory": 0.93, "disk": 0.4, "swap": 0.2, "load1": 0.5},
        "disk-host": {"cpu": 0.1, "memory": 0.3, "disk": 0.97, "swap": 0.0, "load1": 0.2},
        "calm-host": {"cpu": 0.2, "memory": 0.35, "disk": 0.3, "swap": 0.0, "load1": 0.3},
    }
    parts = []
    for host, levels in spec.items():
        for name, level in levels.items():
            metric = "slothlab_load1" if name == "load1" else f"slothlab_{name}_usage_ratio"
            if name == "disk":
                parts.append(_rows(host, metric, 0.2, {"mount": "/boot"}))
                parts.append(_rows(host, metric, level, {"mount": "/"}))
            else:
                parts.append(_rows(host, metric, level))
        for core in range(4 if host == "cpu-host" else 2):
            parts.append(
                _rows(host, "slothlab_cpu_core_usage_ratio", levels["cpu"], {"core": str(core)})
            )
    h.write(pd.concat(parts, ignore_index=True))
    yield h
    h.close()


def test_limiting_resource_and_signals(history: MetricsHistory) -> None:
    found = bottlenecks(history, since=0).set_index("host")
    assert found.loc["cpu-host", "cores"] == 4
    assert found.loc["cpu-host", "load_per_core"] == pytest.approx(1.5, abs=0.01)
    assert found.loc["cpu-host", "limiting"] == "cpu"
    assert found.loc["mem-host", "limiting"] == "memory"
    assert found.loc["disk-host", "limiting"] == "disk"
    assert found.loc["disk-host", "disk"] == pytest.approx(0.97, abs=0.01)  # fullest mount
    assert found.loc["calm-host", "signals"] == []
    assert "load 1.5 per core" in found.loc["cpu-host", "signals"]
    assert any(s.startswith("swap") for s in found.loc["mem-host", "signals"])


def test_cores_given_beat_counted_ones(history: MetricsHistory) -> None:
    found = bottlenecks(history, ["cpu-host"], since=0, cores={"cpu-host": 8}).set_index("host")
    assert found.loc["cpu-host", "load_per_core"] == pytest.approx(0.75, abs=0.01)
    assert found.loc["cpu-host", "limiting"] == "cpu"  # 0.85 CPU is still the highest


def test_recommendations_most_severe_first(history: MetricsHistory) -> None:
    advice = recommend(history, since=0)
    assert list(advice.columns) == ["host", "kind", "resource", "value", "severity", "advice"]
    assert list(advice["severity"])[:2] == ["critical", "critical"]
    by_host = {(r.host, r.resource): r for r in advice.itertuples()}
    assert "CPU saturated" in by_host["cpu-host", "cpu"].advice
    assert "memory-bound" in by_host["mem-host", "memory"].advice
    assert by_host["disk-host", "disk"].severity == "critical"
    assert "calm-host" not in set(advice["host"])


def test_recommendations_include_cost_when_types_are_given(history: MetricsHistory) -> None:
    types = {"calm-host": "m5.2xlarge", "disk-host": "t3.micro"}
    advice = recommend(history, since=0, instance_types=types, catalogue=PriceCatalogue.builtin())
    cost = advice[advice.kind == "cost"].set_index("host")
    assert cost.loc["calm-host", "severity"] == "warning"
    assert cost.loc["calm-host", "value"] > 0
    assert "covers it" in cost.loc["calm-host", "advice"]


def test_unknown_host_has_no_data_and_no_advice(history: MetricsHistory) -> None:
    found = bottlenecks(history, ["ghost"], since=0)
    assert found.loc[0, "limiting"] == "" and found.loc[0, "signals"] == []
    assert recommend(history, ["ghost"], since=0).empty
