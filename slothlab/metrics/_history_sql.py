"""The SQL of the metrics history: schema, rollups, retention and the queries built from arguments.

Labels are a ``MAP(VARCHAR, VARCHAR)``, not JSON text: a query says ``labels['mount'] = '/'``
with no JSON path functions, values are always text, and rows group by the map directly. The
cost, measured on 1 M rows with empty maps: the same Arrow ingest rate as a JSON column, and a
1-minute GROUP BY that keys on labels about 1.3-2x slower than a plain VARCHAR key. MAP equality
depends on key order, so every writer sorts the keys (see ``_history_arrow``) and rows group as
one series whatever order a caller listed its labels in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slothlab.errors import HistoryError

__all__ = [
    "AGGREGATES",
    "LEVELS",
    "SCHEMA",
    "Level",
    "QuerySpec",
    "build_query",
    "check_read_only",
    "pick_level",
    "rollup_statements",
]

SCHEMA_VERSION = 1

_ROLLUP_COLUMNS = """bucket TIMESTAMPTZ NOT NULL, host VARCHAR NOT NULL, metric VARCHAR NOT NULL,
    labels MAP(VARCHAR, VARCHAR) NOT NULL, min DOUBLE, max DOUBLE, avg DOUBLE, sum DOUBLE,
    count BIGINT NOT NULL, last DOUBLE, last_ts TIMESTAMPTZ NOT NULL"""

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS samples (ts TIMESTAMPTZ NOT NULL, host VARCHAR NOT NULL,
    metric VARCHAR NOT NULL, labels MAP(VARCHAR, VARCHAR) NOT NULL, value DOUBLE)""",
    f"CREATE TABLE IF NOT EXISTS samples_1m ({_ROLLUP_COLUMNS})",
    f"CREATE TABLE IF NOT EXISTS samples_1h ({_ROLLUP_COLUMNS})",
    # Time ranges written since the last rollup: the rollup recomputes only their buckets.
    "CREATE TABLE IF NOT EXISTS history_dirty (lo TIMESTAMPTZ NOT NULL, hi TIMESTAMPTZ NOT NULL)",
    "CREATE TABLE IF NOT EXISTS history_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
    f"""INSERT INTO history_meta VALUES ('schema_version', '{SCHEMA_VERSION}')
    ON CONFLICT DO NOTHING""",
)


@dataclass(frozen=True)
class Level:
    """One resolution of the history: a table, its time column and its bucket width."""

    name: str
    table: str
    time_column: str
    seconds: int


LEVELS = (
    Level("raw", "samples", "ts", 0),
    Level("1m", "samples_1m", "bucket", 60),
    Level("1h", "samples_1h", "bucket", 3600),
)
_BY_NAME = {level.name: level for level in LEVELS}

# How each aggregate reads raw rows, and how it combines rollup rows.
AGGREGATES: Mapping[str, tuple[str, str]] = {
    "avg": ("avg(value)", "sum(sum) / sum(count)"),
    "min": ("min(value)", "min(min)"),
    "max": ("max(value)", "max(max)"),
    "sum": ("sum(value)", "sum(sum)"),
    "count": ("count(value)", "sum(count)"),
    "last": ("arg_max(value, ts)", "arg_max(last, last_ts)"),
}


def pick_level(step: float | None, level: str | None) -> Level:
    """The level a query reads: the one named, else the coarsest whose bucket divides ``step``.

    >>> pick_level(300, None).name, pick_level(7200, None).name, pick_level(90, None).name
    ('1m', '1h', 'raw')
    >>> pick_level(None, None).name
    'raw'
    """
    if level is not None:
        if level not in _BY_NAME:
            raise HistoryError(f"unknown level {level!r}; use one of {sorted(_BY_NAME)}")
        chosen = _BY_NAME[level]
        if chosen.seconds and step is not None and step % chosen.seconds:
            raise HistoryError(
                f"level {level!r} needs a step that is a multiple of {chosen.seconds} s; "
                f"got step={step}"
            )
        return chosen
    if step is None:
        return LEVELS[0]
    fitting = [lv for lv in LEVELS if lv.seconds and step % lv.seconds == 0]
    return fitting[-1] if fitting else LEVELS[0]


