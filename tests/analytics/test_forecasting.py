"""Forecasters, backtests, the auto choice and the forecast() front door."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slothlab.analytics import choose_forecaster, forecast
from slothlab.analytics.forecasting import (
    GradientBoostingForecaster,
    Naive,
    SeasonalNaive,
    make_forecaster,
    rolling_origin,
)

STEP = 300.0
DAY = 288


def seasonal_series(days: int, noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(days * DAY)
    daily = 100 + 30 * np.sin(2 * np.pi * t / DAY) + 0.01 * t
    return daily + rng.normal(0, noise, len(t)), t * STEP


def test_baselines_repeat_the_last_value_and_the_last_season() -> None:
    y, ts = seasonal_series(3)
    naive = Naive().fit(y, ts).predict(5)
    assert np.all(naive.mean == y[-1])
    snaive = SeasonalNaive(DAY).fit(y, ts).predict(DAY + 2)
    np.testing.assert_allclose(snaive.mean[:DAY], y[-DAY:])
    np.testing.assert_allclose(snaive.mean[DAY:], y[-DAY:][:2])
    np.testing.assert_allclose(snaive.timestamps, ts[-1] + STEP * np.arange(1, DAY + 3))
    assert np.all(snaive.upper >= snaive.mean) and np.all(snaive.lower <= snaive.mean)


def test_the_model_beats_the_naive_forecast_and_its_bound_covers() -> None:
    y, ts = seasonal_series(12, noise=2.0)
    kwargs = {"horizon": 12, "test_points": DAY, "every": 96, "season": DAY}
    gbm = rolling_origin(y, ts, lambda: GradientBoostingForecaster(horizon=12), **kwargs).scores()
    naive = rolling_origin(y, ts, Naive, **kwargs).scores()
    assert gbm["mase"] < naive["mase"]
    assert 0.75 <= gbm["upper_coverage"] <= 1.0


def test_the_model_refuses_a_longer_horizon_than_it_learned() -> None:
    y, ts = seasonal_series(4)
    model = GradientBoostingForecaster(horizon=6).fit(y, ts)
    with pytest.raises(ValueError, match="horizon=20"):
        model.predict(20)


def test_extend_moves_the_origin_without_fitting_again() -> None:
    y, ts = seasonal_series(3)
    model = SeasonalNaive(DAY).fit(y[:-10], ts[:-10])
    moved = model.extend(y, ts).predict(1)
    assert moved.mean[0] == y[-DAY]
    with pytest.raises(ValueError, match="fit the forecaster"):
        Naive().extend(y, ts)


def test_azure_baselines_match_the_reference_protocol(shared_dir: Path) -> None:
    path = shared_dir / "data/azure_v2_cluster_5min/vm_cpu_readings_month_aggregated_cpu_mem.csv"
    frame = pd.read_csv(path)
    y, ts = frame["cpu_usage"].to_numpy(), frame["timestamp"].to_numpy(dtype=float)
    kwargs = {"horizon": 12, "test_points": 7 * DAY, "every": DAY // 2, "season": DAY}
    # notes/benchmarks.md: naive 0.44, seasonal-naive(288) 0.99, weekly 0.65 at H=12
    expected = {
        Naive: 0.44,
        (lambda: SeasonalNaive(DAY)): 0.99,
        (lambda: SeasonalNaive(7 * DAY)): 0.65,
    }
    for make, mase in expected.items():
        assert rolling_origin(y, ts, make, **kwargs).scores()["mase"] == pytest.approx(
            mase, abs=0.01
        )


def test_auto_picks_the_season_on_a_seasonal_series() -> None:
    y, ts = seasonal_series(4)
    model, scores = choose_forecaster(y, ts, 12, candidates=["naive", "seasonal_naive"])
    assert type(model) is SeasonalNaive
    assert scores["seasonal_naive"] < scores["naive"]


def test_forecast_takes_a_series_and_keeps_its_time_zone() -> None:
    y, _ = seasonal_series(3)
    index = pd.date_range("2024-03-29", periods=len(y), freq="5min", tz="Europe/Berlin")
    frame = forecast(pd.Series(y, index=index.as_unit("us")), 4, model="seasonal_naive")
    assert list(frame.columns) == ["ts", "mean", "lower", "upper"]
    assert frame["ts"].iloc[0] == index[-1] + pd.Timedelta("5min")
    assert frame.attrs["model"] == "seasonal_naive"
    np.testing.assert_allclose(frame["mean"], y[-DAY:][:4])


def test_forecast_from_a_frame_with_auto() -> None:
    y, ts = seasonal_series(4, noise=1.0)
    frame = pd.DataFrame({"ts": pd.to_datetime(ts, unit="s"), "value": y})
    out = forecast(frame, 12)
    assert len(out) == 12 and out.attrs["model"] in {"naive", "seasonal_naive", "gbm"}
    assert set(out.attrs["scores"]) == {"naive", "seasonal_naive", "gbm"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"horizon": 0}, "at least 1 step"),
        ({"horizon": 3, "model": "prophet"}, "unknown forecast model 'prophet'"),
    ],
)
def test_bad_requests_say_what_is_wrong(args: dict[str, object], message: str) -> None:
    series = pd.Series(np.arange(50.0), index=pd.date_range("2024-01-01", periods=50, freq="h"))
    with pytest.raises(ValueError, match=message):
        forecast(series, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "stamps", "message"),
    [
        ([1.0, 2.0], [0.0, 1.0], "at least 8 points"),
        ([1.0] * 10, [0.0] * 10, "strictly increasing"),
        ([float("nan")] * 10, list(range(10)), "every value is missing"),
    ],
)
def test_bad_series_are_refused(values: list[float], stamps: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Naive().fit(np.array(values), np.array(stamps, dtype=float))


def test_make_forecaster_knows_every_model() -> None:
    for name in ("naive", "seasonal_naive", "weekly_naive", "gbm"):
        assert make_forecaster(name, horizon=12, step_s=STEP) is not None
