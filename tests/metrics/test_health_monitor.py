"""The health monitor: confirmed states without flapping, recovery with a cooldown, /health."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from slothlab.errors import ConfigError
from slothlab.lua import Runtime
from slothlab.metrics.health import (
    Check,
    CheckResult,
    CommandCheck,
    HealthMonitor,
    Recovery,
    StaticSource,
    Status,
    ThresholdCheck,
    health_document,
    health_status,
)


class Scripted(Check):
    """A check that returns the statuses it is given, one per run (the last one repeats)."""

    kind = "scripted"

    def __init__(self, name: str, statuses: list[Status], **options: object) -> None:
        super().__init__(name, **options)  # type: ignore[arg-type]
        self.statuses = statuses
        self.calls = 0

    def run(self) -> CheckResult:
        status = self.statuses[min(self.calls, len(self.statuses) - 1)]
        self.calls += 1
        return CheckResult(status, f"run {self.calls}: {status}")


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _drive(monitor: HealthMonitor, clock: Clock, runs: int, step: float = 10.0) -> list[str]:
    """Tick ``runs`` times, ``step`` seconds apart; the confirmed state after each."""
    seen = []
    for _ in range(runs):
        monitor.tick()
        seen.append(monitor.state(next(iter(monitor.checks))).status)
        clock.now += step
    return seen


def test_one_bad_sample_does_not_flip_the_state() -> None:
    clock = Clock()
    check = Scripted(
        "svc",
        ["ok", "critical", "ok", "critical", "critical", "critical", "ok"],
        interval_s=10,
        failure_threshold=3,
    )
    monitor = HealthMonitor([check], clock=clock)
    states = _drive(monitor, clock, 7)
    assert states == ["ok", "ok", "ok", "ok", "ok", "critical", "ok"]
    state = monitor.state("svc")
    assert state.runs == 7
    assert state.since == 1060.0


def test_success_threshold_delays_recovery() -> None:
    clock = Clock()
    check = Scripted(
        "svc",
        ["critical", "ok", "critical", "ok", "ok", "ok"],
        interval_s=10,
        failure_threshold=1,
        success_threshold=2,
    )
    monitor = HealthMonitor([check], clock=clock)
    assert _drive(monitor, clock, 6) == ["critical", "critical", "critical", "critical", "ok", "ok"]


def test_unknown_until_confirmed_and_counts_as_ok() -> None:
    clock = Clock()
    monitor = HealthMonitor([Scripted("svc", ["critical"], failure_threshold=3)], clock=clock)
    monitor.tick()
    assert monitor.state("svc").status == "unknown"
    assert monitor.status() == "ok"
    code, doc = health_document(monitor)
    assert code == 200
    assert doc["checks"]["svc"]["status"] == "unknown"
    assert doc["checks"]["svc"]["consecutive_failures"] == 1


def test_checks_run_only_when_due() -> None:
    clock = Clock()
    fast = Scripted("fast", ["ok"], interval_s=5)
    slow = Scripted("slow", ["ok"], interval_s=60)
    monitor = HealthMonitor([fast, slow], clock=clock)
    for _ in range(12):  # one minute in 5 s steps
        monitor.tick()
        clock.now += 5
    assert (fast.calls, slow.calls) == (12, 1)
    assert monitor.state("slow").next_run == 1060.0


def test_warning_then_critical_and_overall_status() -> None:
    clock = Clock()
    source = StaticSource({"cpu": 50.0, "disk": 50.0})
    cpu = ThresholdCheck("cpu", "cpu", warning=80, critical=95, source=source, failure_threshold=1)
    disk = ThresholdCheck(
        "disk", "disk", warning=80, critical=95, source=source, failure_threshold=1
    )
    monitor = HealthMonitor([cpu, disk], clock=clock)
    monitor.tick()
    assert health_document(monitor)[0] == 200
    source.values["cpu"] = 85.0
    clock.now += 30
    monitor.tick()
    code, doc = health_document(monitor)
    assert (code, doc["status"]) == (200, "warning")
    source.values["disk"] = 99.0
    clock.now += 30
    monitor.tick()
    code, doc = health_document(monitor)
    assert (code, doc["status"]) == (503, "critical")
    assert doc["checks"]["disk"]["details"]["value"] == 99.0
    assert doc["checks"]["cpu"]["status"] == "warning"
    assert doc["timestamp"].endswith("Z")
    json.dumps(doc)  # the document is JSON-ready


def test_history_is_bounded() -> None:
    clock = Clock()
    monitor = HealthMonitor([Scripted("svc", ["ok"], interval_s=1)], clock=clock, history_size=5)
    _drive(monitor, clock, 12, step=1)
    history = monitor.history("svc")
    assert len(history) == 5
    assert [t for t, _ in history] == [1007.0, 1008.0, 1009.0, 1010.0, 1011.0]


def test_a_check_that_raises_is_critical_and_others_still_run() -> None:
    class Broken(Check):
        def run(self) -> CheckResult:
            raise RuntimeError("bug in check")

    clock = Clock()
    healthy = Scripted("fine", ["ok"])
    monitor = HealthMonitor([Broken("broken", failure_threshold=1), healthy], clock=clock)
    results = monitor.tick()
    assert [r.status for r in results] == ["critical", "ok"]
    assert "RuntimeError: bug in check" in results[0].message


def test_on_change_listener_sees_confirmed_changes_only() -> None:
    clock = Clock()
    changes: list[tuple[str, str, str]] = []
    check = Scripted("svc", ["ok", "critical", "critical", "ok"], failure_threshold=2)
    monitor = HealthMonitor(
        [check], clock=clock, on_change=lambda n, old, new, r: changes.append((n, old, new))
    )
    _drive(monitor, clock, 4, step=30)
    assert changes == [
        ("svc", "unknown", "ok"),
        ("svc", "ok", "critical"),
        ("svc", "critical", "ok"),
    ]


def test_duplicate_and_unknown_names() -> None:
    monitor = HealthMonitor([Scripted("a", ["ok"])])
    with pytest.raises(ConfigError, match="unique"):
        monitor.add(Scripted("a", ["ok"]))
    with pytest.raises(ConfigError, match="known: a"):
        monitor.state("b")
    monitor.remove("a")
    assert monitor.checks == {}


# -- recovery ---------------------------------------------------------------------------------


def test_recovery_runs_when_critical_and_respects_the_cooldown(tmp_path: Path) -> None:
    clock = Clock()
    marker = tmp_path / "recovered"
    recovery = Recovery(command=f"echo run >> {marker}", cooldown_s=60)
    check = Scripted("svc", ["critical"], interval_s=10, failure_threshold=2, recovery=recovery)
    monitor = HealthMonitor([check], clock=clock)
    _drive(monitor, clock, 14)  # t = 1000 .. 1130, critical from t = 1010
    attempts = monitor.recoveries()
    assert [a.at for a in attempts] == [1010.0, 1070.0, 1130.0]
    assert all(a.ok and a.kind == "command" for a in attempts)
    assert marker.read_text().splitlines() == ["run", "run", "run"]


def test_recovery_is_not_run_while_ok_or_unconfirmed(tmp_path: Path) -> None:
    clock = Clock()
    marker = tmp_path / "recovered"
    recovery = Recovery(command=f"touch {marker}", cooldown_s=0)
    check = Scripted(
        "svc",
        ["ok", "critical", "critical", "ok", "warning"],
        failure_threshold=3,
        recovery=recovery,
    )
    monitor = HealthMonitor([check], clock=clock)
    _drive(monitor, clock, 5, step=30)
    assert monitor.recoveries() == []
    assert not marker.exists()


def test_failed_recovery_is_recorded() -> None:
    clock = Clock()
    recovery = Recovery(command="echo cannot restart; exit 4", cooldown_s=0)
    check = Scripted("svc", ["critical"], failure_threshold=1, recovery=recovery)
    monitor = HealthMonitor([check], clock=clock)
    monitor.tick()
    (attempt,) = monitor.recoveries()
    assert attempt.ok is False
    assert attempt.message == "exit 4: cannot restart"
    assert attempt.to_dict()["check"] == "svc"


def test_lua_recovery_runs_on_a_real_runtime() -> None:
    clock = Clock()
    runtime = Runtime(output=lambda s, t: None)
    code = "fixes = (fixes or 0) + 1 return true, 'fix number ' .. fixes"
    recovery = Recovery(lua=code, cooldown_s=100)
    check = Scripted("svc", ["critical"], interval_s=10, failure_threshold=1, recovery=recovery)
    monitor = HealthMonitor([check], clock=clock, lua_runtime=runtime)
    _drive(monitor, clock, 12)  # t = 1000 .. 1110: runs at 1000 and 1100
    attempts = monitor.recoveries()
    assert [(a.at, a.kind, a.ok, a.message) for a in attempts] == [
        (1000.0, "lua", True, "fix number 1"),
        (1100.0, "lua", True, "fix number 2"),
    ]
    assert runtime.get_global("fixes") == 2


def test_lua_recovery_error_is_recorded() -> None:
    clock = Clock()
    recovery = Recovery(lua="error('cannot fix')", cooldown_s=0)
    check = Scripted("svc", ["critical"], failure_threshold=1, recovery=recovery)
    runtime = Runtime(output=lambda s, t: None)
    monitor = HealthMonitor([check], clock=clock, lua_runtime=runtime)
    monitor.tick()
    (attempt,) = monitor.recoveries()
    assert attempt.ok is False
    assert "cannot fix" in attempt.message


# -- the background thread --------------------------------------------------------------------


def test_background_thread_runs_checks_and_stops() -> None:
    check = CommandCheck("true", "true", interval_s=0.05, failure_threshold=1)
    monitor = HealthMonitor([check])
    with monitor:
        assert monitor.running
        deadline = time.monotonic() + 10
        while monitor.state("true").runs < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert not monitor.running
    assert monitor.state("true").runs >= 3
    assert health_status(monitor)["status"] == "ok"


def test_lua_health_status_reads_the_monitor() -> None:
    from slothlab.metrics.health import lua_health_status

    source = StaticSource({"cpu": 97.0})
    check = ThresholdCheck("cpu", "cpu", warning=80, critical=95, source=source,
                           failure_threshold=1)  # fmt: skip
    monitor = HealthMonitor([check, Scripted("api", ["critical"])], clock=Clock())
    monitor.tick()
    runtime = Runtime(context={"health_status": lambda: lua_health_status(monitor)},
                      output=lambda s, t: None)  # fmt: skip
    cpu, api, overall = runtime.execute(
        "local h = metrics.health_status() return h.cpu.status, h.api.status, h.overall"
    )
    assert (cpu, api, overall) == ("critical", "unknown", "critical")
