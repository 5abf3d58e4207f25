"""Forecasting and predictive-scaling benchmark (the protocol of notes/benchmarks.md).

Holds out the last 7 days, forecasts from an origin every 12 hours (refitting each time) at
H=12 (one hour of 5-minute steps: the scaling lead time) and H=288 (a day: capacity), and
reports MASE (scaled by the in-sample seasonal-naive error), sMAPE, MAE relative to naive and
seasonal naive, and the coverage of the P90 upper bound, for the baselines and our models in
the same run. Then replays predictive scaling against the Kubernetes HPA rule on the same
series: under-provisioned intervals and excess agent-hours.

    python bench/forecast.py                                # the Azure cluster trace
    python bench/forecast.py --data FILE.csv --column value --step-seconds 300

Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from slothlab.analytics.forecasting import (
    GradientBoostingForecaster,
    Naive,
    SeasonalNaive,
    rolling_origin,
)
from slothlab.analytics.scaling import simulate_hpa, simulate_predictive

DAY_S = 86_400


def default_data() -> Path:
    shared = os.environ.get("SLOTHLAB_SHARED_DIR") or str(
        Path(__file__).parents[1].parent / "shared"
    )
    return Path(shared) / "data/azure_v2_cluster_5min/vm_cpu_readings_month_aggregated_cpu_mem.csv"


def load(path: Path, column: str, ts_column: str, step_s: float) -> tuple[np.ndarray, np.ndarray]:
    frame = pd.read_csv(path)
    if column not in frame.columns:
        sys.exit(f"error: {path} has no column {column!r}; columns: {', '.join(frame.columns)}")
    values = frame[column].to_numpy(dtype=float)
    if ts_column in frame.columns:
        raw = frame[ts_column]
        if pd.api.types.is_numeric_dtype(raw):
            stamps = raw.to_numpy(dtype=float)
        else:
            stamps = pd.to_datetime(raw, utc=True).astype("int64").to_numpy() / 1e9
    else:
        stamps = np.arange(len(values), dtype=float) * step_s
    return values, stamps


def models(step_s: float, horizon: int) -> dict[str, Any]:
    day, week = round(DAY_S / step_s), round(7 * DAY_S / step_s)
    return {
        "naive": Naive,
        "seasonal_naive_day": lambda: SeasonalNaive(day),
        "seasonal_naive_week": lambda: SeasonalNaive(week),
        "gbm": lambda: GradientBoostingForecaster(horizon=horizon),
    }


def forecast_part(
    y: np.ndarray, ts: np.ndarray, step_s: float, horizons: list[int]
) -> dict[str, Any]:
    day = round(DAY_S / step_s)
    test_points = min(7 * day, len(y) // 4)
    every = max(1, day // 2)
    out: dict[str, Any] = {"test_points": test_points, "origin_every_steps": every, "season": day}
    for h in horizons:
        rows: dict[str, Any] = {}
        for name, make in models(step_s, h).items():
            if name == "seasonal_naive_week" and len(y) - test_points < 7 * day:
                continue
            start = time.perf_counter()
            scores = rolling_origin(
                y, ts, make, horizon=h, test_points=test_points, every=every, season=day
            ).scores()
            scores["seconds"] = round(time.perf_counter() - start, 2)
            rows[name] = scores
        for row in rows.values():
            row["mae_vs_naive"] = row["mae"] / rows["naive"]["mae"]
            row["mae_vs_seasonal_naive"] = row["mae"] / rows["seasonal_naive_day"]["mae"]
        best_base = min((r["mase"], n) for n, r in rows.items() if n != "gbm")
        out[f"H={h}"] = {
            "models": rows,
            "gbm_beats_naive": rows["gbm"]["mase"] < rows["naive"]["mase"],
            "gbm_beats_best_baseline": rows["gbm"]["mase"] < best_base[0],
            "best_baseline": best_base[1],
            "gbm_upper_coverage_in_85_95": 0.85 <= rows["gbm"]["upper_coverage"] <= 0.95,
        }
    return out


def scaling_part(y: np.ndarray, ts: np.ndarray, step_s: float, agents_at_median: int,
                 lead: int, stabilization: int) -> dict[str, Any]:  # fmt: skip
    day = round(DAY_S / step_s)
    test_points = min(7 * day, len(y) // 4)
    capacity = float(np.median(y)) / agents_at_median
    common = {"test_points": test_points, "lead_steps": lead, "stabilization_steps": stabilization}
    start = time.perf_counter()
    ours = simulate_predictive(
        y, ts, lambda: GradientBoostingForecaster(horizon=max(lead, 1)), capacity,
        refit_every=max(1, day // 2), **common,
    ).summary()  # fmt: skip
    ours["seconds"] = round(time.perf_counter() - start, 1)
    hpa = [
        simulate_hpa(y, ts, capacity, target_utilization=round(t, 2), **common).summary()
        for t in np.arange(0.70, 1.001, 0.01)
    ]
    # the HPA setting that spends at least as many excess agent-hours as ours, but the fewest
    peers = [h for h in hpa if h["excess_agent_hours"] >= ours["excess_agent_hours"]]
    peer = min(peers, key=lambda h: h["excess_agent_hours"]) if peers else None
    return {
        "capacity_per_agent": capacity,
        "predictive": ours,
        "hpa_at_no_less_excess": peer,
        "hpa_sweep": [
            {k: h[k] for k in ("policy", "under_provisioned_share", "excess_agent_hours")}
            for h in hpa
        ],
        "goal_fewer_underprovisioned_at_no_more_excess": bool(
            peer and ours["under_provisioned_share"] < peer["under_provisioned_share"]
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="CSV file (default: Azure trace)")
    parser.add_argument("--column", default="cpu_usage")
    parser.add_argument("--timestamp-column", default="timestamp")
    parser.add_argument("--step-seconds", type=float, default=300.0)
    parser.add_argument("--horizons", default="12,288")
    parser.add_argument("--agents-at-median", type=int, default=10,
                        help="capacity per agent = median load / this")  # fmt: skip
    parser.add_argument("--lead-steps", type=int, default=3)
    parser.add_argument("--stabilization-steps", type=int, default=6)
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--json", action="store_true", help="(the output is always JSON)")
    args = parser.parse_args()
    path = args.data or default_data()
    if not path.exists():
        sys.exit(f"error: {path} not found; pass --data or set SLOTHLAB_SHARED_DIR")
    y, ts = load(path, args.column, args.timestamp_column, args.step_seconds)
    report: dict[str, Any] = {"data": str(path), "column": args.column, "rows": len(y)}
    horizons = [int(h) for h in args.horizons.split(",")]
    report["forecast"] = forecast_part(y, ts, args.step_seconds, horizons)
    if not args.skip_scaling:
        report["scaling"] = scaling_part(
            y, ts, args.step_seconds, args.agents_at_median, args.lead_steps,
            args.stabilization_steps,
        )  # fmt: skip
    print(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
