"""Auto-remediation: rules from anomalies, forecasts and health to actions, with a record.

A :class:`Rule` pairs a condition (:func:`on_anomaly`, :func:`on_forecast`, :func:`on_health`
or any callable returning :class:`Trigger` s) with an action (:class:`LuaAction`,
:class:`ShellAction`, :class:`ScaleAction`). :meth:`Remediator.evaluate` checks every rule and,
per triggered host, runs the action unless the rule fired for that host within its cooldown.

**Dry run is the default**: actions are recorded as ``dry_run`` and not run until the
remediator is made with ``dry_run=False``. Every decision (``ok``, ``failed``, ``dry_run``,
``cooldown``) is a row in an SQLite file (:class:`ActionLog`). A dry run and a failure start
the cooldown too: a dry run shows what a live run would do, and a failing action is not
hammered.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> fired = []
>>> rule = Rule("grow", lambda r: [Trigger("web-1", "busy")], ScaleAction(
...     lambda host, delta: fired.append((host, delta))))
>>> bot = Remediator([rule], log_path=folder / "actions.db", clock=lambda: 100.0)
>>> [(a.rule, a.host, a.status) for a in bot.evaluate()], fired
([('grow', 'web-1', 'dry_run')], [])
>>> [a.status for a in bot.evaluate()]
['cooldown']
>>> bot.close()
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from slothlab.errors import AnalyticsError, SlothlabError

if TYPE_CHECKING:
    import pandas as pd

    from slothlab.analytics.forecasting import Forecaster
    from slothlab.lua.runtime import Capabilities
    from slothlab.metrics.history import MetricsHistory

__all__ = [
    "ActionLog",
    "ActionRecord",
    "LuaAction",
    "Remediator",
    "Rule",
    "ScaleAction",
    "ShellAction",
    "Trigger",
    "on_anomaly",
    "on_forecast",
    "on_health",
]


@dataclass(frozen=True)
class Trigger:
    """A condition met on a host: why, and the value behind it."""

    host: str
    reason: str
    value: float | None = None


Condition = Callable[["Remediator"], Sequence[Trigger]]
"""A rule's condition: given the remediator (history, health, clock), the triggers now."""


class Action(Protocol):
    """What a rule does: ``kind`` (lua, shell, scale), a description and ``run``."""

    kind: str

    def describe(self) -> str:
        """One line saying what the action does."""

    def run(self, rule: str, trigger: Trigger, bot: Remediator) -> str:
        """Do it; return its output. Raise to report a failure."""


@dataclass(frozen=True)
class Rule:
    """When ``condition`` triggers on a host, do ``action`` there, at most once a cooldown."""

    name: str
    condition: Condition
    action: Action
    cooldown_s: float = 600.0


@dataclass(frozen=True)
class ActionRecord:
    """One decision of the remediator, as stored in the log."""

    ts: float
    rule: str
    host: str
    kind: str
    action: str
    status: str
    reason: str
    value: float | None = None
    output: str = ""


# -- conditions --------------------------------------------------------------------------------


def on_anomaly(
    metric: str, *, host: str | None = None, min_score: float = 0.5, within_s: float = 900.0
) -> Condition:
    """Triggers on hosts whose ``<metric>_anomaly_score`` (written by ``detect_history``)
    reached ``min_score`` in the last ``within_s`` seconds."""
    from slothlab.analytics.detect import SCORE_SUFFIX

    def check(bot: Remediator) -> list[Trigger]:
        frame = bot.require_history().query(
            metric + SCORE_SUFFIX, host=host, start=bot.clock() - within_s
        )
        worst = frame.groupby("host")["value"].max() if not frame.empty else {}
        return [
            Trigger(str(h), f"{metric} anomaly score {s:.2f} >= {min_score}", float(s))
            for h, s in dict(worst).items()
            if s >= min_score
        ]

    return check


def on_forecast(
    metric: str,
    threshold: float,
    *,
    host: str | None = None,
    step: str = "5m",
    horizon_steps: int = 12,
    since: float = 86400.0,
    forecaster: Callable[[], Forecaster] | None = None,
) -> Condition:
    """Triggers on hosts whose forecast upper bound of ``metric`` (``step`` averages of the
    last ``since`` seconds) reaches ``threshold`` within ``horizon_steps``."""

    def check(bot: Remediator) -> list[Trigger]:
        from slothlab.analytics.forecasting import Naive

        history = bot.require_history()
        frame = history.query(metric, host=host, start=bot.clock() - since, step=step)
        out = []
        for name, part in frame.groupby("host"):
            series = part.groupby("ts")["value"].max()
            if len(series) < 8:
                continue
            stamps = series.index.to_numpy(dtype="datetime64[us]").astype("int64") / 1e6
            model = (forecaster or Naive)().fit(series.to_numpy(dtype=float), stamps)
            peak = float(model.predict(horizon_steps).upper.max())
            if peak >= threshold:
                why = f"{metric} forecast to reach {peak:.3g} >= {threshold:g}"
                why += f" within {horizon_steps} steps"
                out.append(Trigger(str(name), why, peak))
        return out

    return check


