"""A scorer for the Numenta Anomaly Benchmark (NAB v1.1), written from NAB's published rules.

Per file of N rows the first ``P = min(floor(0.15 N), 750)`` rows are probationary and not scored.
A row i inside a window ``[L, R]`` (width ``w``) is worth ``A_TP * σ(-(R - i + 1) / w) / σ(-1)``
where ``σ`` is :func:`scaled_sigmoid`, and only the earliest detection of a window counts; a window
without a detection costs ``-A_FN``. A detection outside every window costs ``-A_FP`` before the
first window, and ``A_FP * σ(|R_prev - i| / (w_prev - 1))`` after one. One threshold per detector
and profile is chosen by sweeping every distinct score over the whole corpus (a detection is a row
whose score is ``>=`` the threshold; ties between thresholds go to the highest). The normalised
score is ``100 * (S - S_null) / (S_perfect - S_null)`` with ``S_perfect = A_TP * W`` and
``S_null = -A_FN * W`` over the W scored windows.

>>> round(scaled_sigmoid(-1.0), 5), round(scaled_sigmoid(0.0), 5), scaled_sigmoid(3.5)
(0.98661, 0.0, -1.0)
>>> f = NabFile("x/a.csv", np.arange(10.0), np.zeros(10), ((5, 6),))
>>> perfect = np.zeros(10); perfect[5] = 1.0
>>> round(score_corpus([f], {"x/a.csv": perfect}, STANDARD).normalized, 6)
100.0
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from slothlab.errors import NabDataError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "PROFILES",
    "STANDARD",
    "NabFile",
    "NabResult",
    "Profile",
    "load_corpus",
    "load_profiles",
    "probation_length",
    "row_weights",
    "scaled_sigmoid",
    "score_corpus",
]

CATEGORIES = ("artificialWithAnomaly", "realAWSCloudwatch", "realKnownCause", "realTraffic")


@dataclass(frozen=True)
class Profile:
    """A NAB cost profile: the weights of a true positive, a false negative and a false positive."""

    name: str
    tp: float
    fn: float
    fp: float


STANDARD = Profile("standard", 1.0, 1.0, 0.11)
PROFILES: tuple[Profile, ...] = (
    STANDARD,
    Profile("reward_low_FP_rate", 1.0, 1.0, 0.22),
    Profile("reward_low_FN_rate", 1.0, 2.0, 0.11),
)


@dataclass(frozen=True)
class NabFile:
    """One data file of the corpus.

    Attributes:
        name: ``<category>/<file>.csv``, the key of the label file.
        timestamps: seconds since the epoch, one per row.
        values: the series.
        windows: anomaly windows as inclusive ``(first_row, last_row)`` index pairs.
    """

    name: str
    timestamps: NDArray[np.float64]
    values: NDArray[np.float64]
    windows: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class NabResult:
    """The outcome of scoring a corpus under one profile at its best threshold."""

    profile: str
    threshold: float
    raw: float
    normalized: float
    windows: int
    windows_found: int
    false_detections: int
    scored_rows: int


def scaled_sigmoid(y: float) -> float:
    """NAB's ``2 / (1 + exp(5 y)) - 1``, and -1 past ``y = 3``.

    >>> [round(scaled_sigmoid(y), 5) for y in (-1.0, -0.5, 0.0, 1.0)]
    [0.98661, 0.84828, 0.0, -0.98661]
    """
    if y >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def _scaled_sigmoid_array(y: NDArray[np.float64]) -> NDArray[np.float64]:
    out = 2.0 / (1.0 + np.exp(np.minimum(5.0 * y, 50.0))) - 1.0
    return np.where(y >= 3.0, -1.0, out)


def probation_length(rows: int) -> int:
    """Rows at the start of a file that are not scored: ``min(floor(0.15 N), 750)``.

    >>> probation_length(4032), probation_length(22695)
    (604, 750)
    """
    return int(min(math.floor(0.15 * rows), 750))


def row_weights(
    rows: int, windows: Sequence[tuple[int, int]], profile: Profile
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """What a detection on each row is worth, and which window (index) each row is in.

    The window index is ``-1`` outside every window and ``-2`` for probationary rows.

    >>> w, ids = row_weights(10, [(5, 6)], STANDARD)
    >>> ids.tolist()
    [-2, -1, -1, -1, -1, 0, 0, -1, -1, -1]
    >>> round(float(w[5]), 4), round(float(w[2]), 2)
    (1.0, -0.11)
    """
    idx = np.arange(rows, dtype=np.float64)
    weights = np.full(rows, -profile.fp)
    ids = np.full(rows, -1, dtype=np.int64)
    max_tp = scaled_sigmoid(-1.0)
    ordered = sorted(windows)
    for k, (left, right) in enumerate(ordered):
        width = float(right - left + 1)
        inside = slice(left, right + 1)
        weights[inside] = _scaled_sigmoid_array(-(right - idx[inside] + 1) / width) / max_tp
        weights[inside] *= profile.tp
        ids[inside] = k
        end = ordered[k + 1][0] if k + 1 < len(ordered) else rows
        after = slice(right + 1, end)
        # NAB divides by (width - 1); a one-row window would divide by zero, so it reads as far.
        past = (
            np.abs(right - idx[after]) / (width - 1) if width > 1 else np.full(end - right - 1, 3)
        )
        weights[after] = _scaled_sigmoid_array(past) * profile.fp
    ids[: probation_length(rows)] = -2
    return weights, ids


def score_corpus(
    files: Sequence[NabFile], scores: Mapping[str, NDArray[np.float64]], profile: Profile
) -> NabResult:
    """Sweep every distinct score over the corpus and score it at the best threshold.

    Args:
        files: the corpus.
        scores: anomaly scores per file name, one per row.
        profile: the cost profile.
    """
    all_scores, all_weights, all_ids = _stack(files, scores, profile)
    n_windows = int(all_ids.max()) + 1 if all_ids.size else 0
    order = np.argsort(-all_scores, kind="stable")
    s, w, ids = all_scores[order], all_weights[order], all_ids[order]
    delta = np.where(ids == -1, w, 0.0)
    inside = ids >= 0
    if inside.any():
        delta[inside] = _window_gains(ids[inside], w[inside], profile.fn)
    base = -profile.fn * n_windows
    running = base + np.cumsum(delta)
    # The score at a threshold counts every row at or above it: the last row of each tie group.
    last_of_group = np.flatnonzero(np.r_[s[1:] != s[:-1], True]) if s.size else np.array([], int)
    totals = np.r_[base, running[last_of_group]]
    thresholds = np.r_[1.1, s[last_of_group]]
    best = int(np.argmax(totals))  # first maximum: the highest threshold among ties
    return _result(profile, float(thresholds[best]), float(totals[best]), n_windows, s, ids)


def _stack(
    files: Sequence[NabFile], scores: Mapping[str, NDArray[np.float64]], profile: Profile
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    parts_s, parts_w, parts_i = [], [], []
    offset = 0
    for f in files:
        if f.name not in scores:
            raise NabDataError(f"no scores for {f.name}; score every file of the corpus")
        s = np.asarray(scores[f.name], dtype=np.float64)
        if s.shape != f.values.shape:
            raise NabDataError(f"{f.name}: {s.size} scores for {f.values.size} rows")
        w, ids = row_weights(f.values.size, f.windows, profile)
        keep = ids != -2
        scored_ids = ids[keep]
        # Windows wholly inside probation are not scored (NAB never sees a row of them).
        present = np.unique(scored_ids[scored_ids >= 0])
        remap = np.full(len(f.windows) + 1, -1, dtype=np.int64)
        remap[present] = np.arange(present.size) + offset
        offset += present.size
        parts_i.append(np.where(scored_ids >= 0, remap[scored_ids], -1))
        parts_s.append(s[keep])
        parts_w.append(w[keep])
    return np.concatenate(parts_s), np.concatenate(parts_w), np.concatenate(parts_i)


def _window_gains(ids: NDArray[np.int64], w: NDArray[np.float64], fn: float) -> NDArray[np.float64]:
    """Score change as each in-window row (in threshold order) joins: its window's running best."""
    import pandas as pd

    frame = pd.DataFrame({"id": ids, "w": w})
    best = frame.groupby("id")["w"].cummax().to_numpy()
    prev = frame.assign(b=best).groupby("id")["b"].shift(1).fillna(-fn).to_numpy()
    gains: NDArray[np.float64] = np.maximum(best, -fn) - np.maximum(prev, -fn)
    return gains


