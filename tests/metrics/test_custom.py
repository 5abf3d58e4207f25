"""Custom metrics: sloth-runner's semantics, the tag rule, validation and quantiles."""

from __future__ import annotations

import itertools
import math
import threading
from typing import Any

import pytest

from slothlab.errors import CustomMetricError, MetricNameError
from slothlab.metrics import custom as custom_module
from slothlab.metrics.custom import CustomMetrics, quantile


@pytest.fixture
def metrics() -> CustomMetrics:
    return CustomMetrics(clock=lambda: 1_704_067_200.0)


def test_gauge_keeps_the_last_value_and_tags(metrics: CustomMetrics) -> None:
    metrics.gauge("queue_depth", 3, {"queue": "ingest"})
    metrics.gauge("queue_depth", 17, {"queue": "ingest"})
    assert metrics.get("queue_depth") == {
        "type": "gauge",
        "value": 17,
        "tags": {"queue": "ingest"},
        "timestamp": "2024-01-01T00:00:00Z",
    }


def test_counter_returns_the_total_over_every_tag_set(metrics: CustomMetrics) -> None:
    assert metrics.counter("jobs_total") == 1
    assert metrics.counter("jobs_total", 4, {"kind": "batch"}) == 5
    assert metrics.counter("jobs_total", 0.5, {"kind": "batch"}) == 5.5
    summary = metrics.get("jobs_total")
    assert summary is not None and summary["value"] == 5.5 and summary["tags"] == {"kind": "batch"}
    by_tags = {tuple(s["tags"].items()): s["value"] for s in metrics.series("jobs_total")}
    assert by_tags == {(): 1, (("kind", "batch"),): 4.5}


def test_counter_cannot_go_down(metrics: CustomMetrics) -> None:
    with pytest.raises(CustomMetricError, match=r"cannot go down.*use a gauge"):
        metrics.counter("jobs_total", -1)


def test_histogram_summary_matches_the_compat_script(metrics: CustomMetrics) -> None:
    metrics.histogram("latency_ms", 10)
    metrics.histogram("latency_ms", 20)
    metrics.histogram("latency_ms", 60, {"route": "/health"})
    s = metrics.get("latency_ms")
    assert s is not None
    assert (s["count"], s["sum"], s["avg"], s["min"], s["max"]) == (3, 90, 30, 10, 60)
    assert type(s["avg"]) is int  # whole numbers stay whole for Lua
    assert (s["p50"], s["p90"]) == (20, 52)
    assert s["p99"] == pytest.approx(59.2)


def test_quantiles_come_from_a_bounded_window() -> None:
    m = CustomMetrics(window=10)
    for v in range(100):
        m.histogram("size_bytes", v)
    s = m.get("size_bytes")
    assert s is not None
    assert s["count"] == 100 and s["min"] == 0 and s["max"] == 99  # exact over everything
    assert s["p50"] == pytest.approx(94.5)  # from the last 10 observations only
    assert quantile([5], 0.99) == 5


def test_timer_records_milliseconds_and_exports_seconds() -> None:
    ticks = itertools.count(0.0, 0.25)
    m = CustomMetrics(timer_clock=lambda: next(ticks))
    assert m.timer("loop", lambda: None, {"phase": "warmup"}) == 250.0
    with m.timed("loop"):
        pass
    s = m.get("loop")
    assert s is not None
    assert s["type"] == "timer" and s["duration_ms"] == 250.0 and s["count"] == 2
    assert s["sum"] == 500 and s["avg"] == 250
    (family,) = m.families()
    assert family["name"] == "loop_seconds" and family["series"][0]["sum"] == 0.25


def test_a_failing_timed_function_records_nothing(metrics: CustomMetrics) -> None:
    def boom() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        metrics.timer("loop", boom)
    assert metrics.get("loop") is None


def test_names_are_sorted_and_unknown_is_none(metrics: CustomMetrics) -> None:
    metrics.gauge("b_ratio", 0.5)
    metrics.counter("a_total")
    assert metrics.names() == ["a_total", "b_ratio"]
    assert metrics.get("nope") is None and metrics.series("nope") == []


def test_label_names_are_the_union_of_tag_keys_in_first_seen_order(metrics: CustomMetrics) -> None:
    metrics.counter("requests_total")
    metrics.counter("requests_total", 1, {"route": "/a"})
    metrics.counter("requests_total", 1, {"code": "200", "route": "/a"})
    metrics.counter("requests_total", 1, {"route": "/a", "code": ""})  # "" is no label
    (family,) = metrics.families()
    assert family["label_names"] == ["route", "code"]
    rows = {tuple(r["labels"]): r["value"] for r in family["series"]}
    assert rows == {("", ""): 1, ("/a", ""): 2, ("/a", "200"): 1}


