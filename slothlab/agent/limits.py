"""Resource limits of an agent: CPU and memory ceilings read from the collector, and what to do.

Past a ceiling (``max_cpu_percent`` or ``max_memory_percent`` of the host), the agent either
holds new work in its queue until the host is back under (``queue``), refuses new tasks with 503
and a message (``reject``), or runs fewer tasks at once (``throttle``: ``throttle_capacity``).
Warning thresholds only log and show in the agent's metrics. The readings come from any
``snapshot()`` source — the host collector in the agent, a fake in tests.

>>> limits = ResourceLimits(max_cpu_percent=90, warn_memory_percent=70, action="reject")
>>> verdict = limits.evaluate({"cpu": {"percent": 95.0}, "memory": {"percent": 75.0}})
>>> verdict.over, verdict.warning, verdict.message
(True, True, 'CPU at 95% (limit 90%)')
>>> limits.evaluate({"cpu": {"percent": 10.0}, "memory": {"percent": 10.0}}).over
False
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from slothlab.errors import ConfigError

__all__ = ["ACTIONS", "LimitAction", "ResourceLimits", "SnapshotSource", "Verdict"]

LimitAction = Literal["queue", "reject", "throttle"]
ACTIONS: tuple[str, ...] = ("queue", "reject", "throttle")
"""What an agent may do past a limit."""


class SnapshotSource(Protocol):
    """Anything with ``snapshot()`` returning the collector's sample shape."""

    def snapshot(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Verdict:
    """What the limits say about one reading."""

    over: bool = False
    warning: bool = False
    message: str = ""
    readings: dict[str, float] = field(default_factory=dict)


_RESOURCES = (("cpu", "CPU"), ("memory", "memory"))


@dataclass(frozen=True)
class ResourceLimits:
    """CPU/memory ceilings (percent of the host; 0 = none), warnings, and the action past them.

    Attributes:
        max_cpu_percent: the CPU ceiling.
        max_memory_percent: the memory ceiling.
        warn_cpu_percent: log a warning past this CPU use.
        warn_memory_percent: log a warning past this memory use.
        action: ``queue``, ``reject`` or ``throttle``.
        throttle_capacity: tasks at once while throttled (default: half the capacity, at least 1).
    """

    max_cpu_percent: float = 0.0
    max_memory_percent: float = 0.0
    warn_cpu_percent: float = 0.0
    warn_memory_percent: float = 0.0
    action: str = "queue"
    throttle_capacity: int | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ConfigError(
                f"resource limit action {self.action!r} is not one of {', '.join(ACTIONS)}"
            )
        for name in ("max_cpu_percent", "max_memory_percent", "warn_cpu_percent"):
            value = getattr(self, name)
            if not 0 <= value <= 100:
                raise ConfigError(f"{name}={value!r} must be a percentage from 0 to 100")
        if not 0 <= self.warn_memory_percent <= 100:
            raise ConfigError("warn_memory_percent must be a percentage from 0 to 100")
        if self.throttle_capacity is not None and self.throttle_capacity < 1:
            raise ConfigError("throttle_capacity must be 1 or more")

    @property
    def active(self) -> bool:
        """True when any ceiling or warning is set."""
        return any(
            (
                self.max_cpu_percent,
                self.max_memory_percent,
                self.warn_cpu_percent,
                self.warn_memory_percent,
            )
        )

    def throttled(self, capacity: int) -> int:
        """Tasks at once while throttled."""
        wanted = self.throttle_capacity or max(1, capacity // 2)
        return min(wanted, capacity)

    def evaluate(self, snapshot: Mapping[str, Any]) -> Verdict:
        """Judge one collector snapshot (missing readings count as fine)."""
        readings: dict[str, float] = {}
        over: list[str] = []
        warned = False
        for key, label in _RESOURCES:
            value = _percent(snapshot, key)
            if value is None:
                continue
            readings[key] = value
            ceiling = getattr(self, f"max_{key}_percent")
            warn = getattr(self, f"warn_{key}_percent")
            if ceiling and value >= ceiling:
                over.append(f"{label} at {value:.0f}% (limit {ceiling:g}%)")
            if warn and value >= warn:
                warned = True
        return Verdict(bool(over), warned or bool(over), "; ".join(over), readings)


def _percent(snapshot: Mapping[str, Any], key: str) -> float | None:
    section = snapshot.get(key)
    if not isinstance(section, Mapping):
        return None
    value = section.get("percent")
    return float(value) if isinstance(value, int | float) else None
