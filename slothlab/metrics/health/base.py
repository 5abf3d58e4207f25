"""The contract of a health check: :class:`Check` runs once and returns a :class:`CheckResult`.

A check knows *what* to probe (a threshold, a URL, a port, a command, a Lua chunk) and *how
often and how patiently*: its interval, its timeout, how many consecutive results confirm a
change of state (``success_threshold`` / ``failure_threshold``) and an optional
:class:`Recovery` action. The :class:`~slothlab.metrics.health.monitor.HealthMonitor` does the
scheduling and the state keeping.

>>> class Always(Check):
...     def run(self) -> CheckResult:
...         return CheckResult("ok", "fine")
>>> check = Always("always", interval_s=5)
>>> check.run().status, check.interval_s, check.failure_threshold
('ok', 5.0, 3)
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, cast

from slothlab.errors import ConfigError

__all__ = [
    "STATUSES",
    "Check",
    "CheckResult",
    "Recovery",
    "Status",
    "is_status",
    "worst",
]

Status: TypeAlias = Literal["ok", "warning", "critical"]
"""The status of one result, one check or the whole host."""

STATUSES: tuple[Status, ...] = ("ok", "warning", "critical")
"""Every status, from best to worst."""

_RANK = {status: rank for rank, status in enumerate(STATUSES)}


def is_status(value: object) -> bool:
    """True when ``value`` is one of ``"ok"``, ``"warning"``, ``"critical"``.

    >>> is_status("warning"), is_status("fine")
    (True, False)
    """
    return isinstance(value, str) and value in _RANK


def worst(statuses: Iterable[Status]) -> Status:
    """The worst of ``statuses`` (``"ok"`` for none).

    >>> worst(["ok", "critical", "warning"])
    'critical'
    >>> worst([])
    'ok'
    """
    return max(statuses, key=_RANK.__getitem__, default="ok")


@dataclass(frozen=True)
class CheckResult:
    """What one run of a check found.

    Attributes:
        status: ``"ok"``, ``"warning"`` or ``"critical"``.
        message: one line for a person ("HTTP 200 in 12 ms").
        latency_s: how long the probe took (the monitor fills it in when the check did not).
        details: JSON-ready facts (the value read, the status code, the exit code, ...).

    >>> CheckResult("critical", "port 5432 refused").to_dict()["status"]
    'critical'
    """

    status: Status
    message: str = ""
    latency_s: float = 0.0
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not is_status(self.status):
            raise ValueError(
                f"status {self.status!r} is not one of {', '.join(STATUSES)}; use one of those"
            )

    @property
    def ok(self) -> bool:
        """True when the status is ``"ok"``."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the result."""
        return {
            "status": self.status,
            "message": self.message,
            "latency_s": round(self.latency_s, 6),
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class Recovery:
    """An action run when a check is confirmed critical: a shell command or a Lua chunk.

    The monitor runs it at most once per ``cooldown_s``, and records every attempt.

    Attributes:
        command: a shell command (run with ``/bin/sh -c``; its process group is killed at
            ``timeout_s``).
        lua: Lua code run on a :class:`~slothlab.lua.Runtime`; it may return ``ok, message``.
        cooldown_s: the least time between two attempts.
        timeout_s: how long the action may run.

    >>> Recovery(command="systemctl restart nginx", cooldown_s=300).kind
    'command'
    >>> Recovery()
    Traceback (most recent call last):
    ...
    slothlab.errors.ConfigError: a recovery action needs exactly one of command= or lua=
    """

    command: str | None = None
    lua: str | None = None
    cooldown_s: float = 300.0
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if (self.command is None) == (self.lua is None):
            raise ConfigError("a recovery action needs exactly one of command= or lua=")
        _positive("recovery cooldown_s", self.cooldown_s, allow_zero=True)
        _positive("recovery timeout_s", self.timeout_s)

    @property
    def kind(self) -> Literal["command", "lua"]:
        """``"command"`` or ``"lua"``."""
        return "command" if self.command is not None else "lua"

    @property
    def source(self) -> str:
        """The command line or the Lua code."""
        return cast(str, self.command if self.command is not None else self.lua)


class Check(ABC):
    """A health check: subclasses implement :meth:`run`.

    Args:
        name: unique within a monitor; the key in the ``/health`` document.
        interval_s: seconds between two runs.
        timeout_s: the longest one run may take; the probe itself enforces it.
        success_threshold: consecutive ok results that turn a failing check ok again.
        failure_threshold: consecutive warning/critical results that make a check fail; one
            bad sample never flips the state on its own unless this is 1.
        recovery: an action to run when the check is confirmed critical.

    :meth:`run` should not raise: a probe that fails returns a ``"critical"`` result. If it
    raises anyway, the monitor turns the exception into a critical result.
    """

    kind: str = "check"

    def __init__(
        self,
        name: str,
        *,
        interval_s: float = 30.0,
        timeout_s: float = 10.0,
        success_threshold: int = 1,
        failure_threshold: int = 3,
        recovery: Recovery | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError("a health check needs a non-empty name= (a string)")
        self.name = name
        self.interval_s = _positive(f"check {name!r} interval_s", interval_s)
        self.timeout_s = _positive(f"check {name!r} timeout_s", timeout_s)
        self.success_threshold = _count(f"check {name!r} success_threshold", success_threshold)
        self.failure_threshold = _count(f"check {name!r} failure_threshold", failure_threshold)
        self.recovery = recovery

    @abstractmethod
    def run(self) -> CheckResult:
        """Probe once and say what was found."""

    def close(self) -> None:
        """Release what the check holds (connections); the default has nothing to release."""
        return None

    def describe(self) -> dict[str, Any]:
        """The check's settings, JSON-ready (shown in the ``/health`` document)."""
        return {
            "kind": self.kind,
            "interval_s": self.interval_s,
            "timeout_s": self.timeout_s,
            "success_threshold": self.success_threshold,
            "failure_threshold": self.failure_threshold,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _positive(what: str, value: Any, *, allow_zero: bool = False) -> float:
    ok_type = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok_type or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "more than zero"
        raise ConfigError(f"{what} must be a number of seconds {bound}, got {value!r}")
    return float(value)


def _count(what: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{what} must be a whole number of 1 or more, got {value!r}")
    return value
