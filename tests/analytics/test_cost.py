"""Cost: price catalogue and settings, cost per host/tag/day, rightsizing, idle hosts, savings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slothlab.analytics.cost import cost_report, rightsize, savings_estimate
from slothlab.analytics.prices import PRICES_AS_OF, InstanceType, PriceCatalogue
from slothlab.config import Settings
from slothlab.errors import AnalyticsError, ConfigError
from slothlab.metrics import MetricsHistory

DAY = 86400.0
NOW = 3 * DAY
TYPES = {"web-1": "m5.xlarge", "idle-1": "m5.large", "hot-1": "t3.medium", "fit-1": "t3.small"}


def _frame(host: str, metric: str, level: float, start: float, end: float, seed: int):
    t = np.arange(start, end, 60.0)
    noise = np.random.default_rng(seed).normal(0, 0.005, len(t))
    return pd.DataFrame({"ts": t, "host": host, "metric": metric, "value": level + noise})


@pytest.fixture
def history(tmp_path: Path):
    h = MetricsHistory(tmp_path / "m.duckdb", clock=lambda: NOW, background=False)
    parts = []
    for i, (host, cpu, mem, start, end) in enumerate(
        [
            ("web-1", 0.20, 0.15, 0.0, NOW),
            ("idle-1", 0.01, 0.30, 0.5 * DAY, DAY),  # up twelve hours on the first day only
            ("hot-1", 0.95, 0.50, 0.0, NOW),
            ("fit-1", 0.50, 0.50, 0.0, NOW),
        ]
    ):
        parts.append(_frame(host, "slothlab_cpu_usage_ratio", cpu, start, end, i))
        parts.append(_frame(host, "slothlab_memory_usage_ratio", mem, start, end, 10 + i))
    h.write(pd.concat(parts, ignore_index=True))
    yield h
    h.close()


def test_builtin_catalogue_is_labelled_and_sized() -> None:
    assert PRICES_AS_OF.startswith("20")
    catalogue = PriceCatalogue.builtin()
    assert catalogue.get("t3.medium") == InstanceType("t3.medium", 0.0416, 2, 4.0)
    assert catalogue.get("e2-standard-2", "gcp", "us-central1").vcpus == 2
    cheapest = catalogue.types()
    assert cheapest[0].name == "t3.micro"
    assert [p.hourly_price for p in cheapest] == sorted(p.hourly_price for p in cheapest)
    with pytest.raises(
        AnalyticsError, match=r"no price for instance type 'x9\.huge'.*cost\.prices"
    ):
        catalogue.get("x9.huge")


def test_settings_override_prices_and_add_types(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[cost]\nprovider = "aws"\nregion = "eu-west-1"\n'
        '[cost.prices.aws.eu-west-1]\n"m5.large" = { price = 0.107, vcpus = 2, memory_gib = 8 }\n'
        '[cost.prices.aws.us-east-1]\n"m5.large" = 0.05\n'
        '"m7g.large" = { price = 0.0816, vcpus = 2, memory_gib = 8 }\n'
    )
    catalogue = PriceCatalogue.from_settings(Settings(path, environ={}))
    assert catalogue.provider == "aws" and catalogue.region == "eu-west-1"
    assert catalogue.get("m5.large").hourly_price == 0.107
    east = catalogue.get("m5.large", "aws", "us-east-1")
    assert east == InstanceType("m5.large", 0.05, 2, 8.0)  # size kept from the built-in
    assert catalogue.get("m7g.large", region="us-east-1").memory_gib == 8.0


@pytest.mark.parametrize(
    "body, message",
    [
        ("[cost]\nprices = 3\n", r"\[cost\.prices\] .* must be a table"),
        ('[cost.prices.aws.us-east-1]\n"m5.large" = "cheap"\n', "hourly price or a table"),
        ('[cost.prices.aws.us-east-1]\n"m5.large" = -1\n', "must be a number >= 0"),
    ],
)
def test_bad_price_settings_say_what_to_fix(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=message):
        PriceCatalogue.from_settings(Settings(path, environ={}))


def test_cost_per_host_tag_and_day(history: MetricsHistory) -> None:
    catalogue = PriceCatalogue.builtin()
    tags = {"web-1": ["web", "eu"], "idle-1": "batch"}
    report = cost_report(history, TYPES, tags=tags, catalogue=catalogue, since=0)
    per_host = report.groupby("host")["cost"].sum()
    assert per_host["web-1"] == pytest.approx(72 * 0.192)
    assert per_host["idle-1"] == pytest.approx(12 * 0.096)
    idle = report[report.host == "idle-1"]
    assert len(idle) == 1 and idle["day"].iloc[0] == pd.Timestamp(0, tz="UTC")
    assert idle["hours"].iloc[0] == pytest.approx(12.0)
    per_tag = report.groupby("tag")["cost"].sum()
    assert per_tag["web"] == pytest.approx(per_tag["eu"]) == pytest.approx(36 * 0.192)
    assert per_tag[""] == pytest.approx(72 * (0.0416 + 0.0208))  # untagged hosts
    assert per_tag.sum() == pytest.approx(report["cost"].sum())
    assert sorted(report["day"].dt.day.unique()) == [1, 2, 3]


def test_cost_report_refuses_unknown_type(history: MetricsHistory) -> None:
    with pytest.raises(AnalyticsError, match="no price for instance type 'z1'"):
        cost_report(history, {"web-1": "z1"}, catalogue=PriceCatalogue.builtin())


def test_rightsizing_idle_and_savings(history: MetricsHistory) -> None:
    advice = rightsize(history, TYPES, catalogue=PriceCatalogue.builtin(), since=0).set_index(
        "host"
    )
    assert advice.loc["idle-1", "action"] == "stop"
    assert advice.loc["idle-1", "monthly_savings"] == pytest.approx(0.096 * 730)
    assert "idle" in advice.loc["idle-1", "reason"]
    # web-1: ~0.21 of 4 vCPU and ~0.16 of 16 GiB with 20 % headroom -> 2 vCPU / 4 GiB
    assert advice.loc["web-1", "action"] == "resize"
    assert advice.loc["web-1", "suggested_type"] == "t3.medium"
    assert advice.loc["web-1", "monthly_savings"] == pytest.approx((0.192 - 0.0416) * 730)
    # hot-1 runs at 95 % of 2 vCPU: it needs more, which costs more
    assert advice.loc["hot-1", "action"] == "resize"
    assert advice.loc["hot-1", "suggested_type"] == "t3.xlarge"
    assert advice.loc["hot-1", "monthly_savings"] < 0
    assert advice.loc["fit-1", "action"] == "keep"
    total = savings_estimate(advice.reset_index())
    assert total.idle_hosts == ("idle-1",)
    assert set(total.resized_hosts) == {"web-1", "hot-1"}
    assert total.monthly_savings == pytest.approx(advice["monthly_savings"].sum())
    assert 0 < total.share < 1


def test_rightsizing_without_samples_says_so(history: MetricsHistory) -> None:
    advice = rightsize(history, {"ghost": "m5.large"}, catalogue=PriceCatalogue.builtin())
    assert advice.loc[0, "action"] == "unknown"
    assert advice.loc[0, "reason"] == "no CPU samples in the window"
    with pytest.raises(AnalyticsError, match="headroom"):
        rightsize(history, TYPES, catalogue=PriceCatalogue.builtin(), headroom=-1)
