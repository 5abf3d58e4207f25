"""Load an existing series from a CSV or Parquet file into the metrics history.

So public traces (NAB's ``timestamp,value`` files, the Azure cluster trace) and exports from
other tools land in the same history the analytics read.

>>> import tempfile, pathlib
>>> from slothlab.metrics import MetricsHistory, import_series
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> rows = "timestamp,value\\n2024-05-01 00:00:00,1\\n2024-05-01 00:05:00,3\\n"
>>> _ = (folder / "cpu.csv").write_text(rows)
>>> history = MetricsHistory(":memory:", background=False)
>>> import_series(history, folder / "cpu.csv", metric="cpu", host="db-1")
2
>>> history.query("cpu", step="1h")["value"].tolist()
[2.0]
>>> history.close()
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slothlab.errors import HistoryError

if TYPE_CHECKING:
    import pyarrow as pa

    from slothlab.metrics.history import MetricsHistory

__all__ = ["import_series"]

_CHUNK_ROWS = 1_000_000


def import_series(
    history: MetricsHistory,
    path: str | Path,
    *,
    metric: str,
    host: str,
    timestamp_column: str = "timestamp",
    value_column: str = "value",
    labels: Mapping[str, str] | None = None,
    tz: str = "UTC",
    origin: datetime | str | None = None,
) -> int:
    """Import one series from ``path`` (``.csv``, ``.csv.gz`` or ``.parquet``); returns rows.

    Args:
        history: the history to write into (flushed before returning).
        path: the file.
        metric: the metric name the values get.
        host: the host they belong to.
        timestamp_column: the column of times: text (``2014-05-14 01:14:00``, ISO), datetimes,
            or numbers (epoch seconds, or seconds after ``origin``).
        value_column: the column of values.
        labels: label pairs added to every row.
        tz: the time zone of times written without one.
        origin: for numeric times that count from a start (the Azure trace's seconds from
            trace start), that start; times then become ``origin + seconds``.
    """
    source = Path(path).expanduser()
    _check_tz_and_origin(tz, origin)
    table = _read(source, [timestamp_column, value_column])
    ts = _timestamps(table.column(timestamp_column), tz, origin, source, timestamp_column)
    frame = _frame(ts, table.column(value_column), metric, host, labels, source, value_column)
    total = 0
    for start in range(0, len(frame), _CHUNK_ROWS):
        total += history.write(frame.iloc[start : start + _CHUNK_ROWS])
    history.flush()
    return total


def _read(path: Path, columns: list[str]) -> pa.Table:
    import pyarrow as pa

    if not path.is_file():
        raise HistoryError(f"cannot import {path}: no such file")
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        elif name.endswith((".csv", ".csv.gz")):
            import pyarrow.csv as pcsv

            table = pcsv.read_csv(path)
        else:
            raise HistoryError(f"cannot import {path}: give a .csv, .csv.gz or .parquet file")
    except pa.ArrowInvalid as exc:
        raise HistoryError(f"cannot read {path}: {exc}") from None
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise HistoryError(
            f"{path} has no column {', '.join(missing)}; its columns are {table.column_names}. "
            "Name the right ones with timestamp_column= and value_column="
        )
    return table.select(columns)


def _check_tz_and_origin(tz: str, origin: datetime | str | None) -> None:
    """Refuse a time zone or origin pandas cannot read, before reading the file."""
    import zoneinfo

    import pandas as pd

    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise HistoryError(
            f"unknown time zone {tz!r}; use a name like 'UTC' or 'Europe/Paris'"
        ) from None
    if origin is not None:
        try:
            pd.Timestamp(origin)
        except (ValueError, TypeError):
            raise HistoryError(
                f"origin {origin!r} is not a time; write it like '2019-01-01'"
            ) from None


def _timestamps(
    column: pa.ChunkedArray, tz: str, origin: datetime | str | None, path: Path, name: str
) -> Any:
    import pandas as pd
    import pyarrow as pa

    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        seconds = pd.Series(column.to_numpy(), dtype="float64")
        if origin is None:
            return pd.to_datetime(seconds, unit="s", utc=True)
        start = _localise(pd.Timestamp(origin), tz)
        return start + pd.to_timedelta(seconds, unit="s")
    try:
        parsed = pd.to_datetime(pd.Series(column.to_pandas()), format="mixed")
    except (ValueError, TypeError) as exc:
        raise HistoryError(f"{path}: column {name!r} does not hold times: {exc}") from None
    if parsed.dt.tz is None:
        return parsed.dt.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
    return parsed.dt.tz_convert("UTC")


def _localise(stamp: Any, tz: str) -> Any:
    return stamp.tz_localize(tz) if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _frame(
    ts: Any,
    values: pa.ChunkedArray,
    metric: str,
    host: str,
    labels: Mapping[str, str] | None,
    path: Path,
    name: str,
) -> Any:
    import pandas as pd

    frame = pd.DataFrame({"ts": ts, "host": host, "metric": metric})
    try:
        frame["value"] = pd.to_numeric(pd.Series(values.to_pandas()), errors="raise")
    except (ValueError, TypeError) as exc:
        raise HistoryError(f"{path}: column {name!r} is not numeric: {exc}") from None
    frame = frame[frame["ts"].notna()]
    if labels:
        pairs = {str(k): str(v) for k, v in labels.items()}
        frame["labels"] = [pairs] * len(frame)
    return frame
