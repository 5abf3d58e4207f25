"""Custom metrics: gauges, counters, histograms and timers with tags, exported to Prometheus.

One :class:`CustomMetrics` holds the metrics of one Lua state, agent or notebook, and has its
own ``prometheus_client`` ``CollectorRegistry`` (never the global one).

A metric is known by its name; each distinct set of tags on it is one series. The summary
that :meth:`CustomMetrics.get` gives (and Lua's ``get_custom``) covers every series of the
name, as sloth-runner does: a counter's value is its total over all tags, the tags shown are
those of the last update.

**The tag rule.** Prometheus needs one fixed set of label names per metric, but Lua code may
call ``counter("jobs_total")`` and later ``counter("jobs_total", 4, {kind = "batch"})``. The
label names of an exported metric are the union of every tag key seen on it, in the order
first seen; a series without one of them exports it with an empty value, which Prometheus
treats exactly as an absent label (so ``{}`` and ``{kind=""}`` are the same series, and an
empty tag value is dropped on input). Adding a key later therefore never changes the identity
of an existing series and never produces invalid exposition.

**Exported names.** Gauges and histograms keep their name; a counter gets ``_total`` appended
unless it ends with it; a timer is a histogram in seconds named ``<name>_seconds`` (unless the
name ends with ``_seconds``). A name whose exported names would collide with another metric's
(``x`` as a counter and ``x_total`` as a gauge, ``x_count`` beside histogram ``x``) is refused.

>>> m = CustomMetrics(clock=lambda: 0.0)
>>> m.gauge("queue_depth", 17, {"queue": "ingest"})
>>> m.counter("jobs_total"), m.counter("jobs_total", 4, {"kind": "batch"})
(1, 5)
>>> m.get("queue_depth")
{'type': 'gauge', 'value': 17, 'tags': {'queue': 'ingest'}, 'timestamp': '1970-01-01T00:00:00Z'}
"""

from __future__ import annotations

import datetime as _dt
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from slothlab._types import Clock
from slothlab.errors import CustomMetricError, MetricNameError, MissingDependencyError
from slothlab.metrics.names import check_label_name, check_metric_name, lint_metric_name
from slothlab.metrics.sample import Sample

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

__all__ = [
    "DEFAULT_BUCKETS",
    "DEFAULT_WINDOW",
    "KINDS",
    "MAX_SERIES",
    "TIMER_BUCKETS",
    "CustomMetrics",
    "default_custom_metrics",
    "quantile",
]

KINDS = ("counter", "gauge", "histogram", "timer")
"""The types of custom metric."""

DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
)  # fmt: skip
"""Histogram upper bounds when none are given: Prometheus' defaults, extended to 10,000."""

TIMER_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60,
)  # fmt: skip
"""Timer upper bounds, in seconds."""

DEFAULT_WINDOW = 1024
"""Observations kept per series for the p50/p90/p99 of histograms and timers."""

MAX_SERIES = 10_000
"""Distinct tag sets allowed on one metric: a guard against unbounded label values."""

_QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
_RESERVED_TAGS = {"histogram": frozenset({"le"}), "timer": frozenset({"le"})}

TagKey = tuple[tuple[str, str], ...]


