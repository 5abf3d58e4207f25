"""Reading usage from the history: per-host percentiles and uptime, shared by cost and advice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from slothlab.metrics.history import MetricsHistory

__all__ = ["MONTH_HOURS", "host_percentile", "tag_list", "uptime_hours"]

MONTH_HOURS = 730.0
"""Hours in an average month (365 * 24 / 12), the unit of monthly costs and savings."""


def host_percentile(
    history: MetricsHistory,
    metric: str,
    hosts: Sequence[str] | None,
    since: Any,
    until: Any = None,
    q: float = 0.95,
    step: str = "1m",
) -> pd.Series:
    """host -> the ``q`` quantile of ``metric``'s ``step`` averages (the largest over label sets:
    the fullest disk of a host). Hosts without samples are missing from the result."""
    import pandas as pd

    frame = history.query(metric, host=hosts, start=since, end=until, step=step, agg="avg")
    if frame.empty:
        return pd.Series(dtype=float, name=metric)
    keys = frame["labels"].map(lambda labels: tuple(sorted(dict(labels or {}).items())))
    per_series = frame.assign(_k=keys).groupby(["host", "_k"])["value"].quantile(q)
    out: pd.Series = per_series.groupby(level="host").max().rename(metric)
    return out


def uptime_hours(
    history: MetricsHistory, metric: str, hosts: Sequence[str], since: Any, until: Any = None
) -> pd.DataFrame:
    """Hours each host was up per UTC day: the minutes in which it sent ``metric``, over 60.

    Returns columns day (UTC midnight), host, hours.
    """
    import pandas as pd

    frame = history.query(metric, host=list(hosts), start=since, end=until, step="1m", agg="count")
    if frame.empty:
        return pd.DataFrame(
            {"day": pd.Series(dtype="datetime64[us, UTC]"), "host": [], "hours": []}
        )
    minutes = frame.drop_duplicates(["host", "ts"])
    minutes = minutes.assign(day=minutes["ts"].dt.floor("D"))
    out = minutes.groupby(["day", "host"]).size().rename("hours").reset_index()
    out["hours"] = out["hours"] / 60.0
    return out


def tag_list(tags: Mapping[str, str | Sequence[str]] | None, host: str) -> list[str]:
    """The tags of ``host`` as a list ("" when it has none)."""
    found = (tags or {}).get(host, ())
    listed = [found] if isinstance(found, str) else list(found)
    return listed or [""]
