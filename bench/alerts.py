"""Alert evaluation cost: AlertManager.evaluate against a raw Python loop over the same values.

Prints one JSON document. Two cases, each over ``--series`` series and ``--rules`` rules:

* ``steady``: the same values every round; a quarter of the series breach (the alerts keep
  firing), so after the first round nothing is written to SQLite.
* ``churn``: every round flips the breaching quarter, so every alert fires or resolves and
  each change is a SQLite write (a file in a temporary folder, WAL).

The baseline does the comparisons a rule engine cannot avoid (for each rule, each series of its
metric, compare with the threshold) on pre-parsed values, with no state; the ratio is the price
of parsing series keys, keeping states, history and notifications.

    .venv/bin/python bench/alerts.py [--series 2000] [--rules 10] [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import operator
import statistics
import tempfile
import time
from pathlib import Path

from slothlab.metrics.alerts import AlertManager, AlertRule


def _values(series: int, metrics: int, flip: bool) -> dict[str, float]:
    out = {}
    for i in range(series):
        breach = (i % 4 == 0) != flip
        key = f'm{i % metrics}{{host="h{i // metrics}",mount="/d{i % 7}"}}'
        out[key] = 0.95 if breach else 0.5
    return out


def _baseline(rules: list[AlertRule], values: dict[str, float]) -> int:
    by_metric: dict[str, list[float]] = {}
    for key, value in values.items():
        by_metric.setdefault(key.partition("{")[0], []).append(value)
    ops = {">": operator.gt}
    hits = 0
    for rule in rules:
        compare = ops[rule.op]
        for value in by_metric.get(str(rule.metric), ()):
            hits += compare(value, rule.threshold)
    return hits


def _time(fn: object, rounds: int) -> float:
    samples = []
    for r in range(rounds):
        start = time.perf_counter()
        fn(r)  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=2000)
    parser.add_argument("--rules", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    rules = [AlertRule(f"R{i}", f"m{i}", ">", 0.9) for i in range(args.rules)]
    steady = _values(args.series, args.rules, False)
    flipped = _values(args.series, args.rules, True)
    report: dict[str, object] = {"series": args.series, "rules": args.rules, "rounds": args.rounds}
    with tempfile.TemporaryDirectory() as tmp:
        clock = [0.0]
        manager = AlertManager(rules, path=Path(tmp) / "alerts.db", clock=lambda: clock[0])

        def run_steady(r: int) -> None:
            clock[0] += 1
            manager.evaluate(steady)

        def run_churn(r: int) -> None:
            clock[0] += 1
            manager.evaluate(flipped if r % 2 else steady)

        run_steady(0)  # the first round fires everything
        cases = {
            "steady": (run_steady, lambda r: _baseline(rules, steady)),
            "churn": (run_churn, lambda r: _baseline(rules, flipped if r % 2 else steady)),
        }
        for name, (engine, raw) in cases.items():
            t_engine = _time(engine, args.rounds)
            t_raw = _time(raw, args.rounds)
            report[name] = {
                "evaluate_ms": round(t_engine * 1000, 3),
                "baseline_ms": round(t_raw * 1000, 3),
                "ratio": round(t_engine / t_raw, 1),
                "series_per_s": round(args.series / t_engine),
            }
        report["changes_per_churn_round"] = args.series // 4 * 2
        manager.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
