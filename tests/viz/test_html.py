"""Every figure renders to self-contained HTML: plotly.js inline, no CDN reference."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from slothlab.analytics.forecasting import Forecast
from slothlab.viz import anomaly_figure, forecast_figure, scaling_figure


@pytest.fixture(scope="module")
def figures() -> list:
    ts = pd.date_range("2024-01-01", periods=20, freq="min", tz="UTC")
    frame = pd.DataFrame(
        {"ts": ts, "value": np.arange(20.0), "score": 0.0, "flagged": np.arange(20) == 5}
    )
    stamps = np.arange(20.0, 25.0) * 60
    f = Forecast(stamps, np.ones(5), np.full(5, 2.0), np.zeros(5), 0.9, "naive")
    plan = pd.DataFrame({"ts": stamps, "load": 1.0, "agents": [1, 2, 2, 1, 1]})
    return [anomaly_figure(frame), forecast_figure(frame, f), scaling_figure(plan)]


def test_inline_html_works_offline(figures: list) -> None:
    for fig in figures:
        html = fig.to_html(include_plotlyjs="inline", full_html=True)
        assert re.findall(r"<script[^>]*\bsrc=", html) == []  # nothing loaded from elsewhere
        assert "cdn.plot.ly/plotly-" not in html
        assert "Plotly.newPlot" in html and len(html) > 1_000_000  # the library is embedded


def test_cdn_mode_is_what_the_check_catches(figures: list) -> None:
    html = figures[0].to_html(include_plotlyjs="cdn")
    assert re.findall(r"<script[^>]*\bsrc=\"https://cdn\.plot\.ly/plotly-", html)
