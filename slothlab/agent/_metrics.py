"""The agent's own Prometheus metrics (tasks by final state, running, queued, durations), and
the custom metrics its heartbeats carry to the master's history.

Custom metrics in heartbeats: a heartbeat's ``metrics`` are flat ``name -> number`` pairs with
no labels, at most 200, which the master writes to its history. :func:`custom_heartbeat_metrics`
adds, for each custom metric (sorted by name, at most :data:`MAX_HEARTBEAT_CUSTOM`): a counter's
total over all its tag sets (``<name>_total``), a histogram's or timer's ``<name>_count`` and
``<name>_sum`` over all tag sets, and a gauge's untagged value (a gauge's tagged series cannot be
summed meaningfully, so they stay on ``/metrics`` only).

>>> from slothlab.metrics import CustomMetrics
>>> custom = CustomMetrics()
>>> _ = custom.counter("jobs_total", 2, {"kind": "a"}), custom.counter("jobs_total", 3)
>>> custom.gauge("queue_depth", 4); custom.gauge("queue_depth", 9, {"queue": "x"})
>>> custom.record_timer("step", 250.0, {"step": "fetch"})
>>> custom_heartbeat_metrics(custom)
{'jobs_total': 5.0, 'queue_depth': 4.0, 'step_seconds_count': 1.0, 'step_seconds_sum': 0.25}
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from slothlab.agent.executor import Executor
from slothlab.agent.tasks import TaskRecord
from slothlab.protocol import Heartbeat

if TYPE_CHECKING:
    from slothlab.metrics.custom import CustomMetrics

__all__ = ["MAX_HEARTBEAT_CUSTOM", "AgentMetrics", "custom_heartbeat_metrics", "with_custom"]

log = logging.getLogger("slothlab.agent")

MAX_HEARTBEAT_CUSTOM = 150
"""Custom metric values one heartbeat carries at most (the heartbeat holds 200 numbers)."""

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


class AgentMetrics:
    """A ``prometheus_client`` registry fed by the executor's finished tasks.

    ``slothlab_tasks_total{status}``, ``slothlab_tasks_running``, ``slothlab_tasks_queued``,
    ``slothlab_agent_capacity`` and ``slothlab_task_duration_seconds{kind}`` (start to end).
    """

    def __init__(self, executor: Executor) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.tasks = Counter(
            "slothlab_tasks",
            "Tasks that reached a final state, by that state",
            ["status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "slothlab_task_duration_seconds",
            "Run time of finished tasks (start to end)",
            ["kind"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        running = Gauge("slothlab_tasks_running", "Tasks running now", registry=self.registry)
        queued = Gauge("slothlab_tasks_queued", "Tasks waiting to run", registry=self.registry)
        capacity = Gauge(
            "slothlab_agent_capacity", "Tasks the agent runs at once now", registry=self.registry
        )
        running.set_function(lambda: executor.counts()["running"])
        queued.set_function(lambda: executor.counts()["queued"])
        capacity.set_function(lambda: executor.counts()["effective_capacity"])
        self.counts: dict[str, int] = {}
        self._by_state: dict[str, Any] = {}
        self._by_kind: dict[str, Any] = {}
        executor.add_listener(self.observe)

    def observe(self, record: TaskRecord) -> None:
        """Count a finished task."""
        state = record.state
        counter = self._by_state.get(state)
        if counter is None:  # a labelled child is looked up once per value, not per task
            counter = self._by_state[state] = self.tasks.labels(status=state)
        counter.inc()
        self.counts[state] = self.counts.get(state, 0) + 1
        if record.started_at is not None and record.finished_at is not None:
            elapsed = max(0.0, record.finished_at - record.started_at)
            kind = record.request.kind
            histogram = self._by_kind.get(kind)
            if histogram is None:
                histogram = self._by_kind[kind] = self.duration.labels(kind=kind)
            histogram.observe(elapsed)

    def summary(self) -> dict[str, Any]:
        """Finished tasks by state (for ``/v1/metrics``)."""
        return {"tasks_total": dict(self.counts)}


def custom_heartbeat_metrics(
    custom: CustomMetrics, limit: int = MAX_HEARTBEAT_CUSTOM, skip: Collection[str] = ()
) -> dict[str, float]:
    """Flat ``name -> value`` pairs of ``custom`` for a heartbeat (see the module's rule), at
    most ``limit``, leaving out the names in ``skip`` (the host's own)."""
    out: dict[str, float] = {}
    for family in sorted(custom.families(), key=lambda f: str(f["name"])):
        for key, value in _flat(family).items():
            if len(out) >= limit:
                return out
            if key not in skip:
                out[key] = value
    return out


def _flat(family: dict[str, Any]) -> dict[str, float]:
    name, kind, rows = family["name"], family["kind"], family["series"]
    if kind == "counter":
        return {f"{name}_total": float(sum(r["value"] for r in rows))}
    if kind == "gauge":
        plain = [r["value"] for r in rows if not any(r["labels"])]
        return {name: float(plain[0])} if plain else {}
    return {
        f"{name}_count": float(sum(r["buckets"][-1] for r in rows)),
        f"{name}_sum": float(sum(r["sum"] for r in rows)),
    }


def with_custom(
    heartbeat: Callable[[], Heartbeat], custom: CustomMetrics, limit: int = MAX_HEARTBEAT_CUSTOM
) -> Callable[[], Heartbeat]:
    """``heartbeat`` with the custom metrics added (the host's own numbers win a name clash).

    What ``slothlab agent start`` hands its :class:`~slothlab.agent.Registrar`.
    """

    def beat() -> Heartbeat:
        base = heartbeat()
        room = max(0, min(limit, 200 - len(base.metrics)))
        extra = custom_heartbeat_metrics(custom, room, skip=base.metrics) if room else {}
        if not extra:
            return base
        return base.model_copy(update={"metrics": {**base.metrics, **extra}})

    return beat
