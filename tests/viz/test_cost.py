"""cost_figure on a real cost report and rightsizing advice from a DuckDB history."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slothlab.analytics.cost import cost_report, rightsize
from slothlab.analytics.prices import PriceCatalogue
from slothlab.errors import AnalyticsError
from slothlab.metrics import MetricsHistory
from slothlab.viz import cost_figure

DAY = 86400.0


def test_stacked_by_tag_with_savings(tmp_path: Path) -> None:
    t = np.arange(0.0, 2 * DAY, 60.0)
    cpu = {"web-1": 0.2, "web-2": 0.25, "db-1": 0.6, "batch-1": 0.01}
    parts = [
        pd.DataFrame({"ts": t, "host": h, "metric": "slothlab_cpu_usage_ratio", "value": v})
        for h, v in cpu.items()
    ]
    types = {"web-1": "m5.xlarge", "web-2": "m5.xlarge", "db-1": "r5.large", "batch-1": "c5.large"}
    tags = {"web-1": "web", "web-2": "web", "db-1": "db", "batch-1": ["batch", "db"]}
    catalogue = PriceCatalogue.builtin()
    with MetricsHistory(tmp_path / "m.duckdb", clock=lambda: 2 * DAY, background=False) as h:
        h.write(pd.concat(parts, ignore_index=True))
        report = cost_report(h, types, tags=tags, catalogue=catalogue, since=0)
        advice = rightsize(h, types, catalogue=catalogue, since=0)
    fig = cost_figure(report, savings=advice)
    names = [tr.name for tr in fig.data]
    assert names == ["batch", "db", "web", "after rightsizing"]
    assert fig.layout.barmode == "stack"
    web = fig.data[2]
    assert list(web.y) == pytest.approx([2 * 24 * 0.192] * 2)
    total = np.sum([fig.data[i].y for i in range(3)], axis=0)
    assert list(total) == pytest.approx([24 * (2 * 0.192 + 0.126 + 0.085)] * 2)
    per_day_saving = advice["monthly_savings"].sum() / 730 * 24
    assert list(fig.data[3].y) == pytest.approx(list(total - per_day_saving))
    note = fig.layout.annotations[0].text
    assert note.startswith("rightsizing saves") and note.endswith("USD a month")
    assert fig.layout.yaxis.title.text == "cost (USD)"


def test_without_savings_and_untagged() -> None:
    day = pd.Timestamp("2024-01-01", tz="UTC")
    report = pd.DataFrame({"day": [day], "tag": [""], "cost": [1.0]})
    fig = cost_figure(report, currency="EUR")
    assert [tr.name for tr in fig.data] == ["untagged"]
    assert fig.layout.annotations == () and fig.layout.yaxis.title.text == "cost (EUR)"
    with pytest.raises(AnalyticsError, match="hours"):
        cost_figure(report, savings=pd.DataFrame({"host": ["a"], "monthly_savings": [1.0]}))
