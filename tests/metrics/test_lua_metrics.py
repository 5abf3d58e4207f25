"""The ``metrics`` Lua module in a real sandboxed runtime, fed by a fake psutil source."""

from __future__ import annotations

from typing import Any

import pytest

from slothlab.errors import LuaError, LuaTimeoutError
from slothlab.lua import Runtime
from slothlab.metrics.collector import Collector
from slothlab.metrics.custom import CustomMetrics


@pytest.fixture
def collector(fake_psutil, wall, mono) -> Collector:
    return Collector(source=fake_psutil, clock=wall, monotonic=mono, host="h")


@pytest.fixture
def lua(collector: Collector) -> Runtime:
    return Runtime(modules=["metrics"], context={"collector": collector}, output=_quiet)


def _quiet(stream: str, text: str) -> None:
    pass


def test_system_readings_come_from_the_collector(lua: Runtime) -> None:
    cpu, mem, disk, load, net = lua.execute(
        "return metrics.system_cpu(), metrics.system_memory(), metrics.system_disk('/data'),"
        " metrics.system_load(), metrics.system_network()"
    )
    assert cpu == pytest.approx(40.0)
    assert mem == {"used_mb": 2048, "total_mb": 8192, "percent": 25.0, "available_mb": 6144}
    assert disk == {"used_gb": 900, "total_gb": 1000, "percent": 90.0, "free_gb": 100}
    assert load == {"load1": 0.5, "load5": 0.25, "load15": 0.125}
    assert net == {"bytes_recv": 10_000, "bytes_sent": 5_000}  # no rates on the first sample


def test_system_cpu_returns_the_last_sample_without_taking_one(lua, collector, fake_psutil):
    collector.sample()
    fake_psutil.cpu = fake_psutil.cpu._replace(user=1000.0)  # would read 100 % if sampled
    assert lua.execute("return metrics.system_cpu()") == [pytest.approx(40.0)]


def test_system_disk_of_a_missing_path_is_nil_and_a_message(lua: Runtime) -> None:
    value, message = lua.execute("return metrics.system_disk('/nowhere')")
    assert value is None and "/nowhere" in message
    value, message = lua.execute("return metrics.system_disk(42)")
    assert value is None and "path must be" in message


def test_custom_metrics_follow_sloth_runner(lua: Runtime) -> None:
    results = lua.execute(
        """
        local ok = metrics.gauge("depth", 17, {queue = "ingest"})
        local c1 = metrics.counter("jobs_total")
        local c2 = metrics.counter("jobs_total", 4, {kind = "batch"})
        metrics.histogram("lat_ms", 10); metrics.histogram("lat_ms", 20)
        metrics.histogram("lat_ms", 60, {route = "/health"})
        local h = metrics.get_custom("lat_ms")
        local g = metrics.get_custom("depth")
        return ok, c1, c2, h.count, h.sum, h.avg, h.min, h.max, g.value, g.tags.queue,
               type(g.timestamp), metrics.get_custom("never") == nil, #metrics.list_custom(),
               tostring(c2), tostring(h.avg)
        """
    )
    assert results == [True, 1, 5, 3, 90, 30, 10, 60, 17, "ingest", "string", True, 3, "5", "30"]


def test_timer_returns_milliseconds_and_records_the_call(lua: Runtime) -> None:
    elapsed, kind, count = lua.execute(
        """
        local function work() local a = 0 for i = 1, 1000 do a = a + i end end
        local ms = metrics.timer("loop", work, {phase = "warmup"})
        local t = metrics.get_custom("loop")
        return ms, t.type, t.count
        """
    )
    assert elapsed >= 0 and kind == "timer" and count == 1
    custom = lua.context["custom_metrics"]
    assert isinstance(custom, CustomMetrics) and custom.names() == ["loop"]


def test_a_failing_timed_function_gives_nil_and_a_message(lua: Runtime) -> None:
    value, message, names = lua.execute(
        "local v, m = metrics.timer('t', function() error('boom') end)"
        " return v, m, #metrics.list_custom()"
    )
    assert value is None and "Function execution failed" in message and "boom" in message
    assert names == 0


def test_timer_cannot_swallow_the_cpu_budget(collector: Collector) -> None:
    rt = Runtime(modules=["metrics"], context={"collector": collector}, instruction_limit=100_000)
    with pytest.raises(LuaTimeoutError):
        rt.execute("metrics.timer('spin', function() while true do end end)")


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("metrics.gauge('depth', 'high')", "must be a number"),
        ("metrics.gauge('bad name', 1)", "not valid"),
        ("metrics.counter('n_total', -1)", "cannot go down"),
        ("metrics.gauge('x', 1, {'a', 'b'})", "tags must be a table of name = value"),
        ("metrics.gauge('d', 1) metrics.counter('d')", "is a gauge, not a counter"),
        ("metrics.timer('t', 5)", "argument 2 must be a function"),
    ],
)
def test_bad_calls_raise_a_lua_error_at_the_callers_line(
    lua: Runtime, code: str, message: str
) -> None:
    with pytest.raises(LuaError, match=message) as info:
        lua.execute(code, "cell")
    assert info.value.chunk == "cell" and info.value.line == 1


