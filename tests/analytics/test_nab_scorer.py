"""The NAB scorer: check values, perfect and null detectors, the stored Numenta outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slothlab.analytics import nab
from slothlab.errors import NabDataError


@pytest.fixture(scope="module")
def nab_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "nab"


@pytest.fixture(scope="module")
def corpus(nab_dir: Path) -> list[nab.NabFile]:
    return nab.load_corpus(nab_dir)


@pytest.mark.parametrize(
    ("y", "expected"), [(-1.0, 0.98661), (-0.5, 0.84828), (0.0, 0.0), (1.0, -0.98661), (3.0, -1.0)]
)
def test_scaled_sigmoid_check_values(y: float, expected: float) -> None:
    assert nab.scaled_sigmoid(y) == pytest.approx(expected, abs=1e-5)


def test_probation_is_fifteen_percent_capped_at_750() -> None:
    assert [nab.probation_length(n) for n in (100, 5000, 5001, 22695)] == [15, 750, 750, 750]


def test_profiles_file_matches_the_builtin_profiles(nab_dir: Path) -> None:
    assert nab.load_profiles(nab_dir / "config" / "profiles.json") == nab.PROFILES


def test_corpus_has_the_shared_files_and_windows(corpus: list[nab.NabFile]) -> None:
    assert len(corpus) == 37
    assert sum(len(f.windows) for f in corpus) == 69


def _perfect(f: nab.NabFile) -> np.ndarray:
    s = np.zeros(f.values.size)
    for left, _ in f.windows:
        s[left] = 1.0
    return s


@pytest.mark.parametrize("category", [None, "realTraffic", "artificialWithAnomaly"])
@pytest.mark.parametrize("profile", nab.PROFILES, ids=lambda p: p.name)
def test_perfect_scores_100_and_null_0(
    nab_dir: Path, category: str | None, profile: nab.Profile
) -> None:
    files = nab.load_corpus(nab_dir, None if category is None else [category])
    perfect = nab.score_corpus(files, {f.name: _perfect(f) for f in files}, profile)
    null = nab.score_corpus(files, {f.name: np.zeros(f.values.size) for f in files}, profile)
    assert perfect.normalized == pytest.approx(100.0)
    assert perfect.false_detections == 0
    assert null.normalized == pytest.approx(0.0)


def test_stored_numenta_outputs_score_as_published(
    nab_dir: Path, corpus: list[nab.NabFile]
) -> None:
    scores = {}
    for f in corpus:
        category, base = f.name.split("/")
        path = nab_dir / "results" / "numenta" / category / f"numenta_{base}"
        scores[f.name] = pd.read_csv(path)["anomaly_score"].to_numpy()
    got = [nab.score_corpus(corpus, scores, p).normalized for p in nab.PROFILES]
    assert got == pytest.approx([70.2, 64.3, 74.3], abs=0.1)


def test_earliest_detection_counts_and_ties_pick_the_highest_threshold() -> None:
    f = nab.NabFile("c/a.csv", np.arange(100.0), np.zeros(100), ((50, 59),))
    late = np.zeros(100)
    late[58] = 0.9
    late[50] = 0.4  # lowering the threshold to 0.4 finds the window earlier
    result = nab.score_corpus([f], {f.name: late}, nab.STANDARD)
    assert result.threshold == 0.4 and result.normalized == pytest.approx(100.0)
    same = np.full(100, 0.2)  # every threshold above 0.2 scores the same as "never": keep 1.1
    assert nab.score_corpus([f], {f.name: same}, nab.STANDARD).threshold == 1.1


def test_false_positive_right_after_a_window_is_cheap() -> None:
    f = nab.NabFile("c/a.csv", np.arange(100.0), np.zeros(100), ((40, 49),))
    weights, _ = nab.row_weights(100, f.windows, nab.STANDARD)
    assert weights[30] == pytest.approx(-0.11)
    assert -0.11 < weights[50] < weights[60] * 0 + 0 and weights[50] > weights[70]


def test_missing_scores_and_bad_categories_say_what_to_do(nab_dir: Path) -> None:
    files = nab.load_corpus(nab_dir, ["realTraffic"])
    with pytest.raises(NabDataError, match="no scores for"):
        nab.score_corpus(files, {}, nab.STANDARD)
    with pytest.raises(NabDataError, match="known: artificialWithAnomaly"):
        nab.load_corpus(nab_dir, ["nope"])
