"""Metrics history ingest and query speed against raw DuckDB, in the same run.

Ingest: ``--rows`` samples (default 1,000,000) written through ``MetricsHistory.write`` (an Arrow
table, then a DataFrame) + ``flush``, each into a fresh file, against a raw DuckDB
``INSERT INTO t SELECT * FROM arrow_table`` (and the same from a DataFrame) into a fresh file.
Goal: the history reaches at least 70 % of raw.

Query: a day of 1-second samples for 50 metrics (``--query-seconds`` x ``--query-metrics``,
default 86,400 x 50 = 4.32 M rows) is written, rolled up (timed), then a 1-minute-step average of
one metric over the day is timed from the 1m rollup (what ``query`` picks) and from raw rows.

Run: ``.venv/bin/python bench/ingest.py`` (add ``--query-seconds 3600`` for a quick run).
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from slothlab.metrics import MetricsHistory

T0 = 1_714_521_600  # 2024-05-01 00:00:00 UTC


def samples(rows: int, metrics: int, hosts: int = 10) -> pa.Table:
    """``rows`` samples, one per second per metric, spread over ``hosts`` hosts."""
    index = np.arange(rows)
    seconds = T0 + index // metrics
    names = np.array([f"bench_metric_{i}" for i in range(metrics)])
    host_names = np.array([f"host-{i}" for i in range(hosts)])
    return pa.table(
        {
            "ts": pa.array(seconds * 1_000_000, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "host": pa.array(host_names[index % hosts]),
            "metric": pa.array(names[index % metrics]),
            "value": pa.array(np.random.default_rng(0).random(rows)),
        }
    )


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def raw_insert(folder: Path, data: Any) -> float:
    """A fresh DuckDB file and one ``INSERT INTO t SELECT * FROM data``."""
    con = duckdb.connect(str(folder / f"raw-{time.perf_counter_ns()}.duckdb"))
    con.execute("CREATE TABLE t (ts TIMESTAMPTZ, host VARCHAR, metric VARCHAR, value DOUBLE)")
    con.register("data", data)
    seconds = timed(lambda: con.execute("INSERT INTO t SELECT * FROM data"))
    con.close()
    return seconds


def history_insert(folder: Path, data: Any) -> float:
    """A fresh history file and ``write(data)`` + ``flush()``."""
    path = folder / f"history-{time.perf_counter_ns()}.duckdb"
    with MetricsHistory(path, background=False, batch_rows=10_000_000) as history:

        def write() -> None:
            history.write(data)
            history.flush()

        return timed(write)


def ingest(folder: Path, rows: int, repeat: int) -> dict[str, Any]:
    table = samples(rows, metrics=50)
    frame = table.to_pandas()
    result: dict[str, Any] = {"rows": rows, "repeat": repeat}
    for name, data in (("arrow", table), ("dataframe", frame)):
        raw: list[float] = []
        ours: list[float] = []
        for _ in range(repeat):  # interleaved, so a busy moment hits both sides alike
            raw.append(raw_insert(folder, data))
            ours.append(history_insert(folder, data))
        raw_s, ours_s = statistics.median(raw), statistics.median(ours)
        result[name] = {
            "raw_rows_per_s": round(rows / raw_s),
            "history_rows_per_s": round(rows / ours_s),
            "ratio": round(raw_s / ours_s, 3),
        }
    return result


def query(folder: Path, seconds: int, metrics: int, repeat: int) -> dict[str, Any]:
    rows = seconds * metrics
    history = MetricsHistory(folder / "query.duckdb", background=False, batch_rows=10_000_000)
    try:
        chunk = 3600 * metrics  # write an hour at a time, as a master flushing often would
        table = samples(rows, metrics)
        write_s = 0.0
        for start in range(0, rows, chunk):
            part = table.slice(start, chunk)
            write_s += timed(lambda part=part: (history.write(part), history.flush()))
        rollup_s = timed(history.rollup)
        metric = f"bench_metric_{metrics // 2}"
        from_rollup = [timed(lambda: history.query(metric, step="1m")) for _ in range(repeat)]
        from_raw = [
            timed(lambda: history.query(metric, step="1m", level="raw")) for _ in range(repeat)
        ]
        hourly = [timed(lambda: history.query(metric, step="1h")) for _ in range(repeat)]
        buckets = len(history.query(metric, step="1m"))
    finally:
        history.close()
    return {
        "rows": rows,
        "metrics": metrics,
        "write_rows_per_s": round(rows / write_s),
        "rollup_s": round(rollup_s, 3),
        "rollup_rows_per_s": round(rows / rollup_s),
        "step_1m_buckets": buckets,
        "step_1m_from_rollup_ms_p50": round(statistics.median(from_rollup) * 1000, 2),
        "step_1m_from_raw_ms_p50": round(statistics.median(from_raw) * 1000, 2),
        "step_1h_from_rollup_ms_p50": round(statistics.median(hourly) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="samples to ingest")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measure (median)")
    parser.add_argument("--query-seconds", type=int, default=86_400, help="seconds of samples")
    parser.add_argument("--query-metrics", type=int, default=50, help="metrics in the day")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slothlab-bench-") as tmp:
        folder = Path(tmp)
        report = {
            "benchmark": "metrics_history_ingest",
            "duckdb": duckdb.__version__,
            "ingest": ingest(folder, args.rows, args.repeat),
            "query": query(folder, args.query_seconds, args.query_metrics, args.repeat),
            "goal": "history >= 0.7 x raw DuckDB Arrow insert",
        }
    report["goal_met"] = report["ingest"]["arrow"]["ratio"] >= 0.7
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
