"""Cost from the history: cost per host, tag and day; rightsizing; idle hosts; savings.

A host costs its instance type's hourly price for every hour it was up, and it was up in every
minute in which it sent a sample (of ``slothlab_cpu_usage_ratio`` by default). Rightsizing
compares the 95th percentile of CPU and memory use with the size of the type: the suggestion is
the cheapest type of the same provider and region whose vCPUs and memory cover that use plus a
headroom; a host whose CPU p95 stays under ``idle_cpu`` is idle (stop it or consolidate).

>>> from slothlab.metrics import MetricsHistory, Sample
>>> h = MetricsHistory(":memory:", background=False, clock=lambda: 7200.0)
>>> _ = h.write([Sample(60.0 * i, "web-1", "slothlab_cpu_usage_ratio", 0.5) for i in range(120)])
>>> report = cost_report(h, {"web-1": "m5.large"}, since=0)
>>> report[["host", "hours", "cost"]].to_dict("records")
[{'host': 'web-1', 'hours': 2.0, 'cost': 0.192}]
>>> h.close()
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slothlab.analytics._usage import MONTH_HOURS, host_percentile, tag_list, uptime_hours
from slothlab.analytics.prices import InstanceType, PriceCatalogue
from slothlab.errors import AnalyticsError

if TYPE_CHECKING:
    import pandas as pd

    from slothlab.metrics.history import MetricsHistory

__all__ = ["Savings", "cost_report", "rightsize", "savings_estimate"]

CPU = "slothlab_cpu_usage_ratio"
MEMORY = "slothlab_memory_usage_ratio"

Tags = Mapping[str, str | Sequence[str]]


def cost_report(
    history: MetricsHistory,
    instance_types: Mapping[str, str],
    *,
    tags: Tags | None = None,
    catalogue: PriceCatalogue | None = None,
    since: Any = "-30d",
    until: Any = None,
    uptime_metric: str = CPU,
) -> pd.DataFrame:
    """What each host cost per UTC day, from its uptime in the history and its type's price.

    Args:
        history: the metrics history.
        instance_types: host -> instance type; only these hosts are costed.
        tags: host -> tag or tags. A host with several tags splits its cost evenly among them,
            so ``groupby("tag").cost.sum()`` adds up to the fleet's total.
        catalogue: prices (default: :meth:`PriceCatalogue.from_settings`).
        since, until: the window (anything ``history.query`` takes).
        uptime_metric: the metric whose samples show a host is up.

    Returns:
        Columns day, host, tag, instance_type, hours, hourly_price, cost; one row per day,
        host and tag.
    """
    import pandas as pd

    catalogue = catalogue or PriceCatalogue.from_settings()
    priced = {host: catalogue.get(name) for host, name in instance_types.items()}
    up = uptime_hours(history, uptime_metric, sorted(priced), since, until)
    rows = []
    for day, host, hours in up.itertuples(index=False):
        item, shares = priced[host], tag_list(tags, host)
        for tag in shares:
            cost = hours * item.hourly_price / len(shares)
            rows.append((day, host, tag, item.name, hours, item.hourly_price, cost))
    columns = ["day", "host", "tag", "instance_type", "hours", "hourly_price", "cost"]
    return pd.DataFrame(rows, columns=columns)


def rightsize(
    history: MetricsHistory,
    instance_types: Mapping[str, str],
    *,
    catalogue: PriceCatalogue | None = None,
    since: Any = "-14d",
    until: Any = None,
    headroom: float = 0.2,
    idle_cpu: float = 0.05,
    quantile: float = 0.95,
) -> pd.DataFrame:
    """Advice per host: keep, resize (to a named type) or stop (idle), with the monthly saving.

    Needed vCPUs are ``cpu_p95 * vcpus * (1 + headroom)``, needed memory likewise; the
    suggestion is the cheapest sized type of the catalogue's provider and region covering both.
    Without memory samples the current memory is taken as needed (never sized down blind).

    Returns:
        Columns host, instance_type, vcpus, memory_gib, cpu_p95, memory_p95, needed_vcpus,
        needed_memory_gib, action (``keep``, ``resize``, ``stop``, ``unknown``),
        suggested_type, monthly_cost, suggested_monthly_cost, monthly_savings, reason; the
        biggest savings first. Monthly means 730 hours.
    """
    import pandas as pd

    if headroom < 0 or not 0 < quantile < 1 or idle_cpu < 0:
        raise AnalyticsError("headroom and idle_cpu must be >= 0 and quantile in (0, 1)")
    catalogue = catalogue or PriceCatalogue.from_settings()
    hosts = sorted(instance_types)
    cpu = host_percentile(history, CPU, hosts, since, until, quantile)
    mem = host_percentile(history, MEMORY, hosts, since, until, quantile)
    options = [t for t in catalogue.types() if t.sized]
    rows = []
    for host in hosts:
        current = catalogue.get(instance_types[host])
        rows.append(
            _advice(host, current, cpu.get(host), mem.get(host), options, headroom, idle_cpu)
        )
    frame = pd.DataFrame(rows)
    return frame.sort_values("monthly_savings", ascending=False, kind="stable").reset_index(
        drop=True
    )


def _advice(
    host: str,
    current: InstanceType,
    cpu: float | None,
    mem: float | None,
    options: Sequence[InstanceType],
    headroom: float,
    idle_cpu: float,
) -> dict[str, Any]:
    monthly = current.hourly_price * MONTH_HOURS
    row: dict[str, Any] = {
        "host": host,
        "instance_type": current.name,
        "vcpus": current.vcpus,
        "memory_gib": current.memory_gib,
        "cpu_p95": math.nan if cpu is None else cpu,
        "memory_p95": math.nan if mem is None else mem,
        "needed_vcpus": math.nan,
        "needed_memory_gib": math.nan,
        "action": "unknown",
        "suggested_type": current.name,
        "monthly_cost": monthly,
        "suggested_monthly_cost": monthly,
        "monthly_savings": 0.0,
    }
    if cpu is None or not current.sized:
        why = "no CPU samples in the window" if cpu is None else "its size is not in the catalogue"
        return {**row, "reason": why}
    if cpu < idle_cpu:
        return {
            **row, "action": "stop", "suggested_type": "", "suggested_monthly_cost": 0.0,
            "monthly_savings": monthly,
            "reason": f"idle: CPU p95 {cpu:.1%} < {idle_cpu:.0%}; stop it or consolidate",
        }  # fmt: skip
    assert current.vcpus is not None and current.memory_gib is not None
    need_cpu = cpu * current.vcpus * (1 + headroom)
    need_mem = current.memory_gib if mem is None else mem * current.memory_gib * (1 + headroom)
    row.update(needed_vcpus=need_cpu, needed_memory_gib=need_mem)
    fits = [t for t in options if _covers(t, need_cpu, need_mem)]
    if not fits:
        return {**row, "action": "keep", "reason": "no type in the catalogue is big enough"}
    best = fits[0]  # the cheapest; when the host is undersized it may cost more
    if _covers(current, need_cpu, need_mem) and best.hourly_price >= current.hourly_price:
        return {**row, "action": "keep", "reason": "already the cheapest type that fits"}
    new_monthly = best.hourly_price * MONTH_HOURS
    return {
        **row,
        "action": "resize",
        "suggested_type": best.name,
        "suggested_monthly_cost": new_monthly,
        "monthly_savings": monthly - new_monthly,
        "reason": (
            f"CPU p95 {cpu:.0%} of {current.vcpus} vCPU, memory p95 "
            + ("unknown" if mem is None else f"{mem:.0%} of {current.memory_gib:g} GiB")
            + f"; {best.name} ({best.vcpus} vCPU, {best.memory_gib:g} GiB) covers it "
            f"with {headroom:.0%} headroom"
        ),
    }


def _covers(item: InstanceType, vcpus: float, memory_gib: float) -> bool:
    return (
        item.vcpus is not None
        and item.memory_gib is not None
        and item.vcpus >= vcpus
        and item.memory_gib >= memory_gib
    )


@dataclass(frozen=True)
class Savings:
    """What rightsizing would save.

    Attributes:
        monthly_cost: what the hosts cost a month now.
        monthly_savings: what following every suggestion saves a month (resizes up count
            against it).
        share: ``monthly_savings / monthly_cost``.
        idle_hosts: hosts to stop.
        resized_hosts: hosts to resize.
    """

    monthly_cost: float
    monthly_savings: float
    share: float
    idle_hosts: tuple[str, ...]
    resized_hosts: tuple[str, ...]


def savings_estimate(advice: pd.DataFrame) -> Savings:
    """Sum up a :func:`rightsize` result."""
    cost = float(advice["monthly_cost"].sum())
    saved = float(advice["monthly_savings"].sum())
    return Savings(
        cost,
        saved,
        saved / cost if cost else 0.0,
        tuple(advice.loc[advice["action"] == "stop", "host"]),
        tuple(advice.loc[advice["action"] == "resize", "host"]),
    )
