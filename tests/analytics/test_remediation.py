"""Auto-remediation: real Lua and shell actions, scale callbacks, dry run, cooldown, the log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slothlab.analytics.remediation import (
    ActionLog,
    LuaAction,
    Remediator,
    Rule,
    ScaleAction,
    ShellAction,
    Trigger,
    on_anomaly,
    on_forecast,
    on_health,
)
from slothlab.errors import AnalyticsError
from slothlab.lua.runtime import Capabilities
from slothlab.metrics import MetricsHistory

HOUR = 3600.0
NOW = 48 * HOUR


class Clock:
    """A settable clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _always(host: str = "web-1", value: float | None = 0.9):
    return lambda bot: [Trigger(host, "test", value)]


def test_dry_run_is_the_default_and_is_recorded(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    rule = Rule("touch", _always(), ShellAction(f"touch {marker}"))
    with Remediator([rule], log_path=tmp_path / "log.db", clock=Clock(10.0)) as bot:
        (record,) = bot.evaluate()
    assert record.status == "dry_run" and record.kind == "shell"
    assert record.action == f"shell: touch {marker}"
    assert not marker.exists()
    log = ActionLog(tmp_path / "log.db")  # the record outlives the remediator
    assert [(r.rule, r.host, r.status, r.ts) for r in log.records()] == [
        ("touch", "web-1", "dry_run", 10.0)
    ]
    log.close()


def test_shell_action_runs_with_the_event_in_its_environment(tmp_path: Path) -> None:
    out = tmp_path / "event.txt"
    cmd = f'echo "$SLOTHLAB_RULE $SLOTHLAB_HOST $SLOTHLAB_VALUE" > {out}; echo done'
    rules = [
        Rule("restart", _always("db-1", 0.75), ShellAction(cmd)),
        Rule("broken", _always(), ShellAction("echo nope >&2; exit 3")),
    ]
    with Remediator(rules, log_path=tmp_path / "log.db", dry_run=False) as bot:
        ok, failed = bot.evaluate()
    assert out.read_text() == "restart db-1 0.75\n"
    assert (ok.status, ok.output) == ("ok", "done")
    assert failed.status == "failed" and failed.output == "exit 3: nope"


def test_lua_action_sees_the_event_and_can_fail(tmp_path: Path) -> None:
    out = tmp_path / "lua.txt"
    source = f"""
        assert(fs.write({str(out)!r}, event.rule .. ":" .. event.host))
        return "handled " .. event.host, event.value * 2
    """
    caps = Capabilities(fs=True)
    rules = [
        Rule("lua-ok", _always("web-2", 0.5), LuaAction(source, caps)),
        Rule("lua-false", _always(), LuaAction('return false, "disk still full"')),
        Rule("lua-error", _always(), LuaAction("error('boom')")),
    ]
    with Remediator(rules, log_path=tmp_path / "log.db", dry_run=False) as bot:
        ok, refused, raised = bot.evaluate()
    assert out.read_text() == "lua-ok:web-2"
    assert (ok.status, ok.output) == ("ok", "handled web-2 1.0")
    assert (refused.status, refused.output) == ("failed", "disk still full")
    assert raised.status == "failed" and "boom" in raised.output


def test_cooldown_per_rule_and_host_with_an_injected_clock(tmp_path: Path) -> None:
    calls: list[tuple[str, int]] = []
    clock = Clock(1000.0)
    both = lambda bot: [Trigger("a", "x"), Trigger("b", "x")]  # noqa: E731
    rule = Rule("grow", both, ScaleAction(lambda h, d: calls.append((h, d)), delta=2), 300.0)
    with Remediator([rule], log_path=tmp_path / "log.db", clock=clock, dry_run=False) as bot:
        assert [r.status for r in bot.evaluate()] == ["ok", "ok"]
        clock.now += 299
        held = bot.evaluate()
        assert [r.status for r in held] == ["cooldown", "cooldown"]
        assert held[0].output == "fired 299 s ago; cooldown 300 s"
        clock.now += 1
        assert [r.status for r in bot.evaluate()] == ["ok", "ok"]
        frame = bot.log.frame()
    assert calls == [("a", 2), ("b", 2), ("a", 2), ("b", 2)]
    assert list(frame["status"]) == ["ok", "ok", "cooldown", "cooldown", "ok", "ok"]
    assert str(frame["ts"].dt.tz) == "UTC"


@pytest.fixture
def history(tmp_path: Path):
    h = MetricsHistory(tmp_path / "m.duckdb", clock=Clock(NOW), background=False)
    t = np.arange(0.0, NOW, 60.0)
    rng = np.random.default_rng(3)
    load = 1.0 + 0.05 * rng.standard_normal(len(t))
    load[-30:] = 9.0  # web-1 jumps in the last half hour
    climbing = np.linspace(0.2, 0.88, len(t))  # db-1's disk approaches 0.9
    h.write(
        pd.concat(
            [
                pd.DataFrame({"ts": t, "host": "web-1", "metric": "load1", "value": load}),
                pd.DataFrame({"ts": t, "host": "web-2", "metric": "load1", "value": load[::-1]}),
                pd.DataFrame({"ts": t, "host": "db-1", "metric": "disk", "value": climbing}),
                pd.DataFrame({"ts": t, "host": "web-1", "metric": "disk", "value": 0.3}),
            ],
            ignore_index=True,
        )
    )
    yield h
    h.close()


def test_anomaly_condition_reads_scores_written_by_detect_history(
    history: MetricsHistory, tmp_path: Path
) -> None:
    from slothlab.analytics import detect_history

    for host in ("web-1", "web-2"):
        detect_history(history, "load1", host)
    rule = Rule("hot", on_anomaly("load1", within_s=HOUR), ScaleAction(lambda h, d: None))
    with Remediator([rule], history=history, log_path=tmp_path / "log.db", clock=Clock(NOW)) as bot:
        records = bot.evaluate()
    assert [r.host for r in records] == ["web-1"]  # web-2's jump is two days old
    assert records[0].value is not None and records[0].value >= 0.5
    assert "load1 anomaly score" in records[0].reason


def test_forecast_condition_triggers_before_the_threshold(
    history: MetricsHistory, tmp_path: Path
) -> None:
    rule = Rule(
        "disk-soon",
        on_forecast("disk", 0.9, step="1h", horizon_steps=24, since=48 * HOUR),
        ShellAction("true"),
    )
    with Remediator([rule], history=history, log_path=tmp_path / "log.db", clock=Clock(NOW)) as bot:
        records = bot.evaluate()
    assert [r.host for r in records] == ["db-1"]
    assert records[0].value is not None and records[0].value >= 0.9


def test_health_condition_and_missing_sources(tmp_path: Path) -> None:
    state = {"overall": "warning", "disk": {"usage": 97.0, "status": "critical"}}
    rules = [
        Rule("disk", on_health("critical", part="disk", host="web-1"), ShellAction("true")),
        Rule("all", on_health("critical", host="web-1"), ShellAction("true")),
    ]
    log = tmp_path / "log.db"
    with Remediator(rules, health=lambda: state, log_path=log) as bot:
        assert [(r.rule, r.reason) for r in bot.evaluate()] == [("disk", "health disk is critical")]
    with (
        Remediator(rules, log_path=log) as bot,
        pytest.raises(AnalyticsError, match="health="),
    ):
        bot.evaluate()
    rule = Rule("x", on_anomaly("load1"), ShellAction("true"))
    with Remediator([rule], log_path=log) as bot, pytest.raises(AnalyticsError, match="history="):
        bot.evaluate()
    with pytest.raises(AnalyticsError, match="status must be"):
        on_health("dire")
    with pytest.raises(AnalyticsError, match="unique"):
        Remediator([rule, rule], log_path=log)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "log.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(AnalyticsError, match=r"cannot use .* as the action log"):
        ActionLog(bad)
