"""Data for the figure tests: real series from the shared folder and small generated ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="session")
def azure_cpu(shared_dir: Path) -> pd.DataFrame:
    """The Azure V2 cluster CPU series (5-minute steps): ts in epoch seconds, value."""
    path = (
        shared_dir
        / "data"
        / "azure_v2_cluster_5min"
        / "vm_cpu_readings_month_aggregated_cpu_mem.csv"
    )
    raw = pd.read_csv(path)
    return pd.DataFrame({"ts": raw["timestamp"].astype(float), "value": raw["cpu_usage"] / 1e6})


@pytest.fixture
def detected() -> pd.DataFrame:
    """A detect()-shaped frame with two flagged runs (rows 10-12 and 30)."""
    ts = pd.date_range("2024-01-01", periods=40, freq="5min", tz="UTC")
    flagged = np.zeros(40, dtype=bool)
    flagged[10:13] = True
    flagged[30] = True
    return pd.DataFrame(
        {"ts": ts, "value": np.sin(np.arange(40.0)), "score": flagged * 0.8, "flagged": flagged}
    )
