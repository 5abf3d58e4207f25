"""Parquet export of the history, partitioned by UTC day, and reading such an export back.

The folders are Hive style (``day=YYYY-MM-DD/part_0.parquet``), so DuckDB, Spark, Trino and
Dask read them in place, and readers never touch the DuckDB file its one owner holds.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slothlab.errors import HistoryError
from slothlab.metrics._history_sql import Level

if TYPE_CHECKING:
    import duckdb

__all__ = ["export_days", "read_export", "utc_columns"]


def export_days(
    con: duckdb.DuckDBPyConnection,
    level: Level,
    target: Path,
    start: datetime | None,
    end: datetime | None,
) -> list[str]:
    """Write ``level``'s rows in ``[start, end)`` under ``target``; a day written is replaced.

    Returns the days written, sorted.
    """
    col = level.time_column
    where, params = "TRUE", []
    if start is not None:
        where += f" AND {col} >= ?"
        params.append(start)
    if end is not None:
        where += f" AND {col} < ?"
        params.append(end)
    rows = f"SELECT *, strftime({col}, '%Y-%m-%d') AS day FROM {level.table} WHERE {where}"
    found = con.execute(f"SELECT DISTINCT day FROM ({rows})", params).fetchall()
    days = sorted(str(r[0]) for r in found)
    for day in days:  # a re-export replaces the day whole, never leaves stale files in it
        shutil.rmtree(target / f"day={day}", ignore_errors=True)
    if days:
        quoted = str(target).replace("'", "''")
        con.execute(
            f"COPY ({rows}) TO '{quoted}' (FORMAT PARQUET, PARTITION_BY (day), "
            "OVERWRITE_OR_IGNORE, FILENAME_PATTERN 'part_{i}')",
            params,
        )
    return days


def read_export(directory: str | Path, *, metric: str | None = None) -> Any:
    """Read a folder written by :meth:`MetricsHistory.export_parquet` as a DataFrame.

    Works while the writer runs: it reads the Parquet files, never the DuckDB file.
    """
    import duckdb

    pattern = str(Path(directory).expanduser().resolve() / "**" / "*.parquet")
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        sql = "SELECT * FROM read_parquet(?, hive_partitioning = true)"
        params: list[Any] = [pattern]
        if metric is not None:
            sql += " WHERE metric = ?"
            params.append(metric)
        frame = con.execute(sql + " ORDER BY ALL", params).df()
    except duckdb.IOException as exc:
        raise HistoryError(f"cannot read the export in {directory}: {exc}") from None
    finally:
        con.close()
    return utc_columns(frame)


def utc_columns(frame: Any) -> Any:
    """Give every time-zone-aware column of ``frame`` the zone ``UTC`` (DuckDB says Etc/UTC)."""
    for name in frame.columns:
        if getattr(frame[name].dtype, "tz", None) is not None:
            frame[name] = frame[name].dt.tz_convert("UTC")
    return frame
