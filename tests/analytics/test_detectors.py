"""Every registered detector keeps the contract: [0, 1], causal, batch == streaming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slothlab.analytics import (
    AnomalyLikelihood,
    Detector,
    HostDetector,
    NoveltyDetector,
    detect,
    flagged_intervals,
    get,
    names,
    register,
)
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
