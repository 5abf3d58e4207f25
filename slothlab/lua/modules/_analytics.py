"""``metrics.anomalies`` and ``metrics.forecast``: analytics over the history, for Lua.

Both read the runtime's ``history`` (a :class:`~slothlab.metrics.MetricsHistory`) and return
``nil, "message"`` when there is none or the input is unusable. Times go to Lua as epoch
seconds (``ts``) and ISO 8601 text (``time``).

>>> anomalies(None, "load1")
(None, 'no metrics history configured')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["anomalies", "forecast"]

_NO_HISTORY = "no metrics history configured"


def anomalies(history: Any, metric: Any, since: Any = None) -> Any:
    """The flagged samples of ``metric`` on every host since ``since`` (default: all).

    Returns an array of ``{ts, time, host, value, score}`` (oldest first, per host), scored by
    the default detector without writing back to the history.
    """
    if history is None:
        return None, _NO_HISTORY
    if not isinstance(metric, str) or not metric:
        return None, f"anomalies: metric must be a name, not {metric!r}"
    from slothlab.analytics.detect import detect_history
    from slothlab.errors import SlothlabError

    try:
        frame = history.query(metric, start=since)
        rows: list[dict[str, Any]] = []
        for host in sorted(set(frame["host"])):
            scored = detect_history(history, metric, host, since, write_back=False)
            flagged = scored[scored["flagged"]]
            rows.extend(
                {
                    "ts": _epoch(r.ts),
                    "time": r.ts.isoformat(),
                    "host": host,
                    "value": float(r.value),
                    "score": float(r.score),
                }
                for r in flagged.itertuples()
            )
        return rows
    except (SlothlabError, ValueError) as exc:
        return None, f"anomalies: {exc}"


def forecast(history: Any, metric: Any, horizon: Any, opts: Any = None) -> Any:
    """Forecast ``horizon`` steps of ``metric``: ``{model, quantile, points = {{ts, time, mean,
    lower, upper}, ...}}``.

    ``opts``: ``host`` (needed when several hosts send the metric), ``step`` (default "5m"),
    ``since`` (default "-7d"), ``model`` (default "auto") and ``quantile`` (default 0.9).
    """
    if history is None:
        return None, _NO_HISTORY
    if not isinstance(metric, str) or not metric:
        return None, f"forecast: metric must be a name, not {metric!r}"
    if isinstance(horizon, bool) or not isinstance(horizon, int | float) or horizon < 1:
        return None, f"forecast: horizon must be a number of steps >= 1, not {horizon!r}"
    if opts is not None and not isinstance(opts, Mapping):
        return None, 'forecast: opts must be a table like {host = "web-1", step = "5m"}'
    from slothlab.analytics.forecasting.auto import forecast as run_forecast
    from slothlab.errors import SlothlabError

    opts = dict(opts or {})
    try:
        frame = history.query(
            metric,
            host=opts.get("host"),
            start=opts.get("since", "-7d"),
            step=opts.get("step", "5m"),
        )
        hosts = sorted(set(frame["host"]))
        if len(hosts) != 1:
            found = ", ".join(hosts) or "none"
            return (
                None,
                f"forecast: {metric!r} needs one host (found: {found}); pass {{host = ...}}",
            )
        series = frame.groupby("ts")["value"].mean()
        series.index = series.index.as_unit("ns")  # the history reads microseconds
        result = run_forecast(
            series,
            int(horizon),
            model=str(opts.get("model", "auto")),
            quantile=float(opts.get("quantile", 0.9)),
        )
    except (SlothlabError, ValueError) as exc:
        return None, f"forecast: {exc}"
    points = [
        {
            "ts": _epoch(r.ts),
            "time": r.ts.isoformat(),
            "mean": float(r.mean),
            "lower": float(r.lower),
            "upper": float(r.upper),
        }
        for r in result.itertuples()
    ]
    return {"model": result.attrs["model"], "quantile": result.attrs["quantile"], "points": points}


def _epoch(ts: Any) -> float:
    return float(ts.timestamp())