def quantile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of ``values`` by linear interpolation; None when there are none.

    >>> quantile([10, 20, 60], 0.5), quantile([10, 20, 60], 0.9), quantile([], 0.5)
    (20, 52.0, None)
    """
    if not values:
        return None
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    if pos == low:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


class _Series:
    """One tag set of one metric."""

    __slots__ = ("buckets", "count", "labels", "max", "min", "sum", "value", "window")

    def __init__(self, labels: dict[str, str], n_buckets: int, window: int) -> None:
        self.labels = labels
        self.value: float = 0
        self.count = 0
        self.sum: float = 0
        self.min: float = math.inf
        self.max: float = -math.inf
        self.buckets = [0] * (n_buckets + 1)  # per bucket (not cumulative); the last is +Inf
        self.window: deque[float] = deque(maxlen=window)

    def observe(self, value: float, bounds: Sequence[float]) -> None:
        self.count += 1
        self.sum += value
        self.min, self.max = min(self.min, value), max(self.max, value)
        self.window.append(value)
        for i, bound in enumerate(bounds):
            if value <= bound:
                self.buckets[i] += 1
                return
        self.buckets[-1] += 1


class _Family:
    """Every series of one metric name."""

    def __init__(self, name: str, kind: str, bounds: tuple[float, ...], help_text: str) -> None:
        self.name, self.kind, self.bounds, self.help = name, kind, bounds, help_text
        self.label_names: list[str] = []
        self.series: dict[TagKey, _Series] = {}
        self.last_tags: dict[str, str] = {}
        self.last_value: float = 0
        self.last_duration_ms: float = 0
        self.updated = 0.0

    @property
    def exported(self) -> str:
        """The metric's family name on /metrics."""
        if self.kind == "counter":
            return self.name.removesuffix("_total")
        if self.kind == "timer" and not self.name.endswith("_seconds"):
            return f"{self.name}_seconds"
        return self.name

    def taken(self) -> set[str]:
        """Every name this metric puts on /metrics (the family and its sample names)."""
        base = self.exported
        if self.kind == "counter":
            return {base, f"{base}_total"}
        if self.kind in {"histogram", "timer"}:
            return {base, f"{base}_bucket", f"{base}_count", f"{base}_sum"}
        return {base}

    def series_for(self, tags: dict[str, str], window: int) -> _Series:
        key = tuple(sorted(tags.items()))
        found = self.series.get(key)
        if found is not None:
            return found
        if len(self.series) >= MAX_SERIES:
            raise CustomMetricError(
                f"metric {self.name!r} already has {MAX_SERIES} tag sets; tags must not carry "
                "unbounded values (ids, timestamps): move those into the metric's value or logs"
            )
        for k in tags:
            if k not in self.label_names:
                self.label_names.append(k)
        created = _Series(tags, len(self.bounds), window)
        self.series[key] = created
        return created


