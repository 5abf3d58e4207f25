"""Every registered detector keeps the contract: [0, 1], causal, batch == streaming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slothlab.analytics import (
    AnomalyLikelihood,
    ContextDetector,
    Detector,
    HostDetector,
    NoveltyDetector,
    detect,
    detect_history,
    flagged_intervals,
    get,
    names,
    register,
)
from slothlab.analytics.likelihood import likelihood_batch
from slothlab.analytics.registry import _factories
from slothlab.errors import AnalyticsError, UnknownDetectorError

RNG = np.random.default_rng(7)
SERIES = np.r_[np.sin(np.arange(1200) / 10.0) + RNG.normal(0, 0.1, 1200), [8.0], np.zeros(50)]


def _data(det: Detector | HostDetector) -> np.ndarray:
    if isinstance(det, HostDetector):
        return np.c_[SERIES, SERIES[::-1], RNG.normal(size=SERIES.size)]
    return SERIES


@pytest.mark.parametrize("name", names())
def test_conformance(name: str) -> None:
    data = _data(get(name))
    batch = get(name).score_batch(data)
    streaming = get(name)
    stepped = np.array([streaming.update(row) for row in data])  # type: ignore[arg-type]
    again = get(name).score_batch(data)
    assert batch.shape == (len(data),)
    assert ((batch >= 0) & (batch <= 1)).all()
    np.testing.assert_allclose(stepped, batch, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(again, batch)


@pytest.mark.parametrize("name", names())
def test_scores_are_causal(name: str) -> None:
    data = _data(get(name))
    full = get(name).score_batch(data)
    prefix = get(name).score_batch(data[:900])
    np.testing.assert_array_equal(full[:900], prefix)


def test_default_flags_the_spike_not_the_sine() -> None:
    scores = get("default").score_batch(SERIES)
    assert scores[1200] >= 0.7
    assert scores[:1200].max() < 0.5


def test_fit_warms_up_without_scoring() -> None:
    warm = NoveltyDetector().fit(SERIES[:1000])
    cold = NoveltyDetector()
    cold.score_batch(SERIES[:1000])
    assert warm.update(8.0) == cold.update(8.0)


def test_likelihood_is_calibrated_to_the_history() -> None:
    noisy, quiet = AnomalyLikelihood(learning=50), AnomalyLikelihood(learning=50)
    for i in range(500):
        noisy.update(float(RNG.random() < 0.3))
        quiet.update(0.0 if i % 50 else 0.1)
    assert quiet.update(1.0) > noisy.update(1.0)


def test_registry_names_what_exists_and_takes_plugins() -> None:
    with pytest.raises(UnknownDetectorError, match="known detectors: context, default"):
        get("nope")

    class Zero(Detector):
        name = "zero"

        def update(self, value: float, ts: float | None = None) -> float:
            return 0.0

    register("zero", Zero)
    try:
        assert isinstance(get("zero"), Zero)
    finally:
        del _factories["zero"]


def test_detect_returns_scores_flags_and_intervals() -> None:
    index = pd.date_range("2024-01-01", periods=SERIES.size, freq="min")
    frame = detect(pd.Series(SERIES, index=index))
    assert list(frame.columns) == ["ts", "value", "score", "flagged"]
    assert flagged_intervals(frame)[0][0] == index[1200]
    same = detect(pd.DataFrame({"ts": index, "value": SERIES}))
    pd.testing.assert_frame_equal(frame, same)


def test_detect_rejects_what_it_cannot_score() -> None:
    with pytest.raises(AnalyticsError, match="'ts' and 'value'"):
        detect(pd.DataFrame({"x": [1.0]}))
    with pytest.raises(AnalyticsError, match="several metrics"):
        detect(pd.Series([1.0, 2.0]), detector="isolation_forest")


def test_end_to_end_on_a_real_nab_file(shared_dir: Path) -> None:
    from slothlab.analytics import nab

    root = shared_dir / "data" / "nab"
    files = [f for f in nab.load_corpus(root, ["realKnownCause"]) if "ambient" in f.name]
    scores = {f.name: get("default").score_batch(f.values, f.timestamps) for f in files}
    result = nab.score_corpus(files, scores, nab.STANDARD)
    assert result.windows_found >= 1
    assert result.normalized > 0


def test_context_batch_equals_stream_with_gaps_and_timestamps() -> None:
    values = SERIES.copy()
    values[[5, 300, 700]] = np.nan
    stamps = 1.7e9 + 300.0 * np.arange(values.size)
    batch = ContextDetector().score_batch(values, stamps)
    det = ContextDetector()
    stream = np.array([det.update(v, t) for v, t in zip(values, stamps, strict=True)])
    np.testing.assert_array_equal(batch, stream)
    assert batch[1200] >= 0.7 and batch[[5, 300, 700]].tolist() == [0.0, 0.0, 0.0]


def test_context_continues_after_a_batch_like_the_stream() -> None:
    warm = ContextDetector()
    warm.score_batch(SERIES[:1000])  # the vectorised path, then the state it leaves
    cold = ContextDetector()
    for v in SERIES[:1000]:
        cold.update(v)
    rest = SERIES[1000:]
    np.testing.assert_array_equal(warm.score_batch(rest), [cold.update(v) for v in rest])


def test_context_reports_one_alert_per_event_not_a_run() -> None:
    steady = np.r_[np.tile([1.0, 2.0, 3.0, 2.0], 150), np.full(30, 50.0)]
    scores = ContextDetector().score_batch(steady)
    assert scores[600] >= 0.7
    assert scores[601:].max() == 0.0  # the repeats of the same level never beat the first


def test_context_learns_a_pattern_change_from_its_context() -> None:
    rng = np.random.default_rng(3)
    cycle = np.tile([0.0, 0.0, 1.0, 1.0], 300) + rng.normal(0, 0.01, 1200)
    changed = np.r_[cycle, np.tile([0.0, 1.0], 20)]  # same values, new order
    scores = ContextDetector().score_batch(changed)
    assert scores[:1200].max() < 0.5  # below the default threshold while the cycle holds
    assert scores[1200:].max() >= 0.5


def test_likelihood_batch_matches_the_stream() -> None:
    raw = RNG.random(2000) * (RNG.random(2000) < 0.2)
    lik = AnomalyLikelihood(long_window=300, short_window=10, learning=50)
    stream = [lik.update(r) for r in raw]
    batch = likelihood_batch(raw, long_window=300, short_window=10, learning=50)
    np.testing.assert_array_equal(batch, stream)


def test_likelihood_rejects_a_short_window_longer_than_the_long_one() -> None:
    with pytest.raises(AnalyticsError, match="short_window=10 must be between 1"):
        AnomalyLikelihood(long_window=5, short_window=10)


def test_detect_history_scores_each_series_and_writes_back(tmp_path: Path) -> None:
    from slothlab.metrics import MetricsHistory, Sample

    path = tmp_path / "history.duckdb"
    values = SERIES[:1300]
    with MetricsHistory(path, background=False) as history:
        history.write(
            [Sample(60.0 * i, "web-1", "load1", float(v)) for i, v in enumerate(values)]
            + [Sample(60.0 * i, "web-1", "disk", 1.0, {"mount": "/"}) for i in range(50)]
            + [Sample(60.0 * i, "web-2", "load1", 0.0) for i in range(50)]
        )
        frame = detect_history(history, "load1", "web-1")
    assert len(frame) == values.size and set(frame["host"]) == {"web-1"}
    expected = get("default").score_batch(values, 60.0 * np.arange(values.size))
    np.testing.assert_array_equal(frame["score"].to_numpy(), expected)
    with MetricsHistory(path, background=False) as reopened:  # on disk, not just buffered
        back = reopened.query("load1_anomaly_score", host="web-1")
        assert reopened.query("load1_anomaly_score", host="web-2").empty
    np.testing.assert_array_equal(back.sort_values("ts")["value"].to_numpy(), expected)
    assert flagged_intervals(frame)[0][0] == pd.Timestamp(60.0 * 1200, unit="s", tz="UTC")


def test_detect_history_keeps_label_sets_apart_and_can_skip_the_write(tmp_path: Path) -> None:
    from slothlab.metrics import MetricsHistory, Sample

    with MetricsHistory(tmp_path / "h.duckdb", background=False) as history:
        history.write(
            [Sample(60.0 * i, "db", "disk", 1.0, {"mount": "/"}) for i in range(200)]
            + [Sample(60.0 * i, "db", "disk", 5.0, {"mount": "/data"}) for i in range(200)]
        )
        frame = detect_history(history, "disk", "db", since=60.0 * 100, write_back=False)
        assert history.query("disk_anomaly_score").empty
        with pytest.raises(AnalyticsError, match="no samples of 'cpu' for host 'db'"):
            detect_history(history, "cpu", "db")
    assert len(frame) == 200
    assert sorted(frame.groupby(frame["labels"].map(str)).size().tolist()) == [100, 100]


def test_context_batch_equals_stream_on_extreme_values() -> None:
    values = np.r_[np.sin(np.arange(400) / 5.0), 1e300, 3.0, -1e300, 1e-300, np.inf, 0.5]
    det = ContextDetector()
    stream = [det.update(v) for v in values]
    np.testing.assert_array_equal(ContextDetector().score_batch(values), stream)
    assert stream[400] == 1.0


def test_score_batch_reads_a_datetime_index_as_epoch_seconds() -> None:
    idx = pd.date_range("2024-05-01", periods=400, freq="10min", unit="us")
    values = np.sin(np.arange(400) / 6.0)
    values[350] = 9.0
    from_index = get("default").score_batch(values, idx)
    from_seconds = get("default").score_batch(values, idx.asi8 / 1e6)
    assert from_index.tolist() == from_seconds.tolist()
    aware = get("default").score_batch(values, idx.tz_localize("UTC"))
    assert aware.tolist() == from_seconds.tolist()
