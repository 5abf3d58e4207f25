"""Agent metrics into the DuckDB history: the master is its single writer.

Agents send a metrics snapshot with every heartbeat; :class:`MetricsIntake` turns it into
samples (``host`` = the agent's name, ``metric`` = the key, plus
``slothlab_agent_tasks_running`` and ``slothlab_agent_tasks_queued``), buffers them as columns and
hands the history one Arrow batch per :meth:`~MetricsIntake.flush` (the master flushes every
second and on shutdown). A key that is not a valid metric name is skipped and counted.

>>> from slothlab.metrics import MetricsHistory
>>> from slothlab.protocol import Heartbeat
>>> history = MetricsHistory(":memory:", background=False)
>>> intake = MetricsIntake(history)
>>> intake.receive("web-1", Heartbeat(running=2, queued=0, metrics={"cpu_percent": 12.5}), 60.0)
>>> intake.flush()
3
>>> history.sql("SELECT metric, value FROM samples ORDER BY metric").values.tolist()
[['cpu_percent', 12.5], ['slothlab_agent_tasks_queued', 0.0], ['slothlab_agent_tasks_running', 2.0]]
>>> history.close()
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING

from slothlab.errors import MetricNameError
from slothlab.metrics.names import check_metric_name
from slothlab.protocol import Heartbeat

if TYPE_CHECKING:
    from slothlab.metrics import MetricsHistory

__all__ = ["QUEUED", "RUNNING", "MetricsIntake"]

RUNNING = "slothlab_agent_tasks_running"
QUEUED = "slothlab_agent_tasks_queued"


class MetricsIntake:
    """Buffers heartbeat metrics and writes them to the history in batches.

    Args:
        history: the history to write to (None: count and drop, for a master without one).
    """

    def __init__(self, history: MetricsHistory | None) -> None:
        self.history = history
        self.skipped = 0
        self._valid: dict[str, bool] = {RUNNING: True, QUEUED: True}
        self._lock = threading.Lock()
        self._ts: list[float] = []
        self._host: list[str] = []
        self._metric: list[str] = []
        self._value: list[float] = []

    def receive(self, agent: str, beat: Heartbeat, ts: float) -> None:
        """Buffer one heartbeat's metrics (cheap: appends to lists)."""
        pairs = [(RUNNING, float(beat.running)), (QUEUED, float(beat.queued))]
        pairs.extend((k, v) for k, v in beat.metrics.items() if self._ok(k, v))
        with self._lock:
            for metric, value in pairs:
                self._ts.append(ts)
                self._host.append(agent)
                self._metric.append(metric)
                self._value.append(value)

    def _ok(self, name: str, value: float) -> bool:
        valid = self._valid.get(name)
        if valid is None:
            try:
                check_metric_name(name)
                valid = True
            except MetricNameError:
                valid = False
            if len(self._valid) < 100_000:
                self._valid[name] = valid
        if not valid or not math.isfinite(value):
            self.skipped += 1
            return False
        return True

    @property
    def pending(self) -> int:
        """Samples buffered and not yet handed to the history."""
        return len(self._ts)

    def flush(self) -> int:
        """Hand the buffer to the history (and flush it to disk); returns the samples written."""
        with self._lock:
            columns = (self._ts, self._host, self._metric, self._value)
            self._ts, self._host, self._metric, self._value = [], [], [], []
        rows = len(columns[0])
        if rows == 0 or self.history is None:
            return rows
        import pyarrow as pa

        table = pa.table(
            {"ts": columns[0], "host": columns[1], "metric": columns[2], "value": columns[3]}
        )
        self.history.write(table)
        self.history.flush()
        return rows
