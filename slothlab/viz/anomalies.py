"""A series with its anomaly scores and its flagged intervals shaded.

>>> import pandas as pd
>>> frame = pd.DataFrame({"ts": pd.date_range("2024-01-01", periods=4, freq="min"),
...                       "value": [1.0, 1.0, 9.0, 1.0], "score": [0.0, 0.1, 0.9, 0.2],
...                       "flagged": [False, False, True, False]})
>>> fig = anomaly_figure(frame)
>>> [t.name for t in fig.data], len(fig.layout.shapes)
(['value', 'flagged', 'anomaly score'], 3)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slothlab.viz._style import COLORS, as_time, finish, require

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

__all__ = ["anomaly_figure", "flagged_spans"]


def flagged_spans(ts: pd.Series, flags: Any) -> list[tuple[Any, Any]]:
    """(start, end) of each run of flagged rows, widened by half a step on each side so that a
    single flagged row still shades a visible band."""
    import numpy as np

    flags = np.asarray(flags, dtype=bool)
    if not flags.any():
        return []
    times = as_time(ts)
    half = (times.diff().median() / 2) if len(times) > 1 else np.timedelta64(30, "s")
    edges = np.diff(np.r_[0, flags.astype(np.int8), 0])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [(times.iloc[s] - half, times.iloc[e] + half) for s, e in zip(starts, ends, strict=True)]


def anomaly_figure(
    frame: pd.DataFrame, *, title: str = "Anomalies", threshold: float | None = 0.5
) -> go.Figure:
    """The value on top, the anomaly score below, flagged intervals shaded across both.

    Args:
        frame: a :func:`slothlab.analytics.detect` result (columns ts, value, score, flagged).
        title: the figure title.
        threshold: draw the flagging threshold on the score panel (None: no line).

    Returns:
        A figure with traces ``value``, ``flagged`` (markers) and ``anomaly score``, a shaded
        ``vrect`` per flagged interval on each panel (named ``flagged interval``) and the
        threshold line on the score panel.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    frame = require(frame, ["ts", "value", "score", "flagged"], "anomaly_figure")
    ts, flags = as_time(frame["ts"]), frame["flagged"].to_numpy(dtype=bool)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3])
    fig.add_trace(
        go.Scatter(x=ts, y=frame["value"], name="value", line={"color": COLORS["value"]}),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=ts[flags],
            y=frame["value"][flags],
            name="flagged",
            mode="markers",
            marker={"color": COLORS["flag"], "size": 7},
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(x=ts, y=frame["score"], name="anomaly score", line={"color": COLORS["score"]}),
        row=2,
        col=1,
    )
    for start, end in flagged_spans(frame["ts"], flags):
        fig.add_vrect(
            x0=start,
            x1=end,
            fillcolor=COLORS["flag"],
            opacity=0.15,
            line_width=0,
            name="flagged interval",
            row="all",
            col=1,
        )
    if threshold is not None:
        fig.add_hline(
            y=threshold,
            line={"dash": "dash", "color": COLORS["threshold"]},
            name="threshold",
            row=2,
            col=1,
        )
    finish(fig, title, "", "value")
    fig.update_yaxes(title_text="anomaly score", range=[0, 1.05], row=2, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=2, col=1)
    return fig
