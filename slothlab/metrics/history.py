"""The metrics history: one DuckDB file of samples, 1-minute and 1-hour rollups, Parquet export.

One long table ``samples(ts, host, metric, labels, value)`` holds every raw sample; the rollup
tables ``samples_1m`` and ``samples_1h`` keep min/max/avg/sum/count/last per bucket, host,
metric and labels. Each level has its own retention (raw 7 days, 1m 90 days, 1h 2 years by
default). Writes are buffered and inserted as one Arrow batch (see notes/benchmarks.md: row by
row inserts run ~1,000x slower).

**Durability bound.** A sample is on disk once its batch is flushed: when the buffer reaches
``batch_rows`` rows, when a write finds the oldest buffered sample ``flush_interval_s`` old,
every ``flush_interval_s`` on the background flusher thread, on ``flush()``, on ``close()``
and at interpreter exit. A crash (SIGKILL, power loss) loses at most the unflushed buffer:
fewer than ``batch_rows`` rows, written in the last ``flush_interval_s`` seconds. DuckDB's
write-ahead log makes every flushed batch survive, and the file opens fine after a crash.

**One owner.** DuckDB lets one process open the file; a second opener gets
:class:`~slothlab.errors.HistoryLockedError` naming the holder. Other processes send samples
to the owner over HTTP or read the Parquet it exports (:func:`read_export`).

>>> from slothlab.metrics import MetricsHistory, Sample
>>> history = MetricsHistory(":memory:", background=False)
>>> history.write([Sample(0.0, "web-1", "load1", 0.5), Sample(30.0, "web-1", "load1", 1.5)])
2
>>> history.query("load1", step="1m")[["host", "value"]].to_dict("records")
[{'host': 'web-1', 'value': 1.0}]
>>> history.close()
"""

from __future__ import annotations

import atexit
import functools
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slothlab.errors import HistoryError
from slothlab.metrics._history_arrow import Batch, SampleColumns, as_samples, to_batch
from slothlab.metrics._history_export import export_days, read_export, utc_columns
from slothlab.metrics._history_lock import (
    ProcessDescriber,
    claim,
    connect,
    describe_process,
    release,
)
from slothlab.metrics._history_sql import (
    LEVELS,
    SCHEMA,
    QuerySpec,
    build_query,
    check_read_only,
    pick_level,
    rollup_statements,
)
from slothlab.metrics._history_time import TimeLike, parse_duration, to_datetime

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from slothlab.config import Settings

__all__ = ["MetricsHistory", "Retention", "read_export"]

log = logging.getLogger(__name__)

_DAY = 86400.0
_MEMORY = ":memory:"


@dataclass(frozen=True)
class Retention:
    """How long each level keeps its rows, in seconds; ``None`` keeps them for ever.

    >>> Retention().raw_s / 86400, Retention().minute_s / 86400, Retention().hour_s / 86400
    (7.0, 90.0, 730.0)
    """

    raw_s: float | None = 7 * _DAY
    minute_s: float | None = 90 * _DAY
    hour_s: float | None = 730 * _DAY

    @classmethod
    def from_settings(cls, settings: Settings) -> Retention:
        """Read ``metrics.retention_{raw,1m,1h}_days`` (0 keeps for ever)."""

        def days(key: str) -> float | None:
            value = float(settings.get(key))
            return value * _DAY if value > 0 else None

        return cls(
            days("metrics.retention_raw_days"),
            days("metrics.retention_1m_days"),
            days("metrics.retention_1h_days"),
        )


