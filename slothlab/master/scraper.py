"""Agent metrics into the DuckDB history: the master is its single writer.

Agents send a metrics snapshot with every heartbeat; :class:`MetricsIntake` turns it into
samples (``host`` = the agent's name, ``metric`` = the key, plus
``slothlab_agent_tasks_running`` and ``slothlab_agent_tasks_queued``), buffers them as columns and
hands the history one Arrow batch per :meth:`~MetricsIntake.flush` (the master flushes every
second and on shutdown). A key that is not a valid metric name, and a value that is not
finite, is skipped and counted (``skipped``).

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

import threading
from itertools import chain
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import numpy.typing as npt

from slothlab.errors import MetricNameError
from slothlab.metrics.names import check_metric_name
from slothlab.protocol import Heartbeat

if TYPE_CHECKING:
    import pyarrow as pa

    from slothlab.metrics import MetricsHistory

__all__ = ["QUEUED", "RUNNING", "MetricsIntake"]

RUNNING = "slothlab_agent_tasks_running"
QUEUED = "slothlab_agent_tasks_queued"

_Beat: TypeAlias = tuple[float, str, tuple[str, ...], list[float]]  # ts, agent, names, values


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
        self._names: dict[tuple[str, ...], tuple[str, ...] | None] = {}
        self._lock = threading.Lock()
        self._beats: list[_Beat] = []

    def receive(self, agent: str, beat: Heartbeat, ts: float) -> None:
        """Buffer one heartbeat's metrics (cheap: one append)."""
        metrics = beat.metrics
        keys = tuple(metrics)
        names = self._names.get(keys, ())
        if names == ():
            names = self._vet(keys)
        if names is None:  # some key is not a metric name: take the valid ones one by one
            pairs = [(k, v) for k, v in metrics.items() if self._is_name(k)]
            self.skipped += len(metrics) - len(pairs)
            names = (RUNNING, QUEUED, *(k for k, _ in pairs))
            values = [float(beat.running), float(beat.queued), *(v for _, v in pairs)]
        else:
            values = [float(beat.running), float(beat.queued), *metrics.values()]
        with self._lock:
            self._beats.append((ts, agent, names, values))

    def _vet(self, keys: tuple[str, ...]) -> tuple[str, ...] | None:
        """``(RUNNING, QUEUED, *keys)`` when every key is a metric name, else None (cached)."""
        names = (RUNNING, QUEUED, *keys) if all(self._is_name(k) for k in keys) else None
        if len(self._names) < 10_000:
            self._names[keys] = names
        return names

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
            return sum(len(names) for _, _, names, _ in self._beats)

    def flush(self) -> int:
        """Hand the buffer to the history (and flush it to disk); returns the samples written."""
        with self._lock:
            beats, self._beats = self._beats, []
        rows = sum(len(names) for _, _, names, _ in beats)
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
    counts = np.fromiter((len(names) for _, _, names, _ in beats), np.int64, n)
    ts = np.repeat(np.fromiter((b[0] for b in beats), np.float64, n), counts)
    which = pa.array(np.repeat(np.arange(n, dtype=np.int32), counts))
    host = pa.DictionaryArray.from_arrays(which, pa.array([b[1] for b in beats], pa.string()))
    ids: dict[str, int] = {}
    per_set: dict[tuple[str, ...], npt.NDArray[np.int32]] = {}
    pieces = []
    for _, _, names, _ in beats:
        piece = per_set.get(names)
        if piece is None:
            piece = np.array([ids.setdefault(k, len(ids)) for k in names], dtype=np.int32)
            per_set[names] = piece
        pieces.append(piece)
    metric = pa.DictionaryArray.from_arrays(
        pa.array(np.concatenate(pieces)), pa.array(list(ids), pa.string())
    )
    value = np.fromiter(chain.from_iterable(b[3] for b in beats), np.float64, rows)
    return pa.table({"ts": ts, "host": host, "metric": metric, "value": value})
