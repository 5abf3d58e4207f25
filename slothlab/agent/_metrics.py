"""The agent's own Prometheus metrics: tasks by final state, running, queued, durations."""

from __future__ import annotations

from typing import Any

from slothlab.agent.executor import Executor
from slothlab.agent.tasks import TaskRecord

__all__ = ["AgentMetrics"]

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
        executor.add_listener(self.observe)

    def observe(self, record: TaskRecord) -> None:
        """Count a finished task."""
        state = record.state
        self.tasks.labels(status=state).inc()
        self.counts[state] = self.counts.get(state, 0) + 1
        if record.started_at is not None and record.finished_at is not None:
            elapsed = max(0.0, record.finished_at - record.started_at)
            self.duration.labels(kind=record.request.kind).observe(elapsed)

    def summary(self) -> dict[str, Any]:
        """Finished tasks by state (for ``/v1/metrics``)."""
        return {"tasks_total": dict(self.counts)}
