"""NAB v1.1 on the shared part of the corpus: our detector against the stored Numenta HTM scores.

Runs the detector causally, one parameter set, a fresh instance per file; scores it with the
faithful NAB scorer under the three profiles; re-scores the stored Numenta outputs (the peer
baseline) and a rolling z-score (the raw baseline) in the same run; prints one JSON document.

    .venv/bin/python bench/nab.py --json
    .venv/bin/python bench/nab.py --categories realTraffic --detector zscore --write-scores out/
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
from slothlab.errors import SlothlabError


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
    parser.add_argument("--json", action="store_true", help="one line of JSON")
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.data is None:
        raise nab.NabDataError("no NAB data: pass --data PATH or set SLOTHLAB_SHARED_DIR")
    files = nab.load_corpus(args.data, args.categories)
    ours = _score_files(files, args.detector, args.write_scores)
    report: dict[str, Any] = {
        "benchmark": "NAB v1.1 (shared part)",
        "files": len(files),
        "rows": int(sum(f.values.size for f in files)),
        "detector": args.detector,
        "ours": ours,
    }
    if args.detector != "zscore":
        report["baseline_zscore"] = _score_files(files, "zscore", None)
    numenta = _stored_scores(files, args.data / "results" / "numenta", "numenta")
    if numenta is not None:
        report["numenta_htm"] = _summary(files, numenta)
        std = report["numenta_htm"]["profiles"]["standard"]
        report["ratio_standard_vs_numenta"] = round(ours["profiles"]["standard"] / std, 4)
    return report


def _score_files(files: list[nab.NabFile], name: str, out: Path | None) -> dict[str, Any]:
    scores: dict[str, np.ndarray[Any, Any]] = {}
    elapsed = 0.0
    for f in files:
        detector = get(name)
        if not isinstance(detector, Detector):
            raise nab.NabDataError(
                f"{name!r} is a multivariate detector; NAB needs a univariate one"
            )
        start = time.perf_counter()
        scores[f.name] = detector.score_batch(f.values, f.timestamps)
        elapsed += time.perf_counter() - start
        if out is not None:
            _write(out, name, f, scores[f.name])
    summary = _summary(files, scores)
    rows = sum(f.values.size for f in files)
    summary["rows_per_s"] = round(rows / elapsed) if elapsed else None
    summary["us_per_sample"] = round(1e6 * elapsed / rows, 2)
    return summary


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
