"""Custom metrics set by Lua tasks in pool workers reach the parent: dump, merge, hand-back."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from slothlab.errors import LuaError
from slothlab.lua import _worker
from slothlab.lua.pool import WorkerPool
from slothlab.metrics import CustomMetrics, default_custom_metrics
from slothlab.metrics.exposition import render


def families(custom: CustomMetrics) -> dict[str, list[tuple[str, str, float]]]:
    """Each family's samples as (name, labels as sorted text, value), sorted."""
    text = render(None, custom).decode()
    return {
        f.name: sorted((s.name, str(sorted(s.labels.items())), s.value) for s in f.samples)
        for f in text_string_to_metric_families(text)
    }


def filled(clock: float = 5.0) -> CustomMetrics:
    custom = CustomMetrics(clock=lambda: clock)
    custom.counter("jobs_total", 2, {"kind": "batch"})
    custom.counter("jobs_total", 1)
    custom.gauge("queue_depth", 7, {"queue": "in"})
    custom.histogram("size_bytes", 300, buckets=[100, 1000])
    custom.histogram("size_bytes", 50)
    custom.record_timer("step", 20.0, {"step": "fetch"})
    return custom


def test_merge_into_an_empty_instance_gives_the_same_exposition() -> None:
    source, target = filled(), CustomMetrics()
    dumped = json.loads(json.dumps(source.dump()))  # what crosses the worker's pipe
    assert target.merge(dumped) == []
    assert families(target) == families(source)
    for name in source.names():
        assert target.get(name) == source.get(name)  # summaries, quantiles, tags, timestamp


def test_counters_and_histograms_add_up_and_gauges_take_the_last_value() -> None:
    target = CustomMetrics()
    for _ in range(3):
        assert target.merge(filled().dump()) == []
    assert target.get("jobs_total")["value"] == 9
    assert target.series("jobs_total") == [
        {"tags": {"kind": "batch"}, "value": 6},
        {"tags": {}, "value": 3},
    ]
    assert target.get("queue_depth")["value"] == 7
    size = target.get("size_bytes")
    assert (size["count"], size["sum"], size["min"], size["max"]) == (6, 1050, 50, 300)
    assert families(target)["size_bytes"][:3] == [
        ("size_bytes_bucket", "[('le', '+Inf')]", 6.0),
        ("size_bytes_bucket", "[('le', '100.0')]", 3.0),
        ("size_bytes_bucket", "[('le', '1000.0')]", 6.0),
    ]
    assert target.get("step")["count"] == 3 and target.get("step")["p50"] == 20


@pytest.mark.parametrize(
    ("prepare", "change", "why"),
    [
        (lambda t: t.gauge("jobs_total", 1), lambda d: d, "is a gauge, not a counter"),
        (
            lambda t: t.histogram("size_bytes", 1, buckets=[1, 2]),
            lambda d: d,
            "buckets .* are not the",
        ),
        (lambda t: None, lambda d: _set(d, "jobs_total", "value", -1), "cannot add -1"),
        (lambda t: None, lambda d: _set(d, "queue_depth", "value", "high"), "must be a number"),
        (lambda t: None, lambda d: _set(d, "size_bytes", "buckets", [9, 9, 9]), "do not fit"),
        (lambda t: None, lambda d: _rename(d, "jobs_total", "bad name"), "bad name"),
    ],
)
def test_a_bad_metric_is_refused_with_a_reason_and_the_rest_merges(
    prepare: Any, change: Any, why: str
) -> None:
    target = CustomMetrics()
    prepare(target)
    problems = target.merge(change(filled().dump()))
    assert len(problems) == 1
    assert "not merged" in problems[0]
    assert re.search(why, problems[0])
    assert target.get("step")["count"] == 1  # the other metrics went in


def _set(dumped: list[dict[str, Any]], name: str, key: str, value: Any) -> list[dict[str, Any]]:
    for family in dumped:
        if family["name"] == name:
            family["series"][0][key] = value
    return dumped


def _rename(dumped: list[dict[str, Any]], name: str, new: str) -> list[dict[str, Any]]:
    for family in dumped:
        if family["name"] == name:
            family["name"] = new
    return dumped


def test_worker_hands_back_at_most_so_many_series(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_worker, "_MAX_SERIES", 3)
    monkeypatch.setattr(_worker, "_MAX_WINDOW", 2)
    custom = CustomMetrics()
    for i in range(5):
        custom.histogram("h", i, {"i": str(i)})
        custom.histogram("h", i + 10, {"i": str(i)})
        custom.histogram("h", i + 20, {"i": str(i)})
    output = _worker._Capture()
    kept = _worker._bounded(custom.dump(), output)
    assert [len(f["series"]) for f in kept] == [3]
    assert kept[0]["series"][0]["window"] == [10, 20] and kept[0]["series"][0]["count"] == 3
    assert output.lines == [["warn", "custom metrics past 3 series were not handed back"]]


LUA_TASK = """
local n = ...
metrics.counter("jobs_total", 2, {kind = "a"})
metrics.gauge("depth", n)
metrics.histogram("size_bytes", 100 * n)
metrics.timer("step", function() end)
return metrics.get_custom("jobs_total").value
"""


def test_tasks_in_workers_hand_their_metrics_to_the_pool() -> None:
    custom = CustomMetrics()
    lines: list[tuple[str, str]] = []
    with WorkerPool(1, custom_metrics=custom) as pool:
        assert pool.custom_metrics is custom
        for n in (1, 2, 3):
            assert pool.run(LUA_TASK, args=[n]) == [2]  # a task sees its own runtime's metrics
        with pytest.raises(LuaError, match="boom"):  # a failing task's updates count too
            pool.run('metrics.counter("jobs_total", 1) error("boom")')
        pool.run('metrics.gauge("jobs_total", 1)', output=lambda s, t: lines.append((s, t)))
        pool.run("return 1")  # no metrics: nothing to merge
    assert custom.get("jobs_total")["value"] == 7
    assert custom.get("depth")["value"] == 3
    size = custom.get("size_bytes")
    assert (size["count"], size["sum"]) == (3, 600)
    assert custom.get("step")["count"] == 3
    assert lines == [
        (
            "warn",
            "custom metric 'jobs_total' not merged: metric 'jobs_total' is a counter, "
            "not a gauge; use another name",
        )
    ]
    assert 'jobs_total{kind="a"} 6.0' in render(None, custom).decode()


def test_a_pool_merges_into_the_process_metrics_by_default() -> None:
    with WorkerPool(1) as pool:
        assert pool.custom_metrics is default_custom_metrics()
        before = (default_custom_metrics().get("handback_probe_total") or {}).get("value", 0)
        pool.run('metrics.counter("handback_probe_total", 5)')
    assert default_custom_metrics().get("handback_probe_total")["value"] == before + 5
