"""Score a series in one call: ``detect(series)`` gives scores, flags and flagged intervals.

>>> import pandas as pd
>>> series = pd.Series([1.0, 2.0] * 200 + [9.0, 9.0, 1.0],
...                    index=pd.date_range("2024-01-01", periods=403, freq="min"))
>>> frame = detect(series)
>>> list(frame.columns)
['ts', 'value', 'score', 'flagged']
>>> flagged_intervals(frame)
[(Timestamp('2024-01-01 06:40:00'), Timestamp('2024-01-01 06:40:00'))]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from slothlab.analytics.base import Detector
from slothlab.analytics.registry import get
from slothlab.errors import AnalyticsError

if TYPE_CHECKING:
    import pandas as pd

    from slothlab.metrics.history import MetricsHistory

__all__ = ["DEFAULT_THRESHOLD", "SCORE_SUFFIX", "detect", "detect_history", "flagged_intervals"]

SCORE_SUFFIX = "_anomaly_score"
"""``detect_history`` writes the scores of ``<metric>`` as the metric ``<metric>_anomaly_score``."""

DEFAULT_THRESHOLD = 0.5
"""Flag a row at this score: a range break (>= 0.7), or a tail probability under ~1e-8."""


def detect(
    series: pd.Series | pd.DataFrame,
    detector: str | Detector = "default",
    threshold: float = DEFAULT_THRESHOLD,
) -> pd.DataFrame:
    """Score every row of a series with a fresh detector, causally, oldest first.

    Args:
        series: a Series indexed by time, or a DataFrame with ``ts`` and ``value`` columns.
        detector: a registered name or a detector instance (used as is, state and all).
        threshold: rows scoring at least this are ``flagged``.

    Returns:
        A DataFrame with columns ``ts``, ``value``, ``score`` and ``flagged``.
    """
    frame = _as_frame(series)
    det = get(detector) if isinstance(detector, str) else detector
    if not isinstance(det, Detector):
        raise AnalyticsError(f"{det.name!r} scores several metrics; detect() takes one series")
    stamps = _epoch_seconds(frame["ts"])
    scores = det.score_batch(frame["value"].to_numpy(dtype=np.float64), stamps)
    return frame.assign(score=scores, flagged=scores >= threshold)


def detect_history(
    history: MetricsHistory,
    metric: str,
    host: str,
    since: Any = None,
    detector: str = "default",
    write_back: bool = True,
    threshold: float = DEFAULT_THRESHOLD,
) -> pd.DataFrame:
    """Score a metric of one host read from the metrics history; write the scores back.

    Every label set of ``metric`` on ``host`` is its own series with its own fresh detector,
    scored oldest first from ``since`` (anything ``history.query`` takes as ``start``; the
    detector warms up on the first rows it reads, so start well before the time of interest).
    With ``write_back`` the scores go back through ``history.write`` as the metric
    ``<metric>_anomaly_score``, same host, labels and timestamps.

    Returns:
        The raw samples (``ts``, ``host``, ``metric``, ``labels``, ``value``) with ``score`` and
        ``flagged`` columns, sorted by label set then time.

    >>> from slothlab.metrics import MetricsHistory, Sample
    >>> history = MetricsHistory(":memory:", background=False)
    >>> _ = history.write([Sample(60.0 * i, "web-1", "load1", float(i % 2)) for i in range(400)])
    >>> bool(detect_history(history, "load1", "web-1")["flagged"].any())
    False
    >>> len(history.query("load1_anomaly_score", host="web-1"))
    400
    >>> history.close()
    """
    import pandas as pd

    frame = history.query(metric, host=host, start=since)
    if frame.empty:
        raise AnalyticsError(
            f"the history has no samples of {metric!r} for host {host!r}"
            + ("" if since is None else f" since {since!r}")
            + "; check the names with history.metrics() and history.hosts()"
        )
    keys = frame["labels"].map(lambda labels: tuple(sorted(dict(labels or {}).items())))
    parts = []
    for _, part in frame.assign(_key=keys).groupby("_key", sort=True):
        part = part.sort_values("ts", kind="stable").drop(columns="_key")
        scored = detect(part[["ts", "value"]], detector, threshold)
        parts.append(
            part.assign(score=scored["score"].to_numpy(), flagged=scored["flagged"].to_numpy())
        )
    result = pd.concat(parts, ignore_index=True)
    if write_back:
        out = result[["ts", "host", "labels"]].assign(
            metric=metric + SCORE_SUFFIX, value=result["score"]
        )
        history.write(out)
    return result


def flagged_intervals(frame: pd.DataFrame) -> list[tuple[Any, Any]]:
    """``(first_ts, last_ts)`` of each run of flagged rows in a :func:`detect` result."""
    flags = frame["flagged"].to_numpy(dtype=bool)
    edges = np.diff(np.r_[0, flags.astype(np.int8), 0])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [(frame["ts"].iloc[s], frame["ts"].iloc[e]) for s, e in zip(starts, ends, strict=True)]


def _as_frame(series: pd.Series | pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    if isinstance(series, pd.Series):
        frame = pd.DataFrame({"ts": series.index, "value": series.to_numpy()})
    elif isinstance(series, pd.DataFrame) and {"ts", "value"} <= set(series.columns):
        frame = series[["ts", "value"]].reset_index(drop=True)
    else:
        raise AnalyticsError(
            "detect() takes a pandas Series indexed by time or a DataFrame with 'ts' and "
            f"'value' columns; got {type(series).__name__}"
            + (f" with columns {list(series.columns)}" if isinstance(series, pd.DataFrame) else "")
        )
    if not pd.api.types.is_numeric_dtype(frame["value"]):
        raise AnalyticsError("the values to score are not numeric; convert them first")
    return frame


def _epoch_seconds(ts: pd.Series) -> np.ndarray[Any, np.dtype[np.float64]] | None:
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(ts):
        seconds: np.ndarray[Any, np.dtype[np.float64]]
        seconds = ts.to_numpy(dtype="datetime64[ns]").astype(np.int64) / 1e9
        return seconds
    if pd.api.types.is_numeric_dtype(ts):
        values: np.ndarray[Any, np.dtype[np.float64]] = ts.to_numpy(dtype=np.float64)
        return values
    return None