_LEVELS = {"healthy": 0, "warning": 1, "critical": 2}


def on_health(status: str = "critical", part: str = "overall", host: str = "") -> Condition:
    """Triggers when the health document's ``part`` is at ``status`` or worse.

    The document comes from the remediator's ``health`` callable (e.g. the Lua
    ``metrics.health_status`` shape: ``{"overall": "critical", "cpu": {"status": ...}}``).
    """
    if status not in _LEVELS:
        raise AnalyticsError(f"status must be one of {sorted(_LEVELS)}, not {status!r}")

    def check(bot: Remediator) -> list[Trigger]:
        if bot.health is None:
            raise AnalyticsError("on_health needs Remediator(health=...): a health callable")
        found = bot.health().get(part)
        level = found.get("status") if isinstance(found, Mapping) else found
        if _LEVELS.get(str(level), -1) >= _LEVELS[status]:
            return [Trigger(host or socket.gethostname(), f"health {part} is {level}")]
        return []

    return check


# -- actions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LuaAction:
    """Run a Lua chunk with the global ``event`` = {rule, host, reason, value}.

    The chunk runs on a fresh :class:`~slothlab.lua.runtime.Runtime` whose context carries the
    remediator's history; ``capabilities`` switches on ``exec``/``fs``. Its return values are
    the output; ``return false, "why"`` (or a Lua error) is a failure.
    """

    source: str
    capabilities: Capabilities | None = None
    kind: str = field(default="lua", init=False)

    def describe(self) -> str:
        first = self.source.strip().splitlines()[0] if self.source.strip() else ""
        return f"lua: {first[:80]}"

    def run(self, rule: str, trigger: Trigger, bot: Remediator) -> str:
        from slothlab.lua.runtime import Runtime

        context = {"history": bot.history} if bot.history is not None else {}
        runtime = Runtime(capabilities=self.capabilities, context=context, output=bot.output)
        runtime.set_global("event", _event(rule, trigger))
        results = runtime.execute(self.source, name=f"remediation:{rule}")
        if results and results[0] is False:
            raise AnalyticsError(str(results[1]) if len(results) > 1 else "the Lua action failed")
        return " ".join(str(r) for r in results)


@dataclass(frozen=True)
class ShellAction:
    """Run a shell command with ``SLOTHLAB_RULE``, ``_HOST``, ``_REASON``, ``_VALUE`` set.

    A non-zero exit status is a failure (its stderr is recorded).
    """

    command: str
    timeout_s: float = 60.0
    kind: str = field(default="shell", init=False)

    def describe(self) -> str:
        return f"shell: {self.command[:80]}"

    def run(self, rule: str, trigger: Trigger, bot: Remediator) -> str:
        from slothlab.lua.modules.exec import run_shell

        env = {
            f"SLOTHLAB_{k.upper()}": "" if v is None else str(v)
            for k, v in _event(rule, trigger).items()
        }
        result = run_shell(self.command, env=env, timeout_s=self.timeout_s)
        if not result.success:
            raise AnalyticsError(f"exit {result.exit_code}: {result.stderr.strip()[:500]}")
        return result.stdout.strip()


@dataclass(frozen=True)
class ScaleAction:
    """Call ``callback(host, delta)`` (e.g. the master's scale-out of an agent group)."""

    callback: Callable[[str, int], Any]
    delta: int = 1
    kind: str = field(default="scale", init=False)

    def describe(self) -> str:
        return f"scale: {self.delta:+d}"

    def run(self, rule: str, trigger: Trigger, bot: Remediator) -> str:
        result = self.callback(trigger.host, self.delta)
        return "" if result is None else str(result)


def _event(rule: str, trigger: Trigger) -> dict[str, Any]:
    return {"rule": rule, "host": trigger.host, "reason": trigger.reason, "value": trigger.value}


# -- the log and the loop ----------------------------------------------------------------------

_SCHEMA = """CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, rule TEXT NOT NULL, host TEXT NOT NULL,
    kind TEXT NOT NULL, action TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL,
    value REAL, output TEXT NOT NULL)"""