class CustomMetrics:
    """The custom metrics of one Lua state, agent or notebook.

    Args:
        clock: wall clock for the timestamps (default ``time.time``).
        timer_clock: clock for :meth:`timer` (default ``time.perf_counter``).
        buckets: histogram upper bounds when a metric does not give its own.
        window: observations kept per series for quantiles.
        strict: refuse names that break Prometheus conventions (``latency_ms``: use
            ``latency_seconds``), not only invalid ones. Off by default, so that scripts
            written for sloth-runner keep working.
    """

    def __init__(
        self,
        *,
        clock: Clock = time.time,
        timer_clock: Clock = time.perf_counter,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        window: int = DEFAULT_WINDOW,
        strict: bool = False,
    ) -> None:
        self._clock, self._timer_clock = clock, timer_clock
        self.buckets = _check_buckets(buckets)
        self.window, self.strict = window, strict
        self._families: dict[str, _Family] = {}
        self._lock = threading.Lock()
        self._registry: CollectorRegistry | None = None

    # -- updates ------------------------------------------------------------------------------

    def gauge(self, name: str, value: float, tags: Mapping[str, Any] | None = None) -> None:
        """Set gauge ``name`` (for these tags) to ``value``."""
        value = _number(value, name)
        with self._lock:
            family, series = self._series(name, "gauge", tags)
            series.value = family.last_value = value

    def counter(self, name: str, inc: float = 1, tags: Mapping[str, Any] | None = None) -> float:
        """Add ``inc`` (>= 0) to counter ``name`` and return its total over every tag set."""
        inc = _number(inc, name)
        if inc < 0:
            raise CustomMetricError(
                f"counter {name!r} cannot go down (increment {inc}); use a gauge for values "
                "that rise and fall"
            )
        with self._lock:
            family, series = self._series(name, "counter", tags)
            series.value += inc
            family.last_value = sum(s.value for s in family.series.values())
            return family.last_value

    def histogram(
        self,
        name: str,
        value: float,
        tags: Mapping[str, Any] | None = None,
        *,
        buckets: Sequence[float] | None = None,
    ) -> None:
        """Record ``value`` in histogram ``name``; ``buckets`` may be given on first use."""
        value = _number(value, name)
        bounds = _check_buckets(buckets) if buckets is not None else None
        with self._lock:
            family, series = self._series(name, "histogram", tags, bounds)
            series.observe(value, family.bounds)

    def record_timer(
        self, name: str, elapsed_ms: float, tags: Mapping[str, Any] | None = None
    ) -> None:
        """Record one duration of timer ``name``, in milliseconds."""
        elapsed_ms = _number(elapsed_ms, name)
        if elapsed_ms < 0:
            raise CustomMetricError(f"timer {name!r}: a duration cannot be negative")
        with self._lock:
            family, series = self._series(name, "timer", tags, TIMER_BUCKETS)
            series.observe(elapsed_ms / 1000.0, family.bounds)
            family.last_duration_ms = elapsed_ms

    def timer(
        self, name: str, fn: Callable[[], Any], tags: Mapping[str, Any] | None = None
    ) -> float:
        """Call ``fn()``, record how long it took, and return that in milliseconds.

        If ``fn`` raises, nothing is recorded and the exception propagates.
        """
        start = self._timer_clock()
        fn()
        elapsed_ms = (self._timer_clock() - start) * 1000.0
        self.record_timer(name, elapsed_ms, tags)
        return elapsed_ms

    @contextmanager
    def timed(self, name: str, tags: Mapping[str, Any] | None = None) -> Iterator[None]:
        """Time the ``with`` block as timer ``name`` (not recorded when the block raises)."""
        start = self._timer_clock()
        yield
        self.record_timer(name, (self._timer_clock() - start) * 1000.0, tags)

    def _series(
        self,
        name: str,
        kind: str,
        tags: Mapping[str, Any] | None,
        bounds: tuple[float, ...] | None = None,
    ) -> tuple[_Family, _Series]:
        clean = _tags(tags, name, _RESERVED_TAGS.get(kind, frozenset()))
        family = self._families.get(name) or self._new_family(name, kind, bounds)
        if family.kind != kind:
            raise CustomMetricError(
                f"metric {name!r} is a {family.kind}, not a {kind}; use another name"
            )
        if bounds is not None and kind == "histogram" and bounds != family.bounds:
            raise CustomMetricError(
                f"histogram {name!r} already has buckets {list(family.bounds)}; a metric keeps "
                "the buckets of its first use"
            )
        series = family.series_for(clean, self.window)
        family.last_tags, family.updated = clean, self._clock()
        return family, series

    def _new_family(self, name: str, kind: str, bounds: tuple[float, ...] | None) -> _Family:
        check_metric_name(name)
        problems = lint_metric_name(name, kind)
        if self.strict and problems:
            raise MetricNameError(f"metric name {name!r}: " + "; ".join(problems))
        help_text = f"Custom {kind} {name}" + (", in seconds" if kind == "timer" else "")
        family = _Family(name, kind, bounds or self.buckets, help_text)
        taken = family.taken()
        for other in self._families.values():
            clash = taken & other.taken()
            if clash:
                raise CustomMetricError(
                    f"metric {name!r} ({kind}) would be exported as {sorted(clash)[0]!r}, "
                    f"which {other.kind} {other.name!r} already uses; choose another name"
                )
        self._families[name] = family
        return family

    # -- reading ------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """The names of every metric, sorted."""
        with self._lock:
            return sorted(self._families)

    def get(self, name: str) -> dict[str, Any] | None:
        """A summary of metric ``name`` over all its tag sets, or None when it is unknown.

        Keys: ``type``, ``tags`` (of the last update), ``timestamp`` (RFC 3339, UTC), and
        ``value`` for gauges and counters; ``count``, ``sum``, ``avg``, ``min``, ``max``,
        ``p50``, ``p90``, ``p99`` for histograms; the same in milliseconds plus the last
        ``duration_ms`` for timers.
        """
        with self._lock:
            family = self._families.get(name)
            return None if family is None else _summary(family)

    def series(self, name: str) -> list[dict[str, Any]]:
        """Each tag set of ``name`` with its own value or summary; [] when it is unknown."""
        with self._lock:
            family = self._families.get(name)
            if family is None:
                return []
            return [_series_summary(family, s) for s in family.series.values()]

    def samples(self, host: str, ts: float | None = None) -> list[Sample]:
        """Every series as history samples (histograms and timers as ``_count``/``_sum``)."""
        at = self._clock() if ts is None else ts
        out: list[Sample] = []
        with self._lock:
            for family in self._families.values():
                for s in family.series.values():
                    out.extend(_to_samples(family, s, host, at))
        return out

    # -- hand-over between processes -----------------------------------------------------------

    def dump(self) -> list[dict[str, Any]]:
        """Every metric as JSON-able data that :meth:`merge` adds into another instance.

        How a Lua worker process hands its task's metrics back to the agent (the task's
        runtime, and its metrics with it, end when the task does).
        """
        with self._lock:
            return [_dump_family(f) for f in self._families.values()]

    def merge(self, dumped: Sequence[Mapping[str, Any]]) -> list[str]:
        """Add metrics another instance gave by :meth:`dump`: counters and histogram counts add
        up, gauges take the dumped value. Returns a problem per metric that was refused (a name
        used with another type, other buckets, bad values), each saying why; [] when all
        merged. A refused metric keeps the series merged before the bad one.

        >>> task, agent = CustomMetrics(), CustomMetrics()
        >>> _ = task.counter("jobs_total", 2); _ = agent.counter("jobs_total", 1)
        >>> agent.merge(task.dump()), agent.get("jobs_total")["value"]
        ([], 3)
        """
        problems: list[str] = []
        for family in dumped:
            try:
                self._merge_family(family)
            except (CustomMetricError, MetricNameError, KeyError, TypeError, ValueError) as exc:
                name = family.get("name") if isinstance(family, Mapping) else family
                problems.append(f"custom metric {name!r} not merged: {exc}")
        return problems

    def _merge_family(self, dumped: Mapping[str, Any]) -> None:
        name, kind = str(dumped["name"]), str(dumped["kind"])
        if kind not in KINDS:
            raise CustomMetricError(f"unknown kind {kind!r}")
        bounds = _check_buckets(dumped["bounds"]) if kind in {"histogram", "timer"} else None
        with self._lock:
            family = self._families.get(name)
            if family is not None and bounds is not None and family.bounds != bounds:
                raise CustomMetricError(
                    f"its buckets {list(bounds)} are not the {list(family.bounds)} it has here"
                )
            for row in dumped["series"]:
                family, series = self._series(name, kind, row["tags"], bounds)
                _merge_series(series, row, kind, len(family.bounds))
            if family is None:
                return
            if kind == "counter":
                family.last_value = sum(s.value for s in family.series.values())
            elif kind == "gauge":
                family.last_value = _number(dumped["last_value"], name)
            family.last_duration_ms = _number(dumped.get("last_duration_ms", 0), name)
            family.last_tags = _tags(dumped.get("last_tags"), name, frozenset())
            family.updated = _number(dumped.get("updated", family.updated), name)

    # -- Prometheus ---------------------------------------------------------------------------

    @property
    def registry(self) -> CollectorRegistry:
        """This instance's own ``prometheus_client`` registry, with these metrics in it."""
        if self._registry is None:
            from slothlab.metrics.exposition import CustomCollector

            try:
                from prometheus_client.registry import CollectorRegistry
            except ImportError:
                raise MissingDependencyError("prometheus_client", "metrics") from None
            registry = CollectorRegistry(auto_describe=False)
            registry.register(CustomCollector(self))
            self._registry = registry
        return self._registry

    def families(self) -> list[dict[str, Any]]:
        """A consistent copy of every metric for exporters: name, kind, labels, series."""
        with self._lock:
            return [_export(f) for f in self._families.values()]


