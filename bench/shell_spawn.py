"""Start-to-end time of a no-op shell task (``ShellRun("true").wait()``): spare shell vs fork.

Prints one JSON document. The baseline, measured in the same run and interleaved with the
spare runs, is the forking path (``ShellSpares(0)``: ``subprocess.Popen`` of ``/bin/sh -c``).
``spare_ready`` waits (untimed) for a ready spare before each task: the path itself.
``spare_back_to_back`` runs tasks without a pause, so the refill thread races them: what a
burst sees, and the share of tasks that found a spare.

    .venv/bin/python bench/shell_spawn.py [--n 300] [--spares 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any


def summary(times_s: list[float]) -> dict[str, float]:
    ms = sorted(t * 1e3 for t in times_s)
    return {
        "p50_ms": statistics.median(ms),
        "p99_ms": ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))],
        "mean_ms": statistics.fmean(ms),
    }


def one(spares: Any) -> tuple[float, bool]:
    from slothlab.agent.shell import ShellRun

    start = time.perf_counter()
    run = ShellRun("true", lambda stream, chunk: None, spares=spares)
    run.wait()
    return time.perf_counter() - start, run.from_spare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="tasks per path")
    parser.add_argument("--spares", type=int, default=2, help="spares kept ready")
    options = parser.parse_args()

    from slothlab.agent.shell import ShellSpares

    fork_pool, spare_pool = ShellSpares(0), ShellSpares(options.spares)
    fork_s: list[float] = []
    ready_s: list[float] = []
    missed = 0
    try:
        for _ in range(10):  # warm up both paths
            one(fork_pool)
            spare_pool.fill(wait_s=10)
            one(spare_pool)
        for _ in range(options.n):
            fork_s.append(one(fork_pool)[0])
            spare_pool.fill(wait_s=10)
            took, used = one(spare_pool)
            ready_s.append(took)
            missed += not used
        spare_pool.fill(wait_s=10)
        burst = [one(spare_pool) for _ in range(options.n)]
    finally:
        spare_pool.close()
    fork, ready = summary(fork_s), summary(ready_s)
    back_to_back = summary([t for t, _ in burst])
    report = {
        "benchmark": "shell_spawn",
        "cpus": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
        "n": options.n,
        "spares": options.spares,
        "fork_baseline": fork,
        "spare_ready": {**ready, "forked_anyway": missed},
        "spare_back_to_back": {
            **back_to_back,
            "share_from_spare": sum(used for _, used in burst) / len(burst),
        },
        "p50_saved_ms": fork["p50_ms"] - ready["p50_ms"],
        "ratio_p50_spare_vs_fork": ready["p50_ms"] / fork["p50_ms"],
        "ratio_p50_back_to_back_vs_fork": back_to_back["p50_ms"] / fork["p50_ms"],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
