"""Alert rules and the alert manager: lifecycle with for-durations, ack, manual, persistence."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from slothlab.errors import AlertError, LuaError
from slothlab.metrics import Sample
from slothlab.metrics.alerts import (
    AlertManager,
    AlertRule,
    parse_series,
    rules_from_config,
    series_key,
)
from slothlab.metrics.notify import CallbackNotifier, Notification


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sent() -> list[Notification]:
    return []


@pytest.fixture
def manager(clock: Clock, sent: list[Notification]) -> AlertManager:
    return AlertManager(clock=clock, notifiers=[CallbackNotifier(sent.append)])


def _states(manager: AlertManager) -> dict[str, str]:
    return {a.name: a.state for a in manager.active()}


def test_for_duration_pending_then_firing_then_resolved(
    manager: AlertManager, clock: Clock, sent: list[Notification]
) -> None:
    manager.add_rule(AlertRule("HighCPU", "cpu_ratio", ">", 0.9, for_s=300, severity="critical"))
    (pending,) = manager.evaluate({"cpu_ratio": 0.95})
    assert pending.state == "pending"
    assert sent == []
    for _ in range(4):  # 4 minutes later the condition still holds: still pending
        clock.now += 60
        assert manager.evaluate({"cpu_ratio": 0.97}) == []
    assert _states(manager) == {"HighCPU": "pending"}
    clock.now += 60  # 300 s after it first held
    (firing,) = manager.evaluate({"cpu_ratio": 0.99})
    assert (firing.state, firing.fired_at, firing.value) == ("firing", clock.now, 0.99)
    assert firing.labels == {"alertname": "HighCPU", "severity": "critical"}
    assert [n.status for n in sent] == ["firing"]
    clock.now += 60
    (resolved,) = manager.evaluate({"cpu_ratio": 0.2})
    assert (resolved.state, resolved.resolved_at) == ("resolved", clock.now)
    assert [n.status for n in sent] == ["firing", "resolved"]
    assert manager.active() == []
    events = [e.event for e in manager.history("HighCPU")]
    assert events == ["pending", "firing", "resolved"]


def test_pending_that_clears_never_fires(
    manager: AlertManager, clock: Clock, sent: list[Notification]
) -> None:
    manager.add_rule(AlertRule("Spike", "latency_s", ">=", 1, for_s=120))
    manager.evaluate({"latency_s": 1.5})
    clock.now += 60
    assert manager.evaluate({"latency_s": 0.1}) == []
    clock.now += 120
    manager.evaluate({"latency_s": 2.0})  # a new pending period starts now
    assert manager.active()[0].active_at == clock.now
    assert sent == []
    assert [e.event for e in manager.history("Spike")] == ["pending", "inactive", "pending"]


def test_zero_for_fires_at_once(manager: AlertManager, sent: list[Notification]) -> None:
    manager.add_rule(AlertRule("Down", "up", "==", 0))
    (alert,) = manager.evaluate({"up": 0})
    assert alert.state == "firing"
    assert len(sent) == 1


@pytest.mark.parametrize(
    ("op", "value", "holds"),
    [(">", 5, False), (">=", 5, True), ("<", 4.9, True), ("<=", 5.1, False),
     ("==", 5, True), ("!=", 5, False), ("!=", 6, True), (">", math.nan, False)],
)  # fmt: skip
def test_operators(op: str, value: float, holds: bool) -> None:
    assert AlertRule("r", "x", op, 5).holds(value) is holds


def test_one_alert_per_series_with_labels_and_selectors(manager: AlertManager) -> None:
    manager.add_rule(
        AlertRule("DiskFull", "disk_used_ratio", ">", 0.9, labels={"team": "ops"},
                  summary="{labels[mount]} on {labels[host]} is {value:.0%} full")
    )  # fmt: skip
    manager.add_rule(AlertRule("RootFull", 'disk_used_ratio{mount="/"}', ">", 0.5))
    values = {
        'disk_used_ratio{host="a",mount="/"}': 0.95,
        'disk_used_ratio{host="a",mount="/data"}': 0.97,
        'disk_used_ratio{host="b",mount="/"}': 0.10,
    }
    changed = manager.evaluate(values)
    disk = sorted(a.annotations["summary"] for a in changed if a.name == "DiskFull")
    assert disk == ["/ on a is 95% full", "/data on a is 97% full"]
    (root,) = [a for a in changed if a.name == "RootFull"]
    assert root.labels["mount"] == "/" and root.labels["host"] == "a"
    assert {a.labels["team"] for a in changed if a.name == "DiskFull"} == {"ops"}


def test_vanished_series_resolves_but_absent_metric_is_skipped(manager: AlertManager) -> None:
    manager.add_rule(AlertRule("DiskFull", "disk_used_ratio", ">", 0.9))
    manager.evaluate({'disk_used_ratio{mount="/a"}': 0.95, 'disk_used_ratio{mount="/b"}': 0.99})
    assert len(manager.active()) == 2
    # Values of other metrics only: the rule is not evaluated, nothing changes.
    assert manager.evaluate({"load1": 3.0}) == []
    assert len(manager.active()) == 2
    # The metric is there but /b is gone (unmounted): /b resolves, /a keeps firing.
    (resolved,) = manager.evaluate({'disk_used_ratio{mount="/a"}': 0.96})
    assert (resolved.state, resolved.labels["mount"]) == ("resolved", "/b")
    assert [a.labels["mount"] for a in manager.active()] == ["/a"]


def test_samples_are_values_too(manager: AlertManager) -> None:
    manager.add_rule(AlertRule("HighLoad", "load1", ">", 4))
    samples = [Sample(0.0, "web-1", "load1", 9.0), Sample(0.0, "web-2", "load1", 1.0)]
    (alert,) = manager.evaluate(samples)
    assert alert.labels["host"] == "web-1"


def test_callable_value_source(manager: AlertManager) -> None:
    depth: list[float | None] = [None]
    manager.add_rule(AlertRule("QueueDeep", lambda: depth[0], ">", 100, summary="{metric}"))
    assert manager.evaluate({}) == []  # no data: nothing happens
    depth[0] = 500
    (alert,) = manager.evaluate({})
    assert alert.state == "firing"
    depth[0] = 3
    assert manager.evaluate({})[0].state == "resolved"


def test_a_failing_value_source_is_no_data(manager: AlertManager) -> None:
    def broken() -> float:
        raise OSError("queue unreachable")

    manager.add_rule(AlertRule("Broken", broken, ">", 1))
    assert manager.evaluate({}) == []


# -- acknowledgement and repeats ------------------------------------------------------------------


def test_ack_stops_repeat_notifications_until_resolved(
    clock: Clock, sent: list[Notification]
) -> None:
    manager = AlertManager(
        [AlertRule("Down", "up", "==", 0)], clock=clock, repeat_interval_s=600,
        notifiers=[CallbackNotifier(sent.append)],
    )  # fmt: skip
    manager.evaluate({"up": 0})
    clock.now += 600
    manager.evaluate({"up": 0})  # repeat interval passed: notified again
    assert [n.status for n in sent] == ["firing", "firing"]
    (acked,) = manager.ack("Down", by="alice", note="looking")
    assert (acked.state, acked.acked_by, acked.acked_at) == ("acknowledged", "alice", clock.now)
    for _ in range(5):
        clock.now += 600
        assert manager.evaluate({"up": 0}) == []
    assert len(sent) == 2, "an acknowledged alert was notified again"
    clock.now += 1
    (resolved,) = manager.evaluate({"up": 1})
    assert resolved.state == "resolved"
    assert [n.status for n in sent] == ["firing", "firing", "resolved"]
    # Firing again later is a new alert: not acknowledged, notified.
    clock.now += 1
    (again,) = manager.evaluate({"up": 0})
    assert (again.state, again.acked_by) == ("firing", None)
    assert len(sent) == 4
    detail = [e.detail for e in manager.history("Down") if e.event == "acknowledged"]
    assert detail == ["alice: looking"]


def test_ack_errors(manager: AlertManager) -> None:
    manager.add_rule(AlertRule("Slow", "latency", ">", 1, for_s=60))
    manager.evaluate({"latency": 5})
    with pytest.raises(
        AlertError, match=r"no firing alert 'Slow'; active alerts: Slow \(pending\)$"
    ):
        manager.ack("Slow", by="bob")  # pending: nothing to acknowledge yet
    with pytest.raises(AlertError, match="say who"):
        manager.ack("Slow", by="")


def test_ack_by_fingerprint(manager: AlertManager) -> None:
    manager.add_rule(AlertRule("Full", "used", ">", 0.9))
    manager.evaluate({'used{m="/a"}': 1.0, 'used{m="/b"}': 1.0})
    target = manager.active()[0]
    manager.ack(target.fingerprint, by="carol")
    assert sorted(a.state for a in manager.active()) == ["acknowledged", "firing"]


# -- manual alerts ----------------------------------------------------------------------------


def test_manual_alert_lifecycle(
    manager: AlertManager, clock: Clock, sent: list[Notification]
) -> None:
    alert = manager.raise_manual("deploy_failed", "error", "deploy of api failed", {"app": "api"})
    assert (alert.state, alert.manual, alert.severity) == ("firing", True, "error")
    assert alert.annotations["summary"] == "deploy of api failed"
    assert alert.labels == {"app": "api", "alertname": "deploy_failed", "severity": "error"}
    clock.now += 10
    manager.raise_manual("deploy_failed", "error", "still failing", {"app": "api"})
    assert len(sent) == 1, "raising the same alert again at once must not spam"
    assert manager.active()[0].annotations["summary"] == "still failing"
    manager.raise_manual("deploy_failed", "critical", "now critical", {"app": "api"})
    assert len(sent) == 2  # the level changed
    manager.evaluate({"anything": 1})  # rules never resolve manual alerts
    assert len(manager.active()) == 1
    (resolved,) = manager.resolve("deploy_failed")
    assert resolved.state == "resolved"
    assert [n.status for n in sent] == ["firing", "firing", "resolved"]


def test_manual_alert_bad_level(manager: AlertManager) -> None:
    with pytest.raises(AlertError, match="not one of info, warning, error, critical"):
        manager.raise_manual("x", "panic", "msg")


# -- persistence ------------------------------------------------------------------------------


def test_state_and_history_survive_a_restart(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "alerts.db"
    rules = [AlertRule("Down", "up", "==", 0), AlertRule("Slow", "latency", ">", 1, for_s=300)]
    first: list[Notification] = []
    manager = AlertManager(rules, path=path, clock=clock,
                           notifiers=[CallbackNotifier(first.append)])  # fmt: skip
    manager.evaluate({"up": 0, "latency": 5})
    manager.ack("Down", by="alice")
    manager.raise_manual("disk_replaced", "info", "swap the disk")
    manager.close()

    clock.now += 200
    second: list[Notification] = []
    manager = AlertManager(rules, path=path, clock=clock,
                           notifiers=[CallbackNotifier(second.append)])  # fmt: skip
    states = {a.name: (a.state, a.acked_by) for a in manager.active()}
    assert states == {
        "Down": ("acknowledged", "alice"),
        "Slow": ("pending", None),
        "disk_replaced": ("firing", None),
    }
    assert manager.evaluate({"up": 0, "latency": 5}) == []  # no re-notification after restart
    clock.now += 100  # the for-duration counts from before the restart
    (slow,) = manager.evaluate({"up": 0, "latency": 5})
    assert (slow.name, slow.state) == ("Slow", "firing")
    assert second and all(a.name == "Slow" for n in second for a in n.alerts)
    events = [(e.name, e.event) for e in manager.history()]
    assert events[:3] == [("Down", "firing"), ("Slow", "pending"), ("Down", "acknowledged")]
    assert {a.name for a in manager.alerts()} == {"Down", "Slow", "disk_replaced"}
    manager.close()


def test_history_is_bounded(tmp_path: Path, clock: Clock) -> None:
    manager = AlertManager([AlertRule("Flap", "up", "==", 0)], path=tmp_path / "a.db",
                           clock=clock, max_events=50)  # fmt: skip
    for i in range(150):
        clock.now += 1
        manager.evaluate({"up": i % 2})
    assert len(manager.history(limit=1000)) <= 150
    with sqlite3.connect(tmp_path / "a.db") as db:
        (count,) = db.execute("SELECT COUNT(*) FROM alert_events").fetchone()
    assert count <= 50 + 100  # pruned every 100 inserts down to max_events
    manager.close()


def test_a_corrupt_store_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(AlertError, match="left untouched"):
        AlertManager(path=path)
    assert path.read_bytes().startswith(b"this is not a database")


# -- rules and series -------------------------------------------------------------------------


def test_rule_validation() -> None:
    with pytest.raises(AlertError, match="threshold must be a number"):
        AlertRule("r", "x", ">", "high")  # type: ignore[arg-type]
    with pytest.raises(AlertError, match="for_s"):
        AlertRule("r", "x", ">", 1, for_s=-1)
    with pytest.raises(AlertError, match="severity"):
        AlertRule("r", "x", ">", 1, severity="fatal")
    with pytest.raises(AlertError, match=r"template field \{hostname\} is unknown"):
        AlertRule("r", "x", ">", 1, summary="{hostname} is down")
    with pytest.raises(AlertError, match="malformed"):
        AlertRule("r", "x", ">", 1, summary="{value")
    with pytest.raises(AlertError, match="closing brace"):
        AlertRule("r", 'x{a="b"', ">", 1)
    manager = AlertManager([AlertRule("r", "x", ">", 1)])
    with pytest.raises(AlertError, match="unique"):
        manager.add_rule(AlertRule("r", "y", ">", 1))


def test_remove_rule_resolves_its_alerts(manager: AlertManager, sent: list[Notification]) -> None:
    manager.add_rule(AlertRule("Down", "up", "==", 0))
    manager.evaluate({"up": 0})
    manager.remove_rule("Down")
    assert manager.active() == []
    assert [n.status for n in sent] == ["firing", "resolved"]


def test_series_keys_round_trip() -> None:
    labels = {"path": 'C:\\dir "x"', "host": "a"}
    key = series_key("m", labels)
    assert parse_series(key) == ("m", labels)
    with pytest.raises(AlertError, match="not closed"):
        parse_series('m{a="b}')


def test_rules_from_config() -> None:
    rules = rules_from_config([
        {"name": "Full", "expr": 'disk_used_ratio{mount="/"} > 0.9', "for": "10m",
         "labels": {"team": "ops"}, "summary": "{labels[mount]} full"},
        {"name": "Low", "metric": "free_gb", "op": "<", "threshold": 5},
    ])  # fmt: skip
    assert rules[0].selector == ("disk_used_ratio", {"mount": "/"})
    assert (rules[0].op, rules[0].threshold, rules[0].for_s) == (">", 0.9, 600.0)
    assert rules[1].for_s == 0.0
    with pytest.raises(AlertError, match="unknown keys"):
        rules_from_config([{"name": "x", "expr": "a > 1", "when": 3}])
    with pytest.raises(AlertError, match="must look like"):
        rules_from_config([{"name": "x", "expr": "a is big"}])
    with pytest.raises(AlertError, match="missing"):
        rules_from_config([{"name": "x", "metric": "a"}])


def test_alert_documents() -> None:
    manager = AlertManager([AlertRule("Down", "up", "==", 0, description="{metric} is {value}")],
                           clock=lambda: 0.0)  # fmt: skip
    (alert,) = manager.evaluate({'up{job="api"}': 0})
    hook = alert.to_webhook()
    assert hook["status"] == "firing"
    assert hook["startsAt"] == "1970-01-01T00:00:00.000Z"
    assert hook["endsAt"] == "0001-01-01T00:00:00Z"
    assert hook["annotations"]["description"] == "up is 0.0"
    assert alert.to_dict()["ends_at"] is None


# -- Lua ----------------------------------------------------------------------------------------


def test_lua_metrics_alert_goes_through_the_manager(
    manager: AlertManager, sent: list[Notification]
) -> None:
    from slothlab.lua import Runtime

    runtime = Runtime(context={"alerts": manager.lua_hook()}, output=lambda s, t: None)
    runtime.execute(
        "metrics.alert('disk_full', {level = 'critical', message = 'full', mount = '/'})"
    )
    (alert,) = manager.active()
    assert (alert.name, alert.severity, alert.manual) == ("disk_full", "critical", True)
    assert alert.labels["mount"] == "/"
    assert alert.annotations["summary"] == "full"
    assert [n.status for n in sent] == ["firing"]
    with pytest.raises(LuaError, match="alert level 'panic' is not one of"):
        runtime.execute("metrics.alert('x', {level = 'panic'})")