_FIRED = ("ok", "failed", "dry_run")


class ActionLog:
    """Every remediation decision in one SQLite file (WAL; safe to read while written)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._con = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise AnalyticsError(f"cannot use {self.path} as the action log: {exc}") from None

    def add(self, record: ActionRecord) -> None:
        """Store one decision."""
        with self._lock:
            self._con.execute(
                "INSERT INTO actions (ts, rule, host, kind, action, status, reason, value, output)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.ts,
                    record.rule,
                    record.host,
                    record.kind,
                    record.action,
                    record.status,
                    record.reason,
                    record.value,
                    record.output,
                ),
            )

    def last_fired(self, rule: str, host: str) -> float | None:
        """When ``rule`` last ran (or dry-ran, or failed) on ``host``."""
        marks = ", ".join("?" for _ in _FIRED)
        with self._lock:
            row = self._con.execute(
                f"SELECT max(ts) FROM actions WHERE rule = ? AND host = ? AND status IN ({marks})",
                (rule, host, *_FIRED),
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def records(self, rule: str | None = None) -> list[ActionRecord]:
        """Every decision (of one rule), oldest first."""
        sql = "SELECT ts, rule, host, kind, action, status, reason, value, output FROM actions"
        args: tuple[str, ...] = ()
        if rule is not None:
            sql, args = sql + " WHERE rule = ?", (rule,)
        with self._lock:
            rows = self._con.execute(sql + " ORDER BY id", args).fetchall()
        return [ActionRecord(*row) for row in rows]

    def frame(self) -> pd.DataFrame:
        """The log as a DataFrame (one row per decision, ts as UTC datetimes)."""
        import pandas as pd

        frame = pd.DataFrame([vars(r) for r in self.records()], columns=list(_COLUMNS))
        frame["ts"] = pd.to_datetime(frame["ts"], unit="s", utc=True)
        return frame

    def close(self) -> None:
        """Close the file."""
        self._con.close()


_COLUMNS = ActionRecord.__dataclass_fields__


class Remediator:
    """Checks rules and runs (or dry-runs) their actions, with cooldowns and a log.

    Args:
        rules: the rules, checked in order.
        history: the metrics history conditions read (and Lua actions see).
        health: a callable returning the health document :func:`on_health` reads.
        log_path: the SQLite action log (default ``<home>/remediation.db``).
        clock: epoch seconds now (cooldowns, windows, record times).
        dry_run: record what would run without running it (the default).
        output: where Lua ``print``/``log`` output goes (default: dropped).
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        history: MetricsHistory | None = None,
        health: Callable[[], Mapping[str, Any]] | None = None,
        log_path: str | Path | None = None,
        clock: Callable[[], float] = time.time,
        dry_run: bool = True,
        output: Callable[[str, str], None] | None = None,
    ) -> None:
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            raise AnalyticsError(f"rule names must be unique, got {names}")
        if log_path is None:
            from slothlab.config import home_dir

            log_path = home_dir() / "remediation.db"
        self.rules = list(rules)
        self.history = history
        self.health = health
        self.clock = clock
        self.dry_run = dry_run
        self.output = output or (lambda stream, text: None)
        self.log = ActionLog(log_path)

    def close(self) -> None:
        """Close the action log."""
        self.log.close()

    def __enter__(self) -> Remediator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def require_history(self) -> MetricsHistory:
        """The history, or an error saying conditions need one."""
        if self.history is None:
            raise AnalyticsError("this rule reads the metrics history: pass Remediator(history=)")
        return self.history

    def evaluate(self) -> list[ActionRecord]:
        """Check every rule once; run, dry-run or hold back each triggered action."""
        done = []
        for rule in self.rules:
            for trigger in rule.condition(self):
                done.append(self._handle(rule, trigger))
        return done

    def _handle(self, rule: Rule, trigger: Trigger) -> ActionRecord:
        now = self.clock()
        last = self.log.last_fired(rule.name, trigger.host)
        status, output = "dry_run", ""
        if last is not None and now - last < rule.cooldown_s:
            status = "cooldown"
            output = f"fired {now - last:.0f} s ago; cooldown {rule.cooldown_s:.0f} s"
        elif not self.dry_run:
            try:
                status, output = "ok", rule.action.run(rule.name, trigger, self)
            except (SlothlabError, OSError, ValueError) as exc:
                status, output = "failed", str(exc)
        record = ActionRecord(
            now,
            rule.name,
            trigger.host,
            rule.action.kind,
            rule.action.describe(),
            status,
            trigger.reason,
            trigger.value,
            output,
        )
        self.log.add(record)
        return record
