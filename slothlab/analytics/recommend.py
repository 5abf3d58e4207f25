"""Performance recommendations: which resource limits which host, and what to do about it.

Per host, the 95th percentile over the window of CPU, memory, disk (the fullest mount) and
swap use, and of the 1-minute load per core. The *limiting* resource is the one with the
highest of those; the signals of saturation are load above the core count, swap in use, and a
resource near full. :func:`recommend` turns them (and, given instance types, the rightsizing
advice of :mod:`slothlab.analytics.cost`) into one row per piece of advice.

>>> from slothlab.metrics import MetricsHistory, Sample
>>> h = MetricsHistory(":memory:", background=False, clock=lambda: 3600.0)
>>> _ = h.write([Sample(60.0 * i, "db-1", "slothlab_disk_usage_ratio", 0.97) for i in range(60)])
>>> recommend(h, since=0)[["host", "resource", "severity"]].to_dict("records")
[{'host': 'db-1', 'resource': 'disk', 'severity': 'critical'}]
>>> h.close()
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from slothlab.analytics._usage import host_percentile

if TYPE_CHECKING:
    import pandas as pd

    from slothlab.analytics.prices import PriceCatalogue
    from slothlab.metrics.history import MetricsHistory

__all__ = ["RESOURCES", "bottlenecks", "recommend"]

RESOURCES: dict[str, str] = {
    "cpu": "slothlab_cpu_usage_ratio",
    "memory": "slothlab_memory_usage_ratio",
    "disk": "slothlab_disk_usage_ratio",
    "swap": "slothlab_swap_usage_ratio",
}
"""Resource -> the usage-ratio metric its p95 is read from."""

_LOAD = "slothlab_load1"
_CORES = "slothlab_cpu_core_usage_ratio"
_COLUMNS = ["host", "kind", "resource", "value", "severity", "advice"]


def bottlenecks(
    history: MetricsHistory,
    hosts: Sequence[str] | None = None,
    *,
    since: Any = "-7d",
    until: Any = None,
    cores: Mapping[str, int] | None = None,
    quantile: float = 0.95,
) -> pd.DataFrame:
    """Per host: p95 use of each resource, load per core, the limiting resource and signals.

    Args:
        hosts: only these (default: every host in the history).
        cores: host -> CPU cores; otherwise counted from the per-core CPU metric's labels.

    Returns:
        Columns host, cpu, memory, disk, swap, load_per_core (NaN where there are no
        samples), cores, limiting and signals (a list of short texts).
    """
    import pandas as pd

    chosen = list(hosts) if hosts is not None else list(history.hosts()["host"])
    frame = pd.DataFrame(index=pd.Index(chosen, name="host"))
    for resource, metric in RESOURCES.items():
        frame[resource] = host_percentile(history, metric, chosen, since, until, quantile)
    load = host_percentile(history, _LOAD, chosen, since, until, quantile)
    counted = _core_counts(history, chosen, since, until)
    frame["cores"] = [(cores or {}).get(h, counted.get(h, math.nan)) for h in chosen]
    frame["load_per_core"] = load.reindex(frame.index) / frame["cores"]
    usage = frame[[*RESOURCES, "load_per_core"]]
    frame["limiting"] = [_limiting(row) for _, row in usage.iterrows()]
    frame["signals"] = [_signals(row) for _, row in frame.iterrows()]
    return frame.reset_index()


def _core_counts(
    history: MetricsHistory, hosts: Sequence[str], since: Any, until: Any
) -> dict[str, int]:
    frame = history.query(_CORES, host=hosts, start=since, end=until, step="1h", agg="count")
    if frame.empty:
        return {}
    cores = frame["labels"].map(lambda labels: dict(labels or {}).get("core"))
    counts = frame.assign(core=cores).groupby("host")["core"].nunique()
    return {str(h): int(n) for h, n in counts.items()}


def _limiting(row: pd.Series) -> str:
    known = row.dropna()
    if known.empty:
        return ""
    name = str(known.idxmax())
    return "cpu" if name == "load_per_core" else name


def _signals(row: pd.Series) -> list[str]:
    out = []
    if row["load_per_core"] > 1:
        out.append(f"load {row['load_per_core']:.1f} per core")
    if row["swap"] > 0.05:
        out.append(f"swap {row['swap']:.0%} used")
    for resource in ("cpu", "memory", "disk"):
        if row[resource] > 0.9:
            out.append(f"{resource} {row[resource]:.0%}")
    return out


def recommend(
    history: MetricsHistory,
    hosts: Sequence[str] | None = None,
    *,
    since: Any = "-7d",
    until: Any = None,
    cores: Mapping[str, int] | None = None,
    instance_types: Mapping[str, str] | None = None,
    catalogue: PriceCatalogue | None = None,
) -> pd.DataFrame:
    """Advice per host: performance from :func:`bottlenecks`, and cost when types are given.

    Returns:
        Columns host, kind (``performance`` or ``cost``), resource, value (the p95 behind the
        advice, or the monthly saving), severity (``info``, ``warning``, ``critical``) and
        advice; the most severe first.
    """
    import pandas as pd

    rows: list[tuple[Any, ...]] = []
    found = bottlenecks(history, hosts, since=since, until=until, cores=cores)
    for row in found.itertuples(index=False):
        rows.extend(_performance(row))
    if instance_types:
        from slothlab.analytics.cost import rightsize

        advice = rightsize(history, instance_types, catalogue=catalogue, since=since, until=until)
        for item in advice.itertuples(index=False):
            if item.action in {"stop", "resize"}:
                severity = "warning" if item.monthly_savings > 0 else "info"
                rows.append(
                    (item.host, "cost", "instance", item.monthly_savings, severity, item.reason)
                )
    out = pd.DataFrame(rows, columns=_COLUMNS)
    rank = out["severity"].map({"critical": 0, "warning": 1, "info": 2})
    return out.assign(_r=rank).sort_values(["_r", "host"], kind="stable").drop(columns="_r")


def _performance(row: Any) -> list[tuple[Any, ...]]:
    host, out = row.host, []
    if row.load_per_core > 1:
        out.append((host, "performance", "cpu", row.load_per_core, "critical",
                    f"CPU saturated: load p95 is {row.load_per_core:.1f} per core on "
                    f"{row.cores:g} cores; add cores or move work off this host"))  # fmt: skip
    elif row.cpu > 0.9:
        out.append((host, "performance", "cpu", row.cpu, "warning",
                    f"CPU-bound: p95 use {row.cpu:.0%}; add cores or spread the load"))  # fmt: skip
    if row.swap > 0.05 or row.memory > 0.9:
        value = row.swap if row.swap > 0.05 else row.memory
        out.append((host, "performance", "memory", value, "warning",
                    f"memory-bound: p95 memory {row.memory:.0%}, swap {row.swap:.0%}; "
                    "add memory or cap the biggest processes"))  # fmt: skip
    if row.disk > 0.9:
        severity = "critical" if row.disk > 0.95 else "warning"
        out.append((host, "performance", "disk", row.disk, severity,
                    f"disk nearly full: p95 {row.disk:.0%}; free space or grow the volume "
                    "(see capacity_report for when it fills)"))  # fmt: skip
    return out
