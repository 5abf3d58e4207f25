"""Recorder: collector ticks and custom metrics into a real DuckDB history (embedded mode)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slothlab.metrics import Collector, CustomMetrics, MetricsHistory, Recorder

from .conftest import FakeClock, FakePsutil


def poll(predicate: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


@pytest.fixture
def collector(fake_psutil: FakePsutil, wall: FakeClock, mono: FakeClock) -> Collector:
    return Collector(source=fake_psutil, clock=wall, monotonic=mono, host="nb-1")


def metrics_of(history: MetricsHistory) -> dict[str, int]:
    frame = history.sql("SELECT metric, count(*) AS n FROM samples GROUP BY metric")
    return dict(zip(frame["metric"], frame["n"], strict=True))


def test_ticks_and_custom_metrics_reach_the_history(
    tmp_path: Path, collector: Collector, wall: FakeClock
) -> None:
    custom = CustomMetrics(clock=wall)
    history = MetricsHistory(tmp_path / "h.duckdb", background=False)
    recorder = Recorder(collector, custom, history, interval_s=3600, clock=wall).start()
    assert recorder.running and recorder.host == "nb-1"
    collector.sample()  # a tick of the collector's thread, by hand
    custom.counter("jobs_total", 2, {"kind": "batch"})
    custom.gauge("queue_depth", 7)
    custom.record_timer("step", 250.0)
    recorder.stop()  # records the custom metrics once more and flushes
    assert not recorder.running
    found = metrics_of(history)
    assert found["slothlab_cpu_usage_ratio"] == 1
    assert found["slothlab_disk_usage_ratio"] == 2  # one per real mount
    assert {k: found[k] for k in ("jobs_total", "queue_depth", "step_seconds_count")} == {
        "jobs_total": 1,
        "queue_depth": 1,
        "step_seconds_count": 1,
    }
    jobs = history.latest("jobs_total")
    assert jobs["host"].tolist() == ["nb-1"] and jobs["labels"][0] == {"kind": "batch"}
    assert history.latest("step_seconds_sum")["value"].tolist() == [0.25]
    assert history.pending_rows == 0  # stop flushed: nothing waits in memory
    collector.sample()  # after stop, ticks are not written any more
    assert history.pending_rows == 0
    history.close()


def test_custom_metrics_are_recorded_every_interval(tmp_path: Path) -> None:
    custom = CustomMetrics()
    custom.gauge("queue_depth", 1)
    with MetricsHistory(tmp_path / "h.duckdb", background=False) as history:
        with Recorder(None, custom, history, interval_s=0.02, host="nb"):
            poll(lambda: history.pending_rows >= 3)
        assert metrics_of(history)["queue_depth"] >= 4  # three by the thread, one at stop


def test_a_closed_history_does_not_break_the_collector(
    tmp_path: Path, collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    history = MetricsHistory(tmp_path / "h.duckdb", background=False)
    recorder = Recorder(collector, None, history).start()
    history.close()
    collector.sample()
    collector.sample()
    assert [r.message for r in caplog.records].count(
        f"host metrics not recorded: the metrics history {history.path} is closed; open a new one"
    ) == 1  # said once, not every tick
    recorder.stop()  # nothing to flush into a closed history, and no error


def test_interval_must_be_positive() -> None:
    history = MetricsHistory(":memory:", background=False)
    with pytest.raises(ValueError, match="interval_s must be a positive"):
        Recorder(None, CustomMetrics(), history, interval_s=0)
    history.close()