_default: CustomMetrics | None = None
_default_lock = threading.Lock()


def default_custom_metrics() -> CustomMetrics:
    """The process's custom metrics, made on first use.

    What a :class:`~slothlab.lua.pool.WorkerPool` merges its tasks' metrics into unless it is
    given another instance, and what ``slothlab agent start`` exports on ``/metrics`` and
    sends with its heartbeats.

    >>> default_custom_metrics() is default_custom_metrics()
    True
    """
    global _default
    with _default_lock:
        if _default is None:
            _default = CustomMetrics()
        return _default


def _dump_family(family: _Family) -> dict[str, Any]:
    return {
        "name": family.name,
        "kind": family.kind,
        "bounds": list(family.bounds),
        "last_value": family.last_value,
        "last_duration_ms": family.last_duration_ms,
        "last_tags": dict(family.last_tags),
        "updated": family.updated,
        "series": [_dump_series(s) for s in family.series.values()],
    }


def _dump_series(s: _Series) -> dict[str, Any]:
    return {
        "tags": dict(s.labels),
        "value": s.value,
        "count": s.count,
        "sum": s.sum,
        "min": s.min if s.count else None,
        "max": s.max if s.count else None,
        "buckets": list(s.buckets),
        "window": list(s.window),
    }


def _merge_series(series: _Series, row: Mapping[str, Any], kind: str, n_bounds: int) -> None:
    """Add one dumped series into ``series`` (checked first, so a bad row changes nothing)."""
    name = "series"
    value = _number(row["value"], name)
    if kind == "gauge":
        series.value = value
        return
    if kind == "counter":
        if value < 0:
            raise CustomMetricError(f"a counter cannot add {value}")
        series.value += value
        return
    buckets = [int(_number(b, name)) for b in row["buckets"]]
    window = [_number(v, name) for v in row["window"]]
    count, total = int(_number(row["count"], name)), _number(row["sum"], name)
    if len(buckets) != n_bounds + 1 or min(buckets, default=0) < 0 or sum(buckets) != count:
        raise CustomMetricError(f"bucket counts {buckets} do not fit the buckets or the count")
    if not count:
        return
    series.count += count
    series.sum += total
    series.min = min(series.min, _number(row["min"], name))
    series.max = max(series.max, _number(row["max"], name))
    series.buckets = [a + b for a, b in zip(series.buckets, buckets, strict=True)]
    series.window.extend(window)