def _result(
    profile: Profile,
    threshold: float,
    raw: float,
    n_windows: int,
    s: NDArray[np.float64],
    ids: NDArray[np.int64],
) -> NabResult:
    detected = s >= threshold
    found = int(np.unique(ids[detected & (ids >= 0)]).size)
    perfect, null = profile.tp * n_windows, -profile.fn * n_windows
    normalized = 100.0 * (raw - null) / (perfect - null) if perfect != null else 0.0
    return NabResult(
        profile=profile.name,
        threshold=threshold,
        raw=raw,
        normalized=normalized,
        windows=n_windows,
        windows_found=found,
        false_detections=int(np.count_nonzero(detected & (ids == -1))),
        scored_rows=int(s.size),
    )


def load_profiles(path: Path) -> tuple[Profile, ...]:
    """The profiles of NAB's ``config/profiles.json``."""
    try:
        raw = json.loads(path.read_text())
        return tuple(
            Profile(name, float(c["tpWeight"]), float(c["fnWeight"]), float(c["fpWeight"]))
            for name, body in raw.items()
            for c in [body["CostMatrix"]]
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NabDataError(f"cannot read NAB profiles from {path}: {exc}") from exc


def load_corpus(root: Path, categories: Iterable[str] | None = None) -> list[NabFile]:
    """The NAB files under ``root`` (``data/<category>/*.csv`` and ``labels/``), sorted by name.

    Args:
        root: the NAB folder (holding ``data/`` and ``labels/combined_windows.json``).
        categories: only these categories (default: every one present).
    """
    labels_path = root / "labels" / "combined_windows.json"
    try:
        labels: dict[str, list[list[str]]] = json.loads(labels_path.read_text())
    except (OSError, ValueError) as exc:
        raise NabDataError(f"cannot read NAB windows from {labels_path}: {exc}") from exc
    wanted = set(categories) if categories is not None else None
    present = {p.name for p in (root / "data").glob("*") if p.is_dir()}
    if wanted is not None and not wanted <= present:
        missing = ", ".join(sorted(wanted - present))
        known = ", ".join(sorted(present)) or "none"
        raise NabDataError(f"unknown NAB categories: {missing}; known: {known}")
    files = []
    for name in sorted(labels):
        if wanted is not None and name.split("/")[0] not in wanted:
            continue
        path = root / "data" / name
        if path.exists():
            files.append(_load_file(name, path, labels[name]))
    if not files:
        raise NabDataError(f"no NAB data files under {root / 'data'}; pass the NAB folder")
    return files


def _load_file(name: str, path: Path, windows: list[list[str]]) -> NabFile:
    import pandas as pd

    frame = pd.read_csv(path)
    stamps = pd.to_datetime(frame["timestamp"]).to_numpy(dtype="datetime64[ns]")
    limits = []
    for start, end in windows:
        left = int(np.searchsorted(stamps, np.datetime64(pd.Timestamp(start)), "left"))
        right = int(np.searchsorted(stamps, np.datetime64(pd.Timestamp(end)), "right")) - 1
        limits.append((left, right))
    seconds = stamps.astype("int64").astype(np.float64) / 1e9
    values = frame["value"].to_numpy(dtype=np.float64)
    return NabFile(name, seconds, values, tuple(limits))
