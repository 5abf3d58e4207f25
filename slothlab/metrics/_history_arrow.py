"""Turn what callers hand to ``MetricsHistory.write`` into one Arrow table of the samples schema.

Samples, pandas DataFrames and Arrow tables all end up as columns ``ts`` (timestamp[us, UTC]),
``host``, ``metric`` (string), ``labels`` (map<string, string>) and ``value`` (float64), so the
insert is one vectorised ``INSERT ... SELECT`` (executemany is ~1,000x slower; see
notes/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from slothlab.errors import HistoryError
from slothlab.metrics.sample import Sample

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["COLUMNS", "Batch", "to_batch"]

COLUMNS = ("ts", "host", "metric", "labels", "value")
_REQUIRED = ("ts", "host", "metric", "value")


class Batch(NamedTuple):
    """A normalised table and whether some row has labels whose keys may be out of order."""

    table: pa.Table
    unsorted_labels: bool


def to_batch(data: object) -> Batch:
    """Normalise samples, a DataFrame or an Arrow table into a :class:`Batch`."""
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return _from_arrow(data)
    if _is_dataframe(data):
        return _from_pandas(data)
    if isinstance(data, Sample):
        data = [data]
    if isinstance(data, Iterable) and not isinstance(data, str | bytes | Mapping):
        return _from_samples(data)
    raise HistoryError(
        f"write() takes Samples, a pandas DataFrame or a pyarrow Table, not {type(data).__name__}"
    )


def _is_dataframe(data: object) -> bool:
    module = type(data).__module__
    return module.startswith("pandas") and type(data).__name__ == "DataFrame"


def _from_samples(samples: Iterable[object]) -> Batch:
    import pyarrow as pa

    ts: list[object] = []
    host: list[str] = []
    metric: list[str] = []
    value: list[float] = []
    labels: list[list[tuple[str, str]]] = []
    for item in samples:
        if not isinstance(item, Sample):
            raise HistoryError(f"write() got {item!r}; iterables must hold Sample objects")
        ts.append(_epoch(item.ts))
        host.append(item.host)
        metric.append(item.metric)
        value.append(item.value)
        labels.append(_label_pairs(item.labels))
    try:
        table = pa.table(
            {
                "ts": pa.array(ts, pa.float64()),
                "host": pa.array(host, pa.string()),
                "metric": pa.array(metric, pa.string()),
                "labels": pa.array(labels, _map_type()),
                "value": pa.array(value, pa.float64()),
            }
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise HistoryError(
            f"a Sample has a field of the wrong type ({exc}); ts and value are numbers, "
            "host and metric text"
        ) from None
    return Batch(_normalise(table), unsorted_labels=False)


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
