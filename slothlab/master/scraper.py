"""Agent metrics into the DuckDB history: the master is its single writer.

Agents send a metrics snapshot with every heartbeat; :class:`MetricsIntake` turns it into
samples (``host`` = the agent's name, ``metric`` = the key, plus
``slothlab_agent_tasks_running`` and ``slothlab_agent_tasks_queued``), buffers them as columns and
hands the history one Arrow batch per :meth:`~MetricsIntake.flush` (the master flushes every
second and on shutdown). A key that is not a valid metric name, and a value that is not
finite, is skipped and counted (``skipped``).

The host metrics of a heartbeat (``cpu_percent``, ``memory_available_mb``, ...: the names the
balancer reads) are written under the collector's Prometheus names in base units
(:data:`HEARTBEAT_METRICS`: ``cpu_percent`` 12.5 becomes ``slothlab_cpu_usage_ratio`` 0.125,
``disk_free_gb`` becomes ``slothlab_disk_free_bytes{mount="/"}``), so the history holds one name
per quantity whether an agent or a collector measured it. Custom metrics keep their own names.

>>> from slothlab.metrics import MetricsHistory
>>> from slothlab.protocol import Heartbeat
>>> history = MetricsHistory(":memory:", background=False)
>>> intake = MetricsIntake(history)
>>> beat = Heartbeat(running=2, queued=0, metrics={"cpu_percent": 12.5, "disk_percent": 70.0})
>>> intake.receive("web-1", beat, 60.0)
>>> intake.flush()
4
>>> history.sql("SELECT metric, labels, value FROM samples ORDER BY metric").values.tolist()
... # doctest: +NORMALIZE_WHITESPACE
[['slothlab_agent_tasks_queued', {}, 0.0], ['slothlab_agent_tasks_running', {}, 2.0],
 ['slothlab_cpu_usage_ratio', {}, 0.125], ['slothlab_disk_usage_ratio', {'mount': '/'}, 0.7]]
>>> history.close()
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from itertools import chain
from typing import TYPE_CHECKING, NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt

from slothlab.errors import MetricNameError
from slothlab.metrics import names as n
from slothlab.metrics.names import check_metric_name
from slothlab.protocol import Heartbeat

if TYPE_CHECKING:
    import pyarrow as pa

    from slothlab.metrics import MetricsHistory

__all__ = ["CAPACITY", "HEARTBEAT_METRICS", "QUEUED", "RUNNING", "HistoryName", "MetricsIntake"]

RUNNING = "slothlab_agent_tasks_running"
QUEUED = "slothlab_agent_tasks_queued"
CAPACITY = "slothlab_agent_capacity"
"""The agent's ``effective_capacity`` (the name its own ``/metrics`` gives it)."""


class HistoryName(NamedTuple):
    """Where a heartbeat key goes in the history: ``metric``, ``value / divisor``, ``labels``."""

    metric: str
    divisor: float = 1.0
    labels: Mapping[str, str] = {}


_ROOT = {"mount": "/"}
_PERCENT = 100.0

HEARTBEAT_METRICS: dict[str, HistoryName] = {
    "cpu_percent": HistoryName(n.CPU_USAGE_RATIO, _PERCENT),
    "memory_percent": HistoryName(n.MEMORY_USAGE_RATIO, _PERCENT),
    "disk_percent": HistoryName(n.DISK_USAGE_RATIO, _PERCENT, _ROOT),
    "load1": HistoryName(n.LOAD1),
    "load5": HistoryName(n.LOAD5),
    "load15": HistoryName(n.LOAD15),
    "memory_available_mb": HistoryName(n.MEMORY_AVAILABLE_BYTES, 2.0**-20),
    "disk_free_gb": HistoryName(n.DISK_FREE_BYTES, 2.0**-30, _ROOT),
    "effective_capacity": HistoryName(CAPACITY),
}
"""Heartbeat host metrics (the agent's names, which the balancer reads) -> their history name.

The agent computes ``memory_available_mb`` and ``disk_free_gb`` as bytes / 2**20 and / 2**30,
so dividing by 2**-20 and 2**-30 gives back its bytes (exactly); ``disk_*`` are of ``/``,
labelled as the collector labels them.
"""


class _Plan:
    """What one set of heartbeat keys becomes: history names, value divisors and labels."""

    __slots__ = ("divisor", "keys", "labels", "names")

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys
        known = [HEARTBEAT_METRICS.get(k) or HistoryName(k) for k in keys]
        self.names = (RUNNING, QUEUED, *(h.metric for h in known))
        self.divisor = np.array([1.0, 1.0, *(h.divisor for h in known)], dtype=np.float64)
        self.labels: tuple[Mapping[str, str], ...] = ({}, {}, *(h.labels for h in known))


_Beat: TypeAlias = tuple[float, str, _Plan, list[float]]  # ts, agent, plan, values


