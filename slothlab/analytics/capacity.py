"""Capacity planning: when a metric reaches a threshold, how fast it grows, a report per host/tag.

The trend is a Theil–Sen line (the median of pairwise slopes: one bad hour does not tilt it)
fitted on the recent history. Its slope's confidence interval and the spread of the residuals
give a band; the crossing times of the band's upper edge, the line and its lower edge are the
*earliest*, *likely* and *latest* times the metric reaches the threshold. A crossing past the
horizon is reported as none ("not within the horizon").

>>> import numpy as np
>>> t = np.arange(0.0, 10 * 86400, 3600)          # ten days, hourly
>>> disk = 0.50 + 0.01 * t / 86400                 # +1 point a day
>>> c = time_to_threshold(t, disk, 0.95, horizon_s=90 * 86400)
>>> round(c.likely_days, 1), c.status
(35.0, 'crossing')
>>> round(growth_rate(t, disk).per_day, 3)
0.01
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from slothlab.errors import AnalyticsError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from numpy.typing import NDArray

    from slothlab.metrics.history import MetricsHistory

__all__ = [
    "DEFAULT_TARGETS",
    "CapacityTarget",
    "Crossing",
    "Growth",
    "capacity_report",
    "growth_rate",
    "time_to_threshold",
]

_DAY = 86400.0
_MAX_POINTS = 2000  # Theil–Sen is quadratic in the points: thin longer series evenly
MIN_POINTS = 6


@dataclass(frozen=True)
class CapacityTarget:
    """A metric and the level at which its resource runs out.

    Attributes:
        metric: the history metric (a usage ratio, bytes, ...).
        threshold: the level that means "full" or "saturated".
        agg: how samples are aggregated per ``step`` bucket before the trend is fitted
            (``max`` for CPU: saturation is about the peaks).
        resource: a short name for reports (``cpu``, ``disk``, ...).
        direction: ``up`` when growth reaches the threshold (usage), ``down`` when decline
            does (free bytes).
    """

    metric: str
    threshold: float
    agg: str = "avg"
    resource: str = ""
    direction: str = "up"


DEFAULT_TARGETS: tuple[CapacityTarget, ...] = (
    CapacityTarget("slothlab_cpu_usage_ratio", 0.9, "max", "cpu"),
    CapacityTarget("slothlab_memory_usage_ratio", 0.9, "avg", "memory"),
    CapacityTarget("slothlab_disk_usage_ratio", 0.95, "max", "disk"),
)
"""CPU saturated at 90 % (hourly peaks), memory at 90 %, a disk full at 95 %."""


@dataclass(frozen=True)
class Growth:
    """How fast a series grows, from its Theil–Sen slope.

    Attributes:
        per_day: units a day (negative when shrinking).
        per_week: units a week.
        relative_per_day: ``per_day`` over the current level (0.01 is 1 % a day); NaN at 0.
        current: the trend's value at the last sample.
    """

    per_day: float
    per_week: float
    relative_per_day: float
    current: float


@dataclass(frozen=True)
class Crossing:
    """When a series reaches a threshold, with an interval.

    Attributes:
        threshold: the level.
        status: ``exceeded`` (already there), ``crossing`` (likely within the horizon),
            ``not within horizon`` or ``flat`` (no trend towards the threshold).
        now: the reference time (epoch seconds), by default the last sample.
        earliest, likely, latest: epoch seconds of the crossing (``None``: not within the
            horizon). ``earliest`` may be set while ``likely`` is not: a risk, not a forecast.
        slope_per_day: the trend's slope; ``slope_low``/``slope_high`` its confidence interval.
        current: the trend's value at ``now``.
    """

    threshold: float
    status: str
    now: float
    earliest: float | None
    likely: float | None
    latest: float | None
    slope_per_day: float
    slope_low_per_day: float
    slope_high_per_day: float
    current: float

    @property
    def likely_days(self) -> float | None:
        """Days from ``now`` to the likely crossing."""
        return None if self.likely is None else (self.likely - self.now) / _DAY

    def as_dict(self) -> dict[str, Any]:
        """The fields plus days to each crossing (for a DataFrame row)."""
        row = asdict(self)
        for key in ("earliest", "likely", "latest"):
            when = row[key]
            row[f"{key}_days"] = None if when is None else (when - self.now) / _DAY
        return row


def _clean(timestamps: Any, values: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    import numpy as np

    from slothlab.analytics.base import seconds

    t = seconds(timestamps)
    y = np.asarray(values, dtype=np.float64)
    if t.shape != y.shape or t.ndim != 1:
        raise AnalyticsError(
            f"timestamps and values must be 1-D and of equal length, got {t.shape} and {y.shape}"
        )
    keep = np.isfinite(t) & np.isfinite(y)
    t, y = t[keep], y[keep]
    order = np.argsort(t, kind="stable")
    t, y = t[order], y[order]
    if len(t) < MIN_POINTS or t[-1] - t[0] <= 0:
        raise AnalyticsError(
            f"a trend needs at least {MIN_POINTS} finite samples spread over time, got {len(t)}; "
            "widen the window (since=) or wait for more samples"
        )
    if len(t) > _MAX_POINTS:
        pick = np.linspace(0, len(t) - 1, _MAX_POINTS).round().astype(int)
        t, y = t[pick], y[pick]
    return t, y


def _theil_sen(
    t: NDArray[np.float64], y: NDArray[np.float64], confidence: float
) -> tuple[float, float, float, float, float]:
    """(slope, low, high) per second, and the centre (t, y) the lines pivot on."""
    import numpy as np
    from scipy.stats import theilslopes

    t0 = float(t[0])
    res = theilslopes(y, t - t0, alpha=confidence)
    centre_t = float(np.median(t))
    centre_y = float(res.intercept + res.slope * (centre_t - t0))
    return float(res.slope), float(res.low_slope), float(res.high_slope), centre_t, centre_y


def growth_rate(timestamps: Any, values: Any) -> Growth:
    """The Theil–Sen growth of a series (timestamps in epoch seconds)."""
    t, y = _clean(timestamps, values)
    slope, _, _, ct, cy = _theil_sen(t, y, 0.9)
    current = cy + slope * (float(t[-1]) - ct)
    rel = slope * _DAY / current if current else math.nan
    return Growth(slope * _DAY, slope * 7 * _DAY, rel, current)


def time_to_threshold(
    timestamps: Any,
    values: Any,
    threshold: float,
    *,
    horizon_s: float = 90 * _DAY,
    now: float | None = None,
    confidence: float = 0.9,
    direction: str = "up",
) -> Crossing:
    """When the trend of ``values`` reaches ``threshold``: earliest, likely and latest time.

    With ``direction="up"`` the threshold is reached by growth (usage); with ``"down"`` by
    decline (free bytes running out).

    Args:
        timestamps: epoch seconds of the samples.
        values: the samples (NaN are dropped).
        threshold: the level that means full or saturated.
        horizon_s: how far ahead a crossing counts.
        now: the reference time (default: the last sample).
        confidence: the level of the slope's interval and of the residual band.
        direction: ``up`` or ``down`` (see above).
    """
    import numpy as np

    if direction not in {"up", "down"}:
        raise AnalyticsError(f"direction must be 'up' or 'down', not {direction!r}")
    if not 0 < confidence < 1:
        raise AnalyticsError(f"confidence must be between 0 and 1, not {confidence}")
    t, y = _clean(timestamps, values)
    now = float(t[-1]) if now is None else float(now)
    slope, low, high, ct, cy = _theil_sen(t, y, confidence)
    residuals = y - (cy + slope * (t - ct))
    tail = (1 - confidence) / 2
    r_lo, r_hi = np.quantile(residuals, [tail, 1 - tail])
    current = cy + slope * (now - ct)
    rising = direction == "up"
    # the band edge that reaches the threshold first, then the line, then the slower edge
    fast, slow = (high, low) if rising else (low, high)
    r_fast, r_slow = (r_hi, r_lo) if rising else (r_lo, r_hi)
    earliest = _crossing(ct, cy + r_fast, fast, threshold, now, horizon_s, rising)
    likely = _crossing(ct, cy, slope, threshold, now, horizon_s, rising)
    latest = _crossing(ct, cy + r_slow, slow, threshold, now, horizon_s, rising)
    if (current >= threshold) if rising else (current <= threshold):
        status = "exceeded"
        likely = earliest = now
    elif (slope > 0) != rising or slope == 0:
        status = "flat"
    else:
        status = "crossing" if likely is not None else "not within horizon"
    return Crossing(
        threshold, status, now, earliest, likely, latest,
        slope * _DAY, low * _DAY, high * _DAY, float(current),
    )  # fmt: skip


def _crossing(
    ct: float, cy: float, slope: float, threshold: float, now: float, horizon: float, rising: bool
) -> float | None:
    """When the line through (ct, cy) reaches the threshold after ``now`` within the horizon."""
    at_now = cy + slope * (now - ct)
    if (at_now >= threshold) if rising else (at_now <= threshold):
        return now
    if slope == 0 or (slope > 0) != rising:
        return None
    when = ct + (threshold - cy) / slope
    return when if when <= now + horizon else None


def capacity_report(
    history: MetricsHistory,
    *,
    targets: Sequence[CapacityTarget] = DEFAULT_TARGETS,
    hosts: Sequence[str] | None = None,
    tags: Mapping[str, str | Sequence[str]] | None = None,
    since: Any = "-14d",
    step: str = "1h",
    horizon: str | float = "90d",
    by: str = "host",
    now: float | None = None,
) -> pd.DataFrame:
    """Time to each target's threshold and growth, per host (or per tag) from the history.

    Each series (host, metric, label set: one row per disk mount) is aggregated per ``step``
    with the target's ``agg`` and fitted from ``since``. The reference time is the history's
    clock ("now"), so a host that stopped reporting is not projected from its last sample.

    Args:
        history: the metrics history.
        targets: metrics and thresholds (default: CPU, memory, disk; see
            :data:`DEFAULT_TARGETS`).
        hosts: only these hosts (default: all that have the metric).
        tags: host -> tag or tags (e.g. ``{"web-1": ["web", "eu"]}``); untagged hosts get "".
        since: the start of the window fitted (anything ``history.query`` takes).
        step: the bucket the samples are aggregated to before fitting.
        horizon: how far ahead a crossing counts (seconds or a duration like "90d").
        by: ``host`` (one row per series) or ``tag`` (the earliest crossing per tag and
            resource, with how many hosts are at risk).
        now: the reference time in epoch seconds (default: the history's clock).

    Returns:
        Per host: host, tags, resource, metric, labels, samples, current, threshold,
        growth_per_day, growth_per_week, status, earliest, likely, latest (UTC timestamps or
        NaT) and earliest_days, likely_days, latest_days (days from now, NaN: not within the
        horizon). Per tag: tag, resource, hosts, at_risk, earliest, likely,
        min_likely_days, max_growth_per_day.
    """
    import pandas as pd

    from slothlab.metrics._history_time import parse_duration

    if by not in {"host", "tag"}:
        raise AnalyticsError(f"by must be 'host' or 'tag', not {by!r}")
    horizon_s = float(horizon) if isinstance(horizon, int | float) else parse_duration(horizon)
    now = history._clock() if now is None else float(now)  # the history's clock by default
    rows: list[dict[str, Any]] = []
    for target in targets:
        frame = history.query(target.metric, host=hosts, start=since, step=step, agg=target.agg)
        for (host, labels), part in _series(frame):
            rows.append(_row(target, host, labels, part, tags, now, horizon_s))
    report = pd.DataFrame(rows, columns=_HOST_COLUMNS)
    for key in ("earliest", "likely", "latest"):
        report[key] = pd.to_datetime(report[key], unit="s", utc=True)
    report = report.sort_values(["likely_days", "host"], na_position="last", kind="stable")
    report = report.reset_index(drop=True)
    return _by_tag(report) if by == "tag" else report


_HOST_COLUMNS = [
    "host", "tags", "resource", "metric", "labels", "samples", "current", "threshold",
    "growth_per_day", "growth_per_week", "status", "earliest", "likely", "latest",
    "earliest_days", "likely_days", "latest_days",
]  # fmt: skip


def _series(frame: pd.DataFrame) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    if frame.empty:
        return []
    keys = frame["labels"].map(_label_text)
    return [(key, part) for key, part in frame.assign(_k=keys).groupby(["host", "_k"], sort=True)]


def _label_text(labels: Any) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(dict(labels or {}).items()))


def _tag_list(tags: Mapping[str, str | Sequence[str]] | None, host: str) -> list[str]:
    found = (tags or {}).get(host, ())
    return [found] if isinstance(found, str) else list(found)


def _row(
    target: CapacityTarget,
    host: str,
    labels: str,
    part: pd.DataFrame,
    tags: Mapping[str, str | Sequence[str]] | None,
    now: float,
    horizon_s: float,
) -> dict[str, Any]:
    t = part["ts"].to_numpy(dtype="datetime64[us]").astype("int64") / 1e6
    row: dict[str, Any] = {
        "host": host,
        "tags": ",".join(_tag_list(tags, host)),
        "resource": target.resource or target.metric,
        "metric": target.metric,
        "labels": labels,
        "samples": len(part),
        "threshold": target.threshold,
    }
    try:
        c = time_to_threshold(
            t, part["value"], target.threshold, horizon_s=horizon_s, now=now,
            direction=target.direction,
        )  # fmt: skip
    except AnalyticsError:
        return {**row, "status": "insufficient data"}
    return {
        **row,
        "current": c.current,
        "growth_per_day": c.slope_per_day,
        "growth_per_week": c.slope_per_day * 7,
        "status": c.status,
        "earliest": c.earliest,
        "likely": c.likely,
        "latest": c.latest,
        **{k: v for k, v in c.as_dict().items() if k.endswith("_days")},
    }


def _by_tag(report: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    exploded = report.assign(tag=report["tags"].str.split(",")).explode("tag")
    exploded["at_risk"] = exploded["earliest"].notna()
    grouped = exploded.groupby(["tag", "resource"], sort=True)
    out = grouped.agg(
        hosts=("host", "nunique"),
        at_risk=("at_risk", "sum"),
        earliest=("earliest", "min"),
        likely=("likely", "min"),
        min_likely_days=("likely_days", "min"),
        max_growth_per_day=("growth_per_day", "max"),
    )
    return pd.DataFrame(out).reset_index()