def rollup_statements(source: Level, target: Level) -> tuple[str, str]:
    """DELETE and INSERT that recompute ``target`` buckets in ``[?, ?)`` from ``source``."""
    width = f"INTERVAL {target.seconds} SECOND"
    if source.name == "raw":
        measures = (
            "min(value), max(value), avg(value), sum(value), count(*), arg_max(value, ts), max(ts)"
        )
    else:
        measures = (
            "min(min), max(max), sum(sum) / sum(count), sum(sum), sum(count), "
            "arg_max(last, last_ts), max(last_ts)"
        )
    col = source.time_column
    delete = f"DELETE FROM {target.table} WHERE bucket >= ? AND bucket < ?"
    insert = f"""INSERT INTO {target.table}
        SELECT time_bucket({width}, {col}) AS bucket, host, metric, labels, {measures}
        FROM {source.table} WHERE {col} >= ? AND {col} < ?
        GROUP BY ALL"""
    return delete, insert


@dataclass(frozen=True)
class QuerySpec:
    """The arguments of ``MetricsHistory.query`` once parsed."""

    metric: str
    hosts: Sequence[str] | None
    labels: Mapping[str, str] | None
    start: datetime | None
    end: datetime | None
    step: float | None
    agg: str
    level: Level


def build_query(spec: QuerySpec) -> tuple[str, list[Any]]:
    """SQL and parameters that answer ``spec``: columns ts, host, metric, labels, value."""
    level = spec.level
    col = level.time_column
    where, params = _filters(spec, col)
    order = "ORDER BY host, CAST(labels AS VARCHAR), ts"
    if spec.step is None:
        value = "value" if level.name == "raw" else _rollup_column(spec.agg)
        sql = f"SELECT {col} AS ts, host, metric, labels, {value} AS value FROM {level.table}"
        return f"{sql} WHERE {where} {order}", params
    if spec.agg not in AGGREGATES:
        raise HistoryError(f"unknown agg {spec.agg!r}; use one of {sorted(AGGREGATES)}")
    raw_expr, rollup_expr = AGGREGATES[spec.agg]
    value = raw_expr if level.name == "raw" else rollup_expr
    micros = round(spec.step * 1_000_000)
    sql = (
        f"SELECT * FROM (SELECT time_bucket(to_microseconds({micros}), {col}) AS ts, host, "
        f"metric, labels, {value} AS value FROM {level.table} WHERE {where} GROUP BY ALL) {order}"
    )
    return sql, params


def _rollup_column(agg: str) -> str:
    if agg not in AGGREGATES:
        raise HistoryError(f"unknown agg {agg!r}; use one of {sorted(AGGREGATES)}")
    return agg


def _filters(spec: QuerySpec, col: str) -> tuple[str, list[Any]]:
    clauses = ["metric = ?"]
    params: list[Any] = [spec.metric]
    if spec.hosts is not None:
        clauses.append(f"host IN ({', '.join('?' for _ in spec.hosts)})")
        params.extend(spec.hosts)
    for key, value in (spec.labels or {}).items():
        clauses.append("labels[?] = ?")
        params.extend([str(key), str(value)])
    if spec.start is not None:
        clauses.append(f"{col} >= ?")
        params.append(spec.start)
    if spec.end is not None:
        clauses.append(f"{col} < ?")
        params.append(spec.end)
    return " AND ".join(clauses), params


def check_read_only(query: str) -> None:
    """Refuse anything but one SELECT-like statement (SELECT, WITH, FROM, DESCRIBE, SHOW,
    SUMMARIZE) or an EXPLAIN of one; DuckDB's own parser decides.

    >>> check_read_only("SELECT 1")
    >>> check_read_only("DELETE FROM samples")
    Traceback (most recent call last):
    ...
    slothlab.errors.HistoryError: sql() runs read-only queries only (SELECT, WITH, ...); got DELETE
    """
    import duckdb

    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise HistoryError(f"sql() could not parse the query: {exc}") from None
    if len(statements) != 1:
        raise HistoryError(f"sql() runs one statement at a time; got {len(statements)}")
    kind = statements[0].type
    if kind == duckdb.StatementType.EXPLAIN:
        _check_explained(query)
    elif kind != duckdb.StatementType.SELECT:
        raise HistoryError(
            f"sql() runs read-only queries only (SELECT, WITH, ...); got {kind.name}"
        )


def _check_explained(query: str) -> None:
    # EXPLAIN ANALYZE runs its statement, so the statement inside must itself be read-only.
    words = query.strip().split(None, 1)
    inner = words[1] if len(words) > 1 else ""
    head = inner.split(None, 1)
    if head and head[0].upper() == "ANALYZE":
        inner = head[1] if len(head) > 1 else ""
    check_read_only(inner)