def test_tag_values_become_text(metrics: CustomMetrics) -> None:
    metrics.gauge("temp_celsius", 1, {"zone": 2.0, "rack": 7, "hot": True, "x": 1.5})
    s = metrics.get("temp_celsius")
    assert s is not None and s["tags"] == {"zone": "2", "rack": "7", "hot": "true", "x": "1.5"}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.gauge("queue-depth", 1), "not valid.*'queue_depth'"),
        (lambda m: m.gauge("", 1), "non-empty string"),
        (lambda m: m.gauge("__x", 1), "reserved"),
        (lambda m: m.gauge("x", 1, {"bad-key": 1}), "tag name 'bad-key' is not valid"),
        (lambda m: m.histogram("x", 1, {"le": "1"}), "'le' is reserved"),
    ],
)
def test_bad_names_are_refused_with_what_is_allowed(call: Any, message: str) -> None:
    with pytest.raises(MetricNameError, match=message):
        call(CustomMetrics())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.gauge("x", "12"), "must be a number"),
        (lambda m: m.gauge("x", True), "must be a number"),
        (lambda m: m.histogram("x", math.nan), "must be finite"),
        (lambda m: m.gauge("x", 1, ["a", "b"]), "tags must be a table of name = value"),
        (lambda m: m.gauge("x", 1, {"a": {"nested": 1}}), "tag 'a' must be a string"),
        (lambda m: m.histogram("x", 1, buckets=[2, 1]), "strictly increasing"),
        (lambda m: m.record_timer("x", -1), "negative"),
    ],
)
def test_bad_values_are_refused_with_a_clear_message(call: Any, message: str) -> None:
    with pytest.raises(CustomMetricError, match=message):
        call(CustomMetrics())


def test_a_name_keeps_its_type(metrics: CustomMetrics) -> None:
    metrics.gauge("depth", 1)
    with pytest.raises(CustomMetricError, match="'depth' is a gauge, not a counter"):
        metrics.counter("depth")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("counter", "jobs"), ("counter", "jobs_total")),
        (("counter", "jobs"), ("gauge", "jobs_total")),
        (("histogram", "size"), ("gauge", "size_count")),
        (("timer", "loop"), ("gauge", "loop_seconds")),
        (("gauge", "latency_bucket"), ("histogram", "latency")),
    ],
)
def test_colliding_exported_names_are_refused(first: Any, second: Any) -> None:
    m = CustomMetrics()

    def use(kind: str, name: str) -> None:
        if kind == "timer":
            m.record_timer(name, 1.0)
        else:
            getattr(m, kind)(name, 1)

    use(*first)
    with pytest.raises(CustomMetricError, match="already uses; choose another name"):
        use(*second)


def test_histogram_buckets_are_fixed_by_the_first_use(metrics: CustomMetrics) -> None:
    metrics.histogram("size_bytes", 3, buckets=[1, 10, 100])
    metrics.histogram("size_bytes", 300)
    (family,) = metrics.families()
    assert family["bounds"] == (1.0, 10.0, 100.0)
    assert family["series"][0]["buckets"] == [0, 1, 1, 2]  # cumulative, +Inf last
    with pytest.raises(CustomMetricError, match="keeps the buckets of its first use"):
        metrics.histogram("size_bytes", 3, buckets=[1, 2])


def test_strict_mode_refuses_unconventional_names() -> None:
    m = CustomMetrics(strict=True)
    with pytest.raises(MetricNameError, match="latency_seconds"):
        m.histogram("latency_ms", 1)
    with pytest.raises(MetricNameError, match="only counters end in _total"):
        m.gauge("jobs_total", 1)
    m.histogram("latency_seconds", 0.1)
    CustomMetrics().histogram("latency_ms", 1)  # allowed by default (sloth-runner scripts)


def test_series_per_metric_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(custom_module, "MAX_SERIES", 3)
    m = CustomMetrics()
    for i in range(3):
        m.counter("hits_total", 1, {"user": str(i)})
    with pytest.raises(CustomMetricError, match="unbounded values"):
        m.counter("hits_total", 1, {"user": "3"})
    m.counter("hits_total", 1, {"user": "0"})  # existing series still work


def test_samples_for_the_history(metrics: CustomMetrics) -> None:
    metrics.gauge("depth", 4, {"q": "a"})
    metrics.counter("jobs")
    metrics.histogram("size_bytes", 10)
    metrics.record_timer("loop", 500)
    got = {(s.metric, tuple(s.labels.items())): s.value for s in metrics.samples("h1", ts=5.0)}
    assert got == {
        ("depth", (("q", "a"),)): 4.0,
        ("jobs_total", ()): 1.0,
        ("size_bytes_count", ()): 1.0,
        ("size_bytes_sum", ()): 10.0,
        ("loop_seconds_count", ()): 1.0,
        ("loop_seconds_sum", ()): 0.5,
    }
    assert {s.host for s in metrics.samples("h1")} == {"h1"}


def test_concurrent_updates_are_not_lost(metrics: CustomMetrics) -> None:
    def work() -> None:
        for _ in range(500):
            metrics.counter("ops_total", 1, {"t": "x"})
            metrics.histogram("op_seconds", 0.01)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert metrics.counter("ops_total", 0) == 2000
    summary = metrics.get("op_seconds")
    assert summary is not None and summary["count"] == 2000
