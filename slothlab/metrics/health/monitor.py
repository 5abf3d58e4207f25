"""Run health checks on their intervals, keep each check's confirmed state, run recoveries.

A check's state changes only after ``failure_threshold`` consecutive bad results (warning or
critical) or ``success_threshold`` consecutive ok results, so one bad sample does not flip it.
Before that a new check is ``"unknown"`` (counted as ok in the overall status). When a check
is confirmed critical and its latest result is bad, its :class:`~.base.Recovery` runs, at
most once per cooldown; every attempt is recorded.

Tests drive the monitor with :meth:`HealthMonitor.tick` and a fake clock; a service calls
:meth:`HealthMonitor.start` and :meth:`HealthMonitor.stop`.

>>> from slothlab.metrics.health.checks import StaticSource, ThresholdCheck
>>> source = StaticSource({"cpu": 99.0})
>>> check = ThresholdCheck("cpu", "cpu", critical=90, source=source, failure_threshold=2)
>>> monitor = HealthMonitor([check], clock=lambda: 0.0)
>>> monitor.tick(0.0)[0].status, monitor.state("cpu").status
('critical', 'unknown')
>>> monitor.tick(30.0)[0].status, monitor.state("cpu").status
('critical', 'critical')
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from slothlab._types import Clock
from slothlab.errors import ConfigError, LuaError
from slothlab.metrics.health._shell import run_shell
from slothlab.metrics.health.base import Check, CheckResult, Recovery, Status, worst

if TYPE_CHECKING:
    from slothlab.lua.runtime import Runtime

__all__ = ["CheckState", "HealthMonitor", "RecoveryAttempt", "StateChange", "StateName"]

log = logging.getLogger("slothlab.health")

StateName: TypeAlias = Status | Literal["unknown"]
"""A check's confirmed state: a status, or ``"unknown"`` before the thresholds are met."""

StateChange = Callable[[str, "StateName", "StateName", CheckResult], None]
"""``listener(check_name, old_state, new_state, result)``, called on every confirmed change."""


@dataclass(frozen=True)
class RecoveryAttempt:
    """One run of a recovery action.

    Attributes:
        check: the check it was for.
        at: when it ran (clock seconds).
        kind: ``"command"`` or ``"lua"``.
        ok: the action succeeded (exit 0; a Lua chunk that did not return false or fail).
        message: its output or error, one line.
    """

    check: str
    at: float
    kind: str
    ok: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "check": self.check,
            "at": self.at,
            "kind": self.kind,
            "ok": self.ok,
            "message": self.message,
        }