class MetricsIntake:
    """Buffers heartbeat metrics and writes them to the history in batches.

    :meth:`receive` runs on the master's event loop for every heartbeat, so it only appends
    one entry (names are vetted once per set of keys); the background flush builds the columns
    with numpy (host and metric dictionary-encoded) and drops non-finite values.

    Args:
        history: the history to write to (None: count and drop, for a master without one).
    """

    def __init__(self, history: MetricsHistory | None) -> None:
        self.history = history
        self.skipped = 0
        self._valid: dict[str, bool] = {RUNNING: True, QUEUED: True}
        self._plans: dict[tuple[str, ...], _Plan | None] = {}
        self._lock = threading.Lock()
        self._beats: list[_Beat] = []

    def receive(self, agent: str, beat: Heartbeat, ts: float) -> None:
        """Buffer one heartbeat's metrics (cheap: one append)."""
        metrics = beat.metrics
        keys = tuple(metrics)
        try:
            plan = self._plans[keys]
        except KeyError:
            plan = self._vet(keys)
        if plan is None:  # some key is not a metric name: take the valid ones one by one
            pairs = [(k, v) for k, v in metrics.items() if self._is_name(k)]
            self.skipped += len(metrics) - len(pairs)
            plan = self._vet(tuple(k for k, _ in pairs))
            assert plan is not None  # every key left is valid
            values = [float(beat.running), float(beat.queued), *(v for _, v in pairs)]
        else:
            values = [float(beat.running), float(beat.queued), *metrics.values()]
        with self._lock:
            self._beats.append((ts, agent, plan, values))

    def _vet(self, keys: tuple[str, ...]) -> _Plan | None:
        """The plan of ``keys`` when every key is a metric name, else None (cached)."""
        plan = _Plan(keys) if all(self._is_name(k) for k in keys) else None
        if len(self._plans) < 10_000:
            self._plans[keys] = plan
        return plan

    def _is_name(self, name: str) -> bool:
        valid = self._valid.get(name)
        if valid is None:
            try:
                check_metric_name(name)
                valid = True
            except MetricNameError:
                valid = False
            if len(self._valid) < 100_000:
                self._valid[name] = valid
        return valid

    @property
    def pending(self) -> int:
        """Samples buffered and not yet handed to the history."""
        with self._lock:
            return sum(len(plan.names) for _, _, plan, _ in self._beats)

    def flush(self) -> int:
        """Hand the buffer to the history (and flush it to disk); returns the samples written."""
        with self._lock:
            beats, self._beats = self._beats, []
        rows = sum(len(plan.names) for _, _, plan, _ in beats)
        if rows == 0 or self.history is None:
            return rows
        import pyarrow as pa

        table = _table(beats, rows)
        finite = np.isfinite(table.column("value").to_numpy())
        if not finite.all():
            self.skipped += int((~finite).sum())
            table = table.filter(pa.array(finite))
        self.history.write(table)
        self.history.flush()
        return int(table.num_rows)


def _table(beats: list[_Beat], rows: int) -> pa.Table:
    """The samples of ``beats`` as one Arrow table (``rows`` long)."""
    import pyarrow as pa

    n = len(beats)
    counts = np.fromiter((len(b[2].names) for b in beats), np.int64, n)
    ts = np.repeat(np.fromiter((b[0] for b in beats), np.float64, n), counts)
    which = pa.array(np.repeat(np.arange(n, dtype=np.int32), counts))
    host = pa.DictionaryArray.from_arrays(which, pa.array([b[1] for b in beats], pa.string()))
    columns = _Columns()
    pieces = [columns.of(plan) for _, _, plan, _ in beats]
    metric = pa.DictionaryArray.from_arrays(
        pa.array(np.concatenate([p[0] for p in pieces])), pa.array(list(columns.ids), pa.string())
    )
    value = np.fromiter(chain.from_iterable(b[3] for b in beats), np.float64, rows)
    value /= np.concatenate([p[1] for p in pieces])
    labels = _labels(pieces)
    return pa.table({"ts": ts, "host": host, "metric": metric, "labels": labels, "value": value})


_Piece: TypeAlias = tuple[
    npt.NDArray[np.int32], npt.NDArray[np.float64], npt.NDArray[np.int32], list[tuple[str, str]]
]  # metric ids, divisors, label counts, label pairs


class _Columns:
    """Metric ids (dictionary-encoded names) and each plan's columns, built once per batch."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self._pieces: dict[int, _Piece] = {}

    def of(self, plan: _Plan) -> _Piece:
        piece = self._pieces.get(id(plan))
        if piece is None:
            ids = np.array([self.ids.setdefault(k, len(self.ids)) for k in plan.names], np.int32)
            sizes = np.array([len(m) for m in plan.labels], np.int32)
            pairs = [kv for m in plan.labels for kv in sorted(m.items())]
            piece = (ids, plan.divisor, sizes, pairs)
            self._pieces[id(plan)] = piece
        return piece


def _labels(pieces: list[_Piece]) -> pa.MapArray:
    """The ``labels`` column (map<string, string>) from each beat's piece."""
    import pyarrow as pa

    sizes = np.concatenate([p[2] for p in pieces])
    offsets = np.zeros(len(sizes) + 1, np.int32)
    np.cumsum(sizes, out=offsets[1:])
    pairs = list(chain.from_iterable(p[3] for p in pieces))
    keys = pa.array([k for k, _ in pairs], pa.string())
    items = pa.array([v for _, v in pairs], pa.string())
    return pa.MapArray.from_arrays(pa.array(offsets), keys, items)