def test_custom_metrics_come_from_the_context_when_given(collector: Collector) -> None:
    shared = CustomMetrics()
    for _ in range(2):
        rt = Runtime(
            modules=["metrics"], context={"collector": collector, "custom_metrics": shared}
        )
        rt.execute("metrics.counter('runs_total')")
    assert shared.get("runs_total")["value"] == 2  # type: ignore[index]


def test_each_runtime_has_its_own_custom_metrics(collector: Collector) -> None:
    a = Runtime(modules=["metrics"], context={"collector": collector})
    b = Runtime(modules=["metrics"], context={"collector": collector})
    a.execute("metrics.counter('x_total')")
    assert b.execute("return #metrics.list_custom()") == [0]


def test_alert_is_recorded_printed_and_sent_to_the_hook(collector: Collector) -> None:
    fired: list[dict[str, Any]] = []
    out: list[tuple[str, str]] = []
    rt = Runtime(
        modules=["metrics"],
        context={"collector": collector, "alerts": fired.append},
        output=lambda stream, text: out.append((stream, text)),
    )
    assert rt.execute(
        "return metrics.alert('disk_full', {level = 'critical', message = 'disk at 97%',"
        " value = 97})"
    ) == [True]
    (alert,) = fired
    assert alert["name"] == "disk_full" and alert["level"] == "critical" and alert["value"] == 97
    assert alert["timestamp"].endswith("Z")
    assert rt.context["alert_log"] == [alert]
    assert ("warn", "[ALERT] critical: disk at 97%") in out
    with pytest.raises(LuaError, match="alert name"):
        rt.execute("metrics.alert('')")


def test_health_status_uses_sloth_runners_thresholds(lua, collector, fake_psutil) -> None:
    (health,) = lua.execute("return metrics.health_status()")
    assert health["cpu"] == {"usage": pytest.approx(40.0), "status": "healthy"}
    assert health["memory"]["status"] == "healthy"
    assert health["overall"] == "healthy" and health["timestamp"].endswith("Z")
    fake_psutil.cpu = fake_psutil.cpu._replace(user=1000.0)  # ~95 % since boot
    fake_psutil.usage["/"] = fake_psutil.usage["/"]._replace(percent=88.0)
    fresh = Collector(source=fake_psutil)
    rt = Runtime(modules=["metrics"], context={"collector": fresh})
    (health,) = rt.execute("return metrics.health_status()")
    assert health["cpu"]["status"] == "critical" and health["disk"]["status"] == "warning"
    assert health["overall"] == "critical"


def test_history_without_a_store_is_nil_and_a_message(lua: Runtime) -> None:
    assert lua.execute("return metrics.history('slothlab_load1', '-1h')") == [
        None,
        "no metrics history configured",
    ]


def test_history_asks_the_store_in_the_context(collector: Collector) -> None:
    class Store:
        def query(self, metric: str, start: Any = None, end: Any = None) -> list[dict[str, Any]]:
            if metric == "bad":
                raise ValueError("unknown metric 'bad'")
            return [{"metric": metric, "start": start, "end": end, "value": 1.5}]

    rt = Runtime(modules=["metrics"], context={"collector": collector, "history": Store()})
    rows, bad = rt.execute(
        "return metrics.history('slothlab_load1', '-1h'), {metrics.history('bad')}"
    )
    assert rows == [{"metric": "slothlab_load1", "start": "-1h", "value": 1.5}]
    assert bad == [None, "unknown metric 'bad'"]


def test_runtime_info_describes_this_process(lua: Runtime) -> None:
    (info,) = lua.execute("return metrics.runtime_info()")
    assert info["pid"] > 0 and info["threads"] >= 1 and info["rss_mb"] == 50
    assert info["python_version"].count(".") == 2 and info["lua_version"] == "Lua 5.4"


def test_without_a_collector_in_the_context_the_process_one_is_used() -> None:
    from slothlab.metrics.collector import default_collector

    rt = Runtime(modules=["metrics"])
    try:
        (cpu,) = rt.execute("return metrics.system_cpu()")
        assert 0.0 <= cpu <= 100.0
        assert default_collector().running
    finally:
        default_collector().stop()