@dataclass
class CheckState:
    """What the monitor knows about one check (a copy is handed out; changing it does nothing).

    Attributes:
        status: the confirmed state.
        since: when it took that state (None: never ran).
        last_result: the newest result.
        last_run: when the newest result came.
        next_run: when the check runs next.
        ok_streak: consecutive ok results up to now.
        bad_streak: consecutive warning/critical results up to now.
        runs: results so far.
        last_recovery: when the recovery action last ran.
    """

    status: StateName = "unknown"
    since: float | None = None
    last_result: CheckResult | None = None
    last_run: float | None = None
    next_run: float = 0.0
    ok_streak: int = 0
    bad_streak: int = 0
    runs: int = 0
    last_recovery: float | None = None
    history: deque[tuple[float, CheckResult]] = field(default_factory=deque)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the history)."""
        result = self.last_result
        return {
            "status": self.status,
            "message": result.message if result else "not run yet",
            "latency_s": round(result.latency_s, 6) if result else None,
            "details": dict(result.details) if result else {},
            "last_result": result.status if result else None,
            "since": self.since,
            "last_run": self.last_run,
            "consecutive_failures": self.bad_streak,
            "consecutive_successes": self.ok_streak,
            "runs": self.runs,
        }


class HealthMonitor:
    """Runs checks when they are due and keeps their state.

    Args:
        checks: the checks (names must be unique).
        clock: wall-clock seconds (default ``time.time``); scheduling and records use it.
        history_size: results kept per check, and recovery attempts kept in all.
        lua_runtime: runtime (or factory) for Lua recovery actions (default: a sandboxed one
            with ``exec`` allowed, made on first use).
        on_change: called after every confirmed state change.
    """

    def __init__(
        self,
        checks: Iterable[Check] = (),
        *,
        clock: Clock = time.time,
        history_size: int = 100,
        lua_runtime: Runtime | Callable[[], Runtime] | None = None,
        on_change: StateChange | None = None,
    ) -> None:
        if history_size < 1:
            raise ConfigError(f"history_size must be 1 or more, got {history_size!r}")
        self.clock = clock
        self.history_size = history_size
        self.on_change = on_change
        self._lua_runtime = lua_runtime
        self._checks: dict[str, Check] = {}
        self._states: dict[str, CheckState] = {}
        self._recoveries: deque[RecoveryAttempt] = deque(maxlen=history_size)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for check in checks:
            self.add(check)

    # -- the set of checks ----------------------------------------------------------------------

    def add(self, check: Check) -> None:
        """Add a check; it runs at the next tick."""
        with self._lock:
            if check.name in self._checks:
                raise ConfigError(f"a health check named {check.name!r} exists; names are unique")
            self._checks[check.name] = check
            self._states[check.name] = CheckState(history=deque(maxlen=self.history_size))

    def remove(self, name: str) -> None:
        """Remove a check and its state."""
        with self._lock:
            self._get(name)
            del self._checks[name], self._states[name]

    @property
    def checks(self) -> dict[str, Check]:
        """The checks by name (a copy)."""
        with self._lock:
            return dict(self._checks)

    def _get(self, name: str) -> Check:
        try:
            return self._checks[name]
        except KeyError:
            known = ", ".join(sorted(self._checks)) or "none"
            raise ConfigError(f"no health check named {name!r}; known: {known}") from None

    # -- running ----------------------------------------------------------------------------------

    def tick(self, now: float | None = None) -> list[CheckResult]:
        """Run every check that is due at ``now`` (default: the clock); return their results."""
        now = self.clock() if now is None else now
        with self._lock:
            due = [c for c in self._checks.values() if self._states[c.name].next_run <= now]
        return [self._run(check, now) for check in due]

    def run_now(self, name: str, now: float | None = None) -> CheckResult:
        """Run one check at once, due or not."""
        with self._lock:
            check = self._get(name)
        return self._run(check, self.clock() if now is None else now)

    def _run(self, check: Check, now: float) -> CheckResult:
        start = time.monotonic()
        try:
            result = check.run()
        except Exception as exc:  # a check's bug must not stop the others
            log.exception("health check %r raised", check.name)
            result = CheckResult("critical", f"check raised {type(exc).__name__}: {exc}")
        if result.latency_s == 0.0:
            result = replace(result, latency_s=time.monotonic() - start)
        change = self._record(check, result, now)
        if change is not None and self.on_change is not None:
            self._notify(check.name, change, result)
        self._maybe_recover(check, result, now)
        return result

    def _record(
        self, check: Check, result: CheckResult, now: float
    ) -> tuple[StateName, StateName] | None:
        with self._lock:
            state = self._states.get(check.name)
            if state is None:  # removed while it ran
                return None
            state.runs += 1
            state.last_result, state.last_run = result, now
            state.next_run = now + check.interval_s
            state.history.append((now, result))
            if result.ok:
                state.ok_streak, state.bad_streak = state.ok_streak + 1, 0
            else:
                state.ok_streak, state.bad_streak = 0, state.bad_streak + 1
            new = state.status
            if result.ok and state.ok_streak >= check.success_threshold:
                new = "ok"
            elif not result.ok and state.bad_streak >= check.failure_threshold:
                new = result.status
            if new == state.status:
                return None
            old, state.status, state.since = state.status, new, now
            return old, new

    def _notify(self, name: str, change: tuple[StateName, StateName], result: CheckResult) -> None:
        assert self.on_change is not None
        try:
            self.on_change(name, change[0], change[1], result)
        except Exception:
            log.exception("health on_change listener failed for %r", name)

    # -- recovery ---------------------------------------------------------------------------------

    def _maybe_recover(self, check: Check, result: CheckResult, now: float) -> None:
        recovery = check.recovery
        if recovery is None or result.ok:
            return
        with self._lock:
            state = self._states.get(check.name)
            if state is None or state.status != "critical":
                return
            last = state.last_recovery
            if last is not None and now - last < recovery.cooldown_s:
                return
            state.last_recovery = now
        ok, message = self._execute(recovery)
        attempt = RecoveryAttempt(check.name, now, recovery.kind, ok, message)
        log.warning("recovery for %r ran: ok=%s %s", check.name, ok, message)
        with self._lock:
            self._recoveries.append(attempt)

    def _execute(self, recovery: Recovery) -> tuple[bool, str]:
        if recovery.command is not None:
            out = run_shell(recovery.command, timeout_s=recovery.timeout_s)
            if out.error or out.timed_out:
                return False, out.error or f"timed out after {recovery.timeout_s:g} s"
            return out.exit_code == 0, f"exit {out.exit_code}: {out.output.strip()[:200]}"
        try:
            values = self._runtime().execute(
                recovery.source, "recovery", timeout_s=recovery.timeout_s
            )
        except LuaError as exc:
            return False, f"Lua error: {exc}"
        ok = not values or (values[0] is not False and values[0] is not None)
        message = str(values[1]) if len(values) > 1 and values[1] is not None else ""
        return ok, message

    def _runtime(self) -> Runtime:
        from slothlab.lua.runtime import Capabilities, Runtime

        given = self._lua_runtime
        if isinstance(given, Runtime):
            return given
        runtime = given() if given is not None else Runtime(capabilities=Capabilities(exec=True))
        self._lua_runtime = runtime
        return runtime

    def recoveries(self) -> list[RecoveryAttempt]:
        """Recovery attempts, oldest first (the newest ``history_size``)."""
        with self._lock:
            return list(self._recoveries)

    # -- reading ----------------------------------------------------------------------------------

    def state(self, name: str) -> CheckState:
        """A copy of one check's state."""
        with self._lock:
            self._get(name)
            state = self._states[name]
            return replace(state, history=deque(state.history, maxlen=self.history_size))

    def states(self) -> dict[str, CheckState]:
        """Copies of every check's state, by name."""
        with self._lock:
            return {name: self.state(name) for name in self._checks}

    def history(self, name: str) -> list[tuple[float, CheckResult]]:
        """``(time, result)`` pairs of one check, oldest first."""
        return list(self.state(name).history)

    def status(self) -> Status:
        """The overall status: the worst confirmed state (``"unknown"`` counts as ok)."""
        with self._lock:
            confirmed = [s.status for s in self._states.values() if s.status != "unknown"]
        return worst(confirmed)

    # -- background thread ------------------------------------------------------------------------

    def start(self) -> None:
        """Run the checks in a daemon thread until :meth:`stop`."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="slothlab-health", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread and wait for it (at most ``timeout_s``; a check in flight finishes)."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        self._thread = None

    def close(self) -> None:
        """Stop the thread and close every check."""
        self.stop()
        for check in self.checks.values():
            check.close()

    @property
    def running(self) -> bool:
        """True while the background thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # keep the thread alive whatever a check or listener does
                log.exception("health monitor tick failed")
            self._stop.wait(self._delay())

    def _delay(self) -> float:
        with self._lock:
            due = min((s.next_run for s in self._states.values()), default=None)
        if due is None:
            return 1.0
        return min(max(due - self.clock(), 0.01), 1.0)

    def __enter__(self) -> HealthMonitor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