class MetricsHistory:
    """The history of every host's metrics in one DuckDB file, owned by this process.

    Args:
        path: the DuckDB file (created if missing), or ``":memory:"``.
        clock: epoch seconds now; drives flush ages, retention and relative times.
        retention: how long each level keeps rows (see :class:`Retention`).
        batch_rows: flush when this many rows are buffered.
        flush_interval_s: flush when the oldest buffered row is this old.
        background: run a flusher thread, so the time bound holds when writes stop.
        describe_process: pid -> command line, to name the holder of a locked file.

    Raises:
        HistoryLockedError: another process (or object here) holds the file.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        retention: Retention | None = None,
        batch_rows: int = 50_000,
        flush_interval_s: float = 5.0,
        background: bool = True,
        describe_process: ProcessDescriber = describe_process,
    ) -> None:
        if batch_rows < 1 or flush_interval_s <= 0:
            raise HistoryError("batch_rows must be >= 1 and flush_interval_s > 0")
        self.path = Path(path) if str(path) == _MEMORY else Path(path).expanduser().resolve()
        self.retention = retention or Retention()
        self.batch_rows = batch_rows
        self.flush_interval_s = flush_interval_s
        self._clock = clock
        self._lock = threading.RLock()
        self._buffer: list[Batch] = []
        self._columns = SampleColumns()
        self._pending = 0
        self._first_at: float | None = None
        self._closed = False
        self._con = self._open(describe_process)
        self._at_exit = functools.partial(_close_at_exit, weakref.ref(self))
        atexit.register(self._at_exit)
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        if background:
            self._flusher = threading.Thread(
                target=self._run_flusher, name=f"history-flusher:{self.path.name}", daemon=True
            )
            self._flusher.start()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kwargs: Any) -> MetricsHistory:
        """Open the history the settings name (``metrics.history_path``, default
        ``<home>/metrics.duckdb``) with their retention."""
        from slothlab.config import home_dir, load_settings

        settings = settings or load_settings()
        path = settings.get("metrics.history_path") or home_dir(settings.environ) / "metrics.duckdb"
        kwargs.setdefault("retention", Retention.from_settings(settings))
        return cls(path, **kwargs)

    def _open(self, describe: ProcessDescriber) -> duckdb.DuckDBPyConnection:
        import duckdb

        # what a flush needs, imported now: the last flush may run at interpreter exit, when
        # imports fail (pyarrow and DuckDB's Arrow scan import pandas on first use)
        import pandas  # noqa: F401
        import pyarrow.compute  # noqa: F401

        memory = str(self.path) == _MEMORY
        if not memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            claim(self.path)
        try:
            con = duckdb.connect(_MEMORY) if memory else connect(self.path, describe)
            try:
                con.execute("SET TimeZone = 'UTC'")
                for statement in SCHEMA:
                    con.execute(statement)
                _check_shape(con, self.path)
            except BaseException:
                con.close()
                raise
        except BaseException as exc:
            if not memory:
                release(self.path)
            if isinstance(exc, duckdb.Error):
                raise HistoryError(
                    f"cannot set up the metrics history {self.path}: {exc}"
                ) from None
            raise
        return con

    # -- writing ----------------------------------------------------------------------------

    def write(self, data: object) -> int:
        """Buffer samples (an iterable of Sample, a DataFrame or an Arrow table).

        Columns: ``ts`` (datetimes, naive meaning UTC, or epoch seconds), ``host``, ``metric``,
        ``value`` and optionally ``labels`` (mappings of text to text). Returns the rows taken.
        """
        samples = as_samples(data)
        if samples is not None:
            return self._write_samples(samples)
        batch = to_batch(data)
        rows = int(batch.table.num_rows)
        if rows == 0:
            return 0
        with self._lock:
            self._check_open()
            self._buffer.append(batch)
            self._taken(rows)
        return rows

    def _write_samples(self, samples: Sequence[object]) -> int:
        # Samples stay plain Python until the flush (one Arrow table per flush, not per call).
        with self._lock:
            self._check_open()
            rows = self._columns.append(samples)
            if rows:
                self._taken(rows)
        return rows

    def _taken(self, rows: int) -> None:
        """Count ``rows`` new buffered rows and flush when the size or age bound is reached."""
        self._pending += rows
        now = self._clock()
        if self._first_at is None:
            self._first_at = now
        if self._pending >= self.batch_rows or now - self._first_at >= self.flush_interval_s:
            self.flush()

    @property
    def pending_rows(self) -> int:
        """Rows buffered and not yet on disk."""
        return self._pending

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._closed

    def flush(self) -> int:
        """Write the buffered rows in one transaction; returns how many were written."""
        with self._lock:
            self._check_open()
            if len(self._columns):
                self._buffer.append(self._columns.take())
            if not self._buffer:
                return 0
            batches, rows = self._buffer, self._pending
            self._buffer, self._pending, self._first_at = [], 0, None
            try:
                self._insert(batches)
            except Exception as exc:
                self._buffer, self._pending = batches + self._buffer, rows + self._pending
                self._first_at = self._clock()
                raise HistoryError(f"could not write {rows} samples to {self.path}: {exc}") from exc
            return rows

    def _insert(self, batches: list[Batch]) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        tables = [b.table for b in batches]
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        bounds = pc.min_max(table.column("ts")).as_py()
        labels = "labels"
        if any(b.unsorted_labels for b in batches):
            labels = "map_from_entries(list_sort(map_entries(labels)))"
        con = self._con
        con.register("_history_batch", table)
        try:
            con.begin()
            con.execute(
                f"INSERT INTO samples SELECT ts, host, metric, {labels}, value FROM _history_batch"
            )
            con.execute("INSERT INTO history_dirty VALUES (?, ?)", [bounds["min"], bounds["max"]])
            con.commit()
        except Exception:
            con.rollback()
            raise
        finally:
            con.unregister("_history_batch")

    # -- maintenance ------------------------------------------------------------------------

    def rollup(self) -> int:
        """Recompute the 1m and 1h buckets touched since the last rollup; returns ranges done."""
        with self._lock:
            self.flush()
            con = self._con
            ranges = con.execute("SELECT lo, hi FROM history_dirty").fetchall()
            if not ranges:
                return 0
            raw, minute, hour = LEVELS
            con.begin()
            try:
                for source, target in ((raw, minute), (minute, hour)):
                    floor = self._pruned_before(source.name)
                    delete, insert = rollup_statements(source, target)
                    for lo, hi in _merge_ranges(ranges, target.seconds, floor):
                        con.execute(delete, [lo, hi])
                        con.execute(insert, [lo, hi])
                con.execute("DELETE FROM history_dirty")
                con.commit()
            except Exception:
                con.rollback()
                raise
            return len(ranges)

    def apply_retention(self) -> dict[str, int]:
        """Roll up, then delete rows older than each level's retention; returns rows deleted.

        Cut-offs fall on the next level's bucket edges, so a rollup bucket is never built
        from a partly deleted source.
        """
        keep = {"raw": self.retention.raw_s, "1m": self.retention.minute_s}
        keep["1h"] = self.retention.hour_s
        with self._lock:
            self.rollup()
            now = self._clock()
            deleted: dict[str, int] = {}
            for level in LEVELS:
                seconds = keep[level.name]
                if seconds is None:
                    deleted[level.name] = 0
                    continue
                cutoff = math.floor((now - seconds) / 3600) * 3600
                when = datetime.fromtimestamp(cutoff, UTC)
                row = self._con.execute(
                    f"DELETE FROM {level.table} WHERE {level.time_column} < ?", [when]
                ).fetchone()
                deleted[level.name] = int(row[0]) if row else 0
                self._set_pruned_before(level.name, cutoff)
            return deleted

    def _pruned_before(self, level: str) -> float | None:
        row = self._con.execute(
            "SELECT value FROM history_meta WHERE key = ?", [f"{level}_pruned_before"]
        ).fetchone()
        return float(row[0]) if row else None

    def _set_pruned_before(self, level: str, cutoff: float) -> None:
        old = self._pruned_before(level)
        value = cutoff if old is None else max(old, cutoff)
        self._con.execute(
            "INSERT OR REPLACE INTO history_meta VALUES (?, ?)",
            [f"{level}_pruned_before", repr(value)],
        )

    # -- reading ----------------------------------------------------------------------------

    def query(
        self,
        metric: str,
        host: str | Sequence[str] | None = None,
        labels: Mapping[str, str] | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        step: float | str | timedelta | None = None,
        agg: str = "avg",
        level: str | None = None,
    ) -> pd.DataFrame:
        """One metric as a DataFrame (ts, host, metric, labels, value), one row per bucket.

        Without ``step`` the raw samples come back. With one, values are aggregated by ``agg``
        (avg, min, max, sum, count, last) per ``step`` bucket, read from the coarsest level
        whose bucket divides the step (1h, 1m, raw) unless ``level`` names one. ``labels``
        keeps series that have all these label values; ``start`` is inclusive, ``end``
        exclusive (datetimes, epoch seconds, ISO text, "now", "-15m").
        """
        seconds = None if step is None else parse_duration(step)
        chosen = pick_level(seconds, level)
        if seconds is None and chosen.seconds:
            seconds = float(chosen.seconds)
        now = self._clock()
        spec = QuerySpec(
            metric=metric,
            hosts=[host] if isinstance(host, str) else host,
            labels=labels,
            start=None if start is None else to_datetime(start, now=now),
            end=None if end is None else to_datetime(end, now=now),
            step=seconds,
            agg=agg,
            level=chosen,
        )
        sql, params = build_query(spec)
        if chosen.seconds:
            self.rollup()
        else:
            self.flush()
        return self._read(sql, params)

    def metrics(self) -> pd.DataFrame:
        """Every metric known: metric, hosts (how many), first and last sample time."""
        return self._catalogue("metric", "host", "hosts")

    def hosts(self) -> pd.DataFrame:
        """Every host known: host, metrics (how many), first and last sample time."""
        return self._catalogue("host", "metric", "metrics")

    def _catalogue(self, key: str, other: str, count: str) -> pd.DataFrame:
        self.flush()
        sql = f"""SELECT {key}, count(DISTINCT {other}) AS {count}, min(first) AS first,
            max(last) AS last FROM (
                SELECT {key}, {other}, min(ts) AS first, max(ts) AS last FROM samples GROUP BY ALL
                UNION ALL
                SELECT {key}, {other}, min(bucket), max(last_ts) FROM samples_1h GROUP BY ALL
            ) GROUP BY {key} ORDER BY {key}"""
        return self._read(sql, [])

    def latest(self, metric: str, host: str | Sequence[str] | None = None) -> pd.DataFrame:
        """The newest raw sample of each series of ``metric`` (ts, host, metric, labels, value)."""
        self.flush()
        params: list[Any] = [metric]
        where = "metric = ?"
        if host is not None:
            hosts = [host] if isinstance(host, str) else list(host)
            where += f" AND host IN ({', '.join('?' for _ in hosts)})"
            params.extend(hosts)
        sql = f"""SELECT max(ts) AS ts, host, metric, labels, arg_max(value, ts) AS value
            FROM samples WHERE {where} GROUP BY host, metric, labels
            ORDER BY host, CAST(labels AS VARCHAR)"""
        return self._read(sql, params)

    def sql(
        self,
        query: str,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        arrow: bool = False,
    ) -> Any:
        """Run one read-only statement (SELECT, WITH, DESCRIBE, SHOW, EXPLAIN) as a DataFrame,
        or as a ``pyarrow.Table`` with ``arrow=True`` (what an HTTP route streams).

        Anything else (INSERT, DELETE, COPY, SET, ATTACH, ...) is refused before it runs, and
        the statement runs in a transaction that is rolled back.
        """
        check_read_only(query)
        self.flush()
        return self._read(query, params, rollback=True, arrow=arrow)

    def _read(
        self,
        sql: str,
        params: Sequence[Any] | Mapping[str, Any] | None,
        *,
        rollback: bool = False,
        arrow: bool = False,
    ) -> Any:
        import duckdb

        with self._lock:
            self._check_open()
            cursor = self._con.cursor()
        try:
            cursor.execute("SET TimeZone = 'UTC'")
            if rollback:
                cursor.begin()
            if arrow:
                result = cursor.sql(sql, params=params).to_arrow_table()
            else:
                result = utc_columns(cursor.execute(sql, params).df())
            if rollback:
                cursor.rollback()
        except duckdb.Error as exc:
            raise HistoryError(f"query failed: {exc}") from None
        finally:
            cursor.close()
        return result

    # -- export -----------------------------------------------------------------------------

    def export_parquet(
        self,
        directory: str | Path,
        *,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        level: str = "raw",
    ) -> list[str]:
        """Write rows to Parquet under ``directory/day=YYYY-MM-DD/`` (UTC days, Hive style).

        DuckDB, Spark, Trino and Dask read the folder in place. A day that is exported again is
        replaced whole, so exporting yesterday every night is idempotent. Returns the days
        written.
        """
        chosen = next((lv for lv in LEVELS if lv.name == level), None)
        if chosen is None:
            raise HistoryError(f"unknown level {level!r}; use raw, 1m or 1h")
        if chosen.seconds:
            self.rollup()
        else:
            self.flush()
        now = self._clock()
        lo = None if start is None else to_datetime(start, now=now)
        hi = None if end is None else to_datetime(end, now=now)
        target = Path(directory).expanduser().resolve()
        with self._lock:
            self._check_open()
            return export_days(self._con, chosen, target, lo, hi)

    # -- life cycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Flush the buffer, stop the flusher and close the file. Safe to call twice."""
        self._stop.set()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join()
        with self._lock:
            if self._closed:
                return
            try:
                self.flush()
            finally:
                self._closed = True
                self._con.close()
                if str(self.path) != _MEMORY:
                    release(self.path)
                atexit.unregister(self._at_exit)

    def __enter__(self) -> MetricsHistory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._pending} rows pending"
        return f"<MetricsHistory {self.path} ({state})>"

    def _check_open(self) -> None:
        if self._closed:
            raise HistoryError(f"the metrics history {self.path} is closed; open a new one")

    def _run_flusher(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            with self._lock:
                if self._closed:
                    return
                try:
                    self.flush()
                except HistoryError:
                    log.exception("background flush of %s failed; will retry", self.path)


def _check_shape(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Refuse a database whose ``samples`` table is not the history's (another tool's file)."""
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'samples' "
        "ORDER BY ordinal_position"
    ).fetchall()
    columns = [r[0] for r in rows]
    if columns != ["ts", "host", "metric", "labels", "value"]:
        raise HistoryError(
            f"{path} has a samples table of another shape ({', '.join(columns)}); it is not a "
            "slothlab metrics history: open another path"
        )


def _merge_ranges(
    ranges: list[tuple[datetime, datetime]], width: int, floor: float | None
) -> list[tuple[datetime, datetime]]:
    """Whole buckets of ``width`` s covering ``ranges``, merged, none before ``floor``."""
    spans = []
    for lo, hi in ranges:
        start = math.floor(lo.timestamp() / width) * width
        stop = (math.floor(hi.timestamp() / width) + 1) * width
        if floor is not None:
            start = max(start, math.ceil(floor / width) * width)
        if start < stop:
            spans.append((start, stop))
    merged: list[list[float]] = []
    for start, stop in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    return [(datetime.fromtimestamp(a, UTC), datetime.fromtimestamp(b, UTC)) for a, b in merged]


def _close_at_exit(ref: weakref.ReferenceType[MetricsHistory]) -> None:
    history = ref()
    if history is not None and not history.closed:
        try:
            history.close()
        except Exception:  # the interpreter is going away; say so and keep going
            log.exception("closing %s at exit failed", history.path)
