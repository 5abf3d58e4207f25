"""Per-task overhead of slothlab's Lua: a fresh sandboxed runtime in-process, and the worker pool.

Prints one JSON document. Baselines measured in the same run: raw lupa (``LuaRuntime()`` +
``execute``) for the in-process runtime; a raw JSON-lines round trip to a Python subprocess
(no Lua) for the pool. Goals: under 0.2 ms in-process, under 2 ms on the pool.

    .venv/bin/python bench/lua.py [--n 2000] [--pool-n 500] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

ECHO = "import sys\nfor line in sys.stdin:\n    sys.stdout.write(line)\n    sys.stdout.flush()\n"


def per_call_ms(fn: Callable[[], Any], n: int, repeats: int) -> float:
    """Median over ``repeats`` runs of the mean time of one call, in ms."""
    fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - start) / n * 1e3)
    return statistics.median(runs)


def in_process(n: int, repeats: int) -> dict[str, Any]:
    from lupa.lua54 import LuaRuntime

    from slothlab.lua import Runtime
    from slothlab.lua.modules import registry

    def raw() -> None:
        LuaRuntime().execute("return 1+1")

    def bare() -> None:
        Runtime(modules=[]).execute("return 1+1")

    def lazy() -> None:
        Runtime().execute("return 1+1")

    def eager() -> None:
        Runtime(lazy_modules=False).execute("return 1+1")

    runtime = Runtime()
    chunk = runtime.load("return 1+1")
    results = {
        "raw_lupa_ms": per_call_ms(raw, n, repeats),
        "runtime_no_modules_ms": per_call_ms(bare, n, repeats),
        "runtime_lazy_modules_ms": per_call_ms(lazy, n, repeats),
        "runtime_eager_modules_ms": per_call_ms(eager, n // 4 or 1, repeats),
        "call_on_existing_runtime_ms": per_call_ms(lambda: runtime.call(chunk), n, repeats),
        "modules_registered": registry.names(),
    }
    results["ratio_no_modules_vs_raw"] = results["runtime_no_modules_ms"] / results["raw_lupa_ms"]
    results["ratio_lazy_vs_raw"] = results["runtime_lazy_modules_ms"] / results["raw_lupa_ms"]
    return results


def raw_subprocess_round_trip(n: int, repeats: int) -> float:
    proc = subprocess.Popen(
        [sys.executable, "-c", ECHO], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout
    message = json.dumps({"code": "return 1+1", "args": []}) + "\n"

    def once() -> None:
        stdin.write(message)
        stdin.flush()
        json.loads(stdout.readline())

    try:
        return per_call_ms(once, n, repeats)
    finally:
        stdin.close()
        proc.wait()


def pool(n: int, repeats: int, in_process_ms: float) -> dict[str, Any]:
    from slothlab.lua import WorkerPool

    with WorkerPool(size=2) as workers:
        workers.run("return 1")  # wait for a worker
        task_ms = per_call_ms(lambda: workers.run("return 1+1"), n, repeats)
        start = time.perf_counter()
        futures = [workers.submit("return 1+1") for _ in range(n)]
        for future in futures:
            future.result()
        throughput = n / (time.perf_counter() - start)
    raw_ms = raw_subprocess_round_trip(n, repeats)
    return {
        "pool_task_ms": task_ms,
        "raw_subprocess_round_trip_ms": raw_ms,
        "pool_overhead_over_raw_round_trip_ms": task_ms - raw_ms,
        "pool_overhead_over_in_process_runtime_ms": task_ms - in_process_ms,
        "ratio_pool_vs_raw_round_trip": task_ms / raw_ms,
        "pool_submit_throughput_tasks_per_s": throughput,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="calls per in-process run")
    parser.add_argument("--pool-n", type=int, default=500, help="tasks per pool run")
    parser.add_argument("--repeats", type=int, default=5, help="runs; the median is reported")
    options = parser.parse_args()
    local = in_process(options.n, options.repeats)
    remote = pool(options.pool_n, options.repeats, local["runtime_lazy_modules_ms"])
    report = {
        "benchmark": "lua",
        "cpus": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
        "in_process": local,
        "pool": remote,
        "goals": {
            "in_process_under_0_2_ms": local["runtime_lazy_modules_ms"] < 0.2,
            "pool_under_2_ms": remote["pool_task_ms"] < 2.0,
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
