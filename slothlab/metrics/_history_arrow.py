"""Turn what callers hand to ``MetricsHistory.write`` into one Arrow table of the samples schema.

Samples, pandas DataFrames and Arrow tables all end up as columns ``ts`` (timestamp[us, UTC]),
``host``, ``metric`` (string), ``labels`` (map<string, string>) and ``value`` (float64), so the
insert is one vectorised ``INSERT ... SELECT`` (executemany is ~1,000x slower; see
notes/benchmarks.md).

Samples are not turned into Arrow one write at a time: :class:`SampleColumns` checks each one
and appends its fields to plain lists (microseconds for a collector tick), and builds one table
from them when the history flushes (a table per tick cost ~0.4-2 ms, most of a 1 Hz
collector's budget).

>>> columns = SampleColumns()
>>> columns.append([Sample(0.0, "web-1", "load1", 0.5, {"core": "0"})])
1
>>> batch = columns.take()
>>> batch.table.num_rows, batch.table.column("labels").to_pylist(), len(columns)
(1, [[('core', '0')]], 0)
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from slothlab.errors import HistoryError
from slothlab.metrics.sample import Sample

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["COLUMNS", "Batch", "SampleColumns", "to_batch"]

COLUMNS = ("ts", "host", "metric", "labels", "value")
_REQUIRED = ("ts", "host", "metric", "value")


class Batch(NamedTuple):
    """A normalised table and whether some row has labels whose keys may be out of order."""

    table: pa.Table
    unsorted_labels: bool


def to_batch(data: object) -> Batch:
    """Normalise samples, a DataFrame or an Arrow table into a :class:`Batch`."""
    samples = as_samples(data)
    if samples is not None:
        columns = SampleColumns()
        columns.append(samples)
        return columns.take()
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return _from_arrow(data)
    if _is_dataframe(data):
        return _from_pandas(data)
    raise HistoryError(
        f"write() takes Samples, a pandas DataFrame or a pyarrow Table, not {type(data).__name__}"
    )


def as_samples(data: object) -> Sequence[object] | None:
    """``data`` as a sequence of would-be Samples (a Sample, a list, any other iterable that
    is not a table, text or mapping); None for a table or a DataFrame or anything else."""
    if isinstance(data, Sample):
        return (data,)
    if isinstance(data, list | tuple):
        return data
    if _is_dataframe(data) or type(data).__module__.startswith("pyarrow"):
        return None
    if isinstance(data, Iterable) and not isinstance(data, str | bytes | Mapping):
        return list(data)
    return None


class SampleColumns:
    """Samples checked one by one and kept as columns of plain lists until :meth:`take`."""

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self.ts: list[float] = []
        self.host: list[str] = []
        self.metric: list[str] = []
        self.value: list[float] = []
        self.labels: list[list[tuple[str, str]]] = []

    def __len__(self) -> int:
        return len(self.ts)

    def append(self, samples: Sequence[object]) -> int:
        """Check every sample, then append them all (none when one is bad); returns how many.

        Raises:
            HistoryError: an item is not a Sample, or a field has the wrong type.
        """
        ts: list[float] = []
        value: list[float] = []
        labels: list[list[tuple[str, str]]] = []
        for item in samples:
            if not isinstance(item, Sample):
                raise HistoryError(f"write() got {item!r}; iterables must hold Sample objects")
            ts.append(_number(item, "ts", _epoch(item.ts)))
            value.append(_number(item, "value", item.value))
            if not (type(item.host) is str and type(item.metric) is str):
                _check_text(item)
            labels.append(_label_pairs(item.labels) if item.labels else [])
        self.ts.extend(ts)
        self.value.extend(value)
        self.labels.extend(labels)
        self.host.extend(s.host for s in samples)  # type: ignore[attr-defined]
        self.metric.extend(s.metric for s in samples)  # type: ignore[attr-defined]
        return len(ts)

    def take(self) -> Batch:
        """The buffered samples as one :class:`Batch`; the columns are empty afterwards."""
        import pyarrow as pa

        table = pa.table(
            {
                "ts": pa.array(self.ts, pa.float64()),
                "host": pa.array(self.host, pa.string()),
                "metric": pa.array(self.metric, pa.string()),
                "labels": pa.array(self.labels, _map_type()),
                "value": pa.array(self.value, pa.float64()),
            }
        )
        self._clear()
        return Batch(_normalise(table), unsorted_labels=False)


def _number(item: Sample, field: str, x: object) -> float:
    """``x`` (the sample's ``field``) as a float; a clear error when it is not a number."""
    if type(x) is float:
        return x
    if isinstance(x, numbers.Real) and not isinstance(x, bool):
        return float(x)
    raise HistoryError(
        f"a Sample has a field of the wrong type ({field}={x!r}); ts and value are numbers, "
        "host and metric text"
    )


def _check_text(item: Sample) -> None:
    for field in ("host", "metric"):
        if not isinstance(getattr(item, field), str):
            raise HistoryError(
                f"a Sample has a field of the wrong type ({field}={getattr(item, field)!r}); "
                "ts and value are numbers, host and metric text"
            )


def _is_dataframe(data: object) -> bool:
    module = type(data).__module__
    return module.startswith("pandas") and type(data).__name__ == "DataFrame"


def _epoch(ts: object) -> object:
    """Epoch seconds of a datetime (naive means UTC); anything else as it is."""
    if isinstance(ts, datetime):
        return (ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts).timestamp()
    return ts


def _label_pairs(labels: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    if not labels:
        return []
    return sorted((str(k), str(v)) for k, v in labels.items())


def _from_pandas(frame: Any) -> Batch:
    import pyarrow as pa

    _check_columns(list(frame.columns))
    columns = [c for c in COLUMNS if c in frame.columns]
    table = pa.Table.from_pandas(frame[[c for c in columns if c != "labels"]], preserve_index=False)
    if "labels" in frame.columns:
        pairs = [_label_pairs(x) if isinstance(x, Mapping) else [] for x in frame["labels"]]
        table = table.append_column("labels", pa.array(pairs, _map_type()))
    return Batch(_normalise(table), unsorted_labels=False)


def _from_arrow(table: pa.Table) -> Batch:
    import pyarrow as pa

    _check_columns(table.column_names)
    unsorted = False
    if "labels" in table.column_names:
        column = table.column("labels")
        if not pa.types.is_map(column.type):
            raise HistoryError(
                f"the labels column is {column.type}; it must be map<string, string> "
                "(build it with pa.array(rows, pa.map_(pa.string(), pa.string())))"
            )
        unsorted = _has_multi_key_rows(column)
    return Batch(_normalise(table), unsorted_labels=unsorted)


def _check_columns(names: list[str]) -> None:
    missing = [c for c in _REQUIRED if c not in names]
    extra = [c for c in names if c not in COLUMNS]
    if missing or extra:
        raise HistoryError(
            f"write() needs columns ts, host, metric, value (labels optional); missing {missing}, "
            f"unexpected {extra}: rename or drop columns to match"
        )


def _has_multi_key_rows(column: pa.ChunkedArray) -> bool:
    import numpy as np

    for chunk in column.chunks:
        offsets = chunk.offsets.to_numpy()
        if len(offsets) > 1 and int(np.diff(offsets).max()) > 1:
            return True
    return False


def _map_type() -> pa.DataType:
    import pyarrow as pa

    return pa.map_(pa.string(), pa.string())


def _normalise(table: pa.Table) -> pa.Table:
    """Cast every column to the schema type and check for nulls where none may be."""
    import pyarrow as pa

    columns = {
        "ts": _timestamps(table.column("ts")),
        "host": _strings(table.column("host"), "host"),
        "metric": _strings(table.column("metric"), "metric"),
        "labels": _labels(table),
        "value": _values(table.column("value")),
    }
    return pa.table(columns)


def _timestamps(column: pa.ChunkedArray) -> pa.ChunkedArray:
    import pyarrow as pa
    import pyarrow.compute as pc

    target = pa.timestamp("us", tz="UTC")
    kind = column.type
    if pa.types.is_timestamp(kind):
        if kind.tz is not None:
            column = column.cast(pa.timestamp(kind.unit, tz="UTC"))
        result = column.cast(target, safe=False)
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
        micros = pc.round(pc.multiply(column.cast(pa.float64()), 1e6))
        result = micros.cast(pa.int64()).cast(target)
    else:
        raise HistoryError(
            f"the ts column is {kind}; give datetimes or epoch seconds (numbers) in it"
        )
    _no_nulls(result, "ts")
    return result


def _strings(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    import pyarrow as pa

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise HistoryError(f"the {name} column is {column.type}; it must hold text")
    _no_nulls(column, name)
    return column.cast(pa.string())


def _values(column: pa.ChunkedArray) -> pa.ChunkedArray:
    import pyarrow as pa

    try:
        return column.cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise HistoryError(f"the value column ({column.type}) is not numeric: {exc}") from None


def _labels(table: pa.Table) -> pa.ChunkedArray | pa.Array:
    import numpy as np
    import pyarrow as pa

    if "labels" not in table.column_names:
        empty = pa.array([], pa.string())
        offsets = pa.array(np.zeros(table.num_rows + 1, dtype=np.int32))
        return pa.MapArray.from_arrays(offsets, empty, empty)
    column = table.column("labels").cast(_map_type())
    if column.null_count:
        column = column.fill_null(pa.scalar([], _map_type()))
    return column


def _no_nulls(column: pa.ChunkedArray, name: str) -> None:
    if column.null_count:
        raise HistoryError(f"the {name} column has {column.null_count} empty values; fill them")