def _number(value: Any, name: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CustomMetricError(f"metric {name!r}: the value must be a number, not {value!r}")
    if not math.isfinite(value):
        raise CustomMetricError(f"metric {name!r}: the value must be finite, not {value!r}")
    return value


def _tag_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str | int | float):
        return str(value)
    raise TypeError(type(value).__name__)


def _tags(tags: Mapping[str, Any] | None, name: str, reserved: frozenset[str]) -> dict[str, str]:
    if not tags:  # None, or an empty Lua table (which converts to {} or [])
        return {}
    if not isinstance(tags, Mapping):
        raise CustomMetricError(
            f"metric {name!r}: tags must be a table of name = value pairs, not {tags!r}"
        )
    clean: dict[str, str] = {}
    for key, value in tags.items():
        check_label_name(key, reserved=reserved)
        try:
            text = _tag_value(value)
        except TypeError as exc:
            raise CustomMetricError(
                f"metric {name!r}: tag {key!r} must be a string, number or boolean, not {exc}"
            ) from None
        if text:  # an empty value is the same as no label in Prometheus
            clean[key] = text
    return clean


def _check_buckets(buckets: Sequence[float]) -> tuple[float, ...]:
    bounds = tuple(float(b) for b in buckets if b != math.inf)
    if not bounds or any(not math.isfinite(b) for b in bounds):
        raise CustomMetricError(f"buckets must be finite numbers, not {list(buckets)!r}")
    if list(bounds) != sorted(set(bounds)):
        raise CustomMetricError(f"buckets must be strictly increasing, not {list(buckets)!r}")
    return bounds


def _rfc3339(ts: float) -> str:
    moment = _dt.datetime.fromtimestamp(ts, _dt.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _whole(x: float) -> float:
    """Whole floats as ints, so Lua sees ``30`` rather than ``30.0``."""
    return int(x) if isinstance(x, float) and x.is_integer() and abs(x) < 2**53 else x


def _stats(series: Sequence[_Series], scale: float) -> dict[str, Any]:
    count = sum(s.count for s in series)
    total = sum(s.sum for s in series)
    window = [v for s in series for v in s.window]
    out: dict[str, Any] = {
        "count": count,
        "sum": _whole(total * scale),
        "avg": _whole(total * scale / count) if count else 0,
        "min": _whole(min(s.min for s in series) * scale) if count else 0,
        "max": _whole(max(s.max for s in series) * scale) if count else 0,
    }
    for key, q in _QUANTILES:
        value = quantile(window, q)
        out[key] = None if value is None else _whole(value * scale)
    return out


def _summary(family: _Family) -> dict[str, Any]:
    out: dict[str, Any] = {"type": family.kind}
    series = list(family.series.values())
    if family.kind in {"gauge", "counter"}:
        out["value"] = family.last_value
    elif family.kind == "histogram":
        out.update(_stats(series, 1.0))
    else:
        out["duration_ms"] = family.last_duration_ms
        out.update(_stats(series, 1000.0))
    out["tags"] = dict(family.last_tags)
    out["timestamp"] = _rfc3339(family.updated)
    return out


def _series_summary(family: _Family, s: _Series) -> dict[str, Any]:
    out: dict[str, Any] = {"tags": dict(s.labels)}
    if family.kind in {"gauge", "counter"}:
        out["value"] = s.value
    else:
        out.update(_stats([s], 1000.0 if family.kind == "timer" else 1.0))
    return out


def _to_samples(family: _Family, s: _Series, host: str, ts: float) -> list[Sample]:
    name = family.exported
    if family.kind == "gauge":
        return [Sample(ts, host, name, float(s.value), dict(s.labels))]
    if family.kind == "counter":
        return [Sample(ts, host, f"{name}_total", float(s.value), dict(s.labels))]
    return [
        Sample(ts, host, f"{name}_count", float(s.count), dict(s.labels)),
        Sample(ts, host, f"{name}_sum", float(s.sum), dict(s.labels)),
    ]


def _export(family: _Family) -> dict[str, Any]:
    names = list(family.label_names)
    rows = []
    for s in family.series.values():
        values = [s.labels.get(k, "") for k in names]
        cumulative, running = [], 0
        for c in s.buckets:
            running += c
            cumulative.append(running)
        rows.append({"labels": values, "value": s.value, "buckets": cumulative, "sum": s.sum})
    return {
        "name": family.exported,
        "kind": family.kind,
        "help": family.help,
        "label_names": names,
        "bounds": family.bounds,
        "series": rows,
    }
