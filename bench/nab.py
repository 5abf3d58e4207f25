"""NAB v1.1 on the shared part of the corpus: our detector against the stored Numenta HTM scores.

Runs the detector causally, one parameter set, a fresh instance per file; scores it with the
faithful NAB scorer under the three profiles; re-scores the stored Numenta outputs (the peer
baseline) and a rolling z-score (the raw baseline) in the same run; prints one JSON document.

    .venv/bin/python bench/nab.py --json
    .venv/bin/python bench/nab.py --categories realTraffic --detector zscore --write-scores out/
    .venv/bin/python bench/nab.py --holdout realKnownCause   # threshold from the other categories

``per_category`` scores each category alone (its own best threshold, as NAB would on that part);
``holdout`` scores one category at the threshold swept on the *other* categories, the honest
number for data the detector and its threshold were not chosen on; ``--holdout all`` does it for
each category in turn (leave one category out).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from slothlab.analytics import nab
from slothlab.analytics.base import Detector
from slothlab.analytics.registry import get
from slothlab.config import shared_dir
from slothlab.errors import NabDataError, SlothlabError


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        report = run(args)
    except SlothlabError as exc:
        print(f"bench/nab.py: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=None if args.json else 2))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = shared_dir()
    parser.add_argument(
        "--data",
        type=Path,
        default=default / "data" / "nab" if default else None,
        help="the NAB folder (default: $SLOTHLAB_SHARED_DIR/data/nab)",
    )
    parser.add_argument("--categories", nargs="+", default=None, help="only these categories")
    parser.add_argument("--detector", default="default", help="a registered detector name")
    parser.add_argument("--write-scores", type=Path, default=None, metavar="DIR")
    parser.add_argument(
        "--holdout",
        default=None,
        metavar="CATEGORY",
        help="score CATEGORY (or 'all', each in turn) at the thresholds of the other categories",
    )
    parser.add_argument("--json", action="store_true", help="one line of JSON")
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.data is None:
        raise NabDataError("no NAB data: pass --data PATH or set SLOTHLAB_SHARED_DIR")
    files = nab.load_corpus(args.data, args.categories)
    ours, our_scores = _score_files(files, args.detector, args.write_scores)
    ours["per_category"] = _per_category(files, our_scores)
    if args.holdout is not None:
        ours["holdout"] = _holdouts(files, our_scores, args.holdout)
    ours["stream_us_per_sample"] = _stream_cost(files, args.detector)
    report: dict[str, Any] = {
        "benchmark": "NAB v1.1 (shared part)",
        "files": len(files),
        "rows": int(sum(f.values.size for f in files)),
        "detector": args.detector,
        "ours": ours,
    }
    if args.detector != "zscore":
        report["baseline_zscore"] = _score_files(files, "zscore", None)[0]
    numenta = _stored_scores(files, args.data / "results" / "numenta", "numenta")
    if numenta is not None:
        report["numenta_htm"] = _summary(files, numenta)
        report["numenta_htm"]["per_category"] = _per_category(files, numenta)
        if args.holdout is not None:
            report["numenta_htm"]["holdout"] = _holdouts(files, numenta, args.holdout)
        std = report["numenta_htm"]["profiles"]["standard"]
        report["ratio_standard_vs_numenta"] = round(ours["profiles"]["standard"] / std, 4)
    return report


def _score_files(
    files: list[nab.NabFile], name: str, out: Path | None
) -> tuple[dict[str, Any], dict[str, np.ndarray[Any, Any]]]:
    scores: dict[str, np.ndarray[Any, Any]] = {}
    elapsed = 0.0
    for f in files:
        detector = get(name)
        if not isinstance(detector, Detector):
            raise NabDataError(f"{name!r} is a multivariate detector; NAB needs a univariate one")
        start = time.perf_counter()
        scores[f.name] = detector.score_batch(f.values, f.timestamps)
        elapsed += time.perf_counter() - start
        if out is not None:
            _write(out, name, f, scores[f.name])
    summary = _summary(files, scores)
    rows = sum(f.values.size for f in files)
    summary["rows_per_s"] = round(rows / elapsed) if elapsed else None
    summary["us_per_sample"] = round(1e6 * elapsed / rows, 2)
    return summary, scores


def _stream_cost(files: list[nab.NabFile], name: str, rows: int = 3000) -> float:
    """Microseconds per update() call, one sample at a time, on the start of the first file."""
    detector = get(name)
    f = files[0]
    pairs = list(zip(f.values[:rows].tolist(), f.timestamps[:rows].tolist(), strict=True))
    start = time.perf_counter()
    for value, ts in pairs:
        detector.update(value, ts)
    return round(1e6 * (time.perf_counter() - start) / max(len(pairs), 1), 2)


def _category(f: nab.NabFile) -> str:
    return f.name.split("/")[0]


def _per_category(files: list[nab.NabFile], scores: dict[str, Any]) -> dict[str, float]:
    """Each category scored alone (its own best standard-profile threshold)."""
    out = {}
    for category in sorted({_category(f) for f in files}):
        part = [f for f in files if _category(f) == category]
        out[category] = round(nab.score_corpus(part, scores, nab.STANDARD).normalized, 2)
    return out


def _holdouts(files: list[nab.NabFile], scores: dict[str, Any], which: str) -> dict[str, Any]:
    categories = sorted({_category(f) for f in files})
    chosen = categories if which == "all" else [which]
    unknown = set(chosen) - set(categories)
    if unknown or len(categories) < 2:
        raise NabDataError(
            f"--holdout {which}: pick one of {', '.join(categories)} or 'all' "
            "(and load at least two categories)"
        )
    out: dict[str, Any] = {}
    for category in chosen:
        held = [f for f in files if _category(f) == category]
        rest = [f for f in files if _category(f) != category]
        out[category] = {}
        for profile in nab.PROFILES:
            threshold = nab.score_corpus(rest, scores, profile).threshold
            out[category][profile.name] = round(_at_threshold(held, scores, profile, threshold), 2)
    if which == "all":
        out["mean_standard"] = round(float(np.mean([out[c]["standard"] for c in chosen])), 2)
    return out


def _at_threshold(
    files: list[nab.NabFile], scores: dict[str, Any], profile: nab.Profile, threshold: float
) -> float:
    """The normalised NAB score of ``files`` with detections at ``score >= threshold``."""
    total, windows = 0.0, 0
    for f in files:
        weights, ids = nab.row_weights(f.values.size, f.windows, profile)
        keep = ids != -2
        hit = np.asarray(scores[f.name])[keep] >= threshold
        weights, ids = weights[keep], ids[keep]
        for k in np.unique(ids[ids >= 0]).tolist():
            inside = np.flatnonzero(hit & (ids == k))
            total += float(weights[inside[0]]) if inside.size else -profile.fn
            windows += 1
        total += float(weights[hit & (ids == -1)].sum())
    span = (profile.tp + profile.fn) * windows
    return 100.0 * (total + profile.fn * windows) / span if span else 0.0


def _summary(files: list[nab.NabFile], scores: dict[str, Any]) -> dict[str, Any]:
    results = [nab.score_corpus(files, scores, p) for p in nab.PROFILES]
    std = results[0]
    return {
        "profiles": {r.profile: round(r.normalized, 2) for r in results},
        "thresholds": {r.profile: r.threshold for r in results},
        "windows": std.windows,
        "windows_found": std.windows_found,
        "false_detections": std.false_detections,
        "false_per_1000_rows": round(1000 * std.false_detections / std.scored_rows, 3),
    }


def _stored_scores(
    files: list[nab.NabFile], root: Path, detector: str
) -> dict[str, np.ndarray[Any, Any]] | None:
    import pandas as pd

    scores = {}
    for f in files:
        category, base = f.name.split("/")
        path = root / category / f"{detector}_{base}"
        if not path.exists():
            return None
        scores[f.name] = pd.read_csv(path)["anomaly_score"].to_numpy(dtype=np.float64)
    return scores


def _write(out: Path, name: str, f: nab.NabFile, scores: np.ndarray[Any, Any]) -> None:
    import pandas as pd

    category, base = f.name.split("/")
    folder = out / category
    folder.mkdir(parents=True, exist_ok=True)
    stamps = pd.to_datetime(f.timestamps, unit="s").strftime("%Y-%m-%d %H:%M:%S")
    frame = pd.DataFrame({"timestamp": stamps, "value": f.values, "anomaly_score": scores})
    frame.to_csv(folder / f"{name}_{base}", index=False)


if __name__ == "__main__":
    raise SystemExit(main())
