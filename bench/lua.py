"""Per-task overhead of slothlab's Lua: a fresh sandboxed runtime in-process, and the worker pool.

Prints one JSON document. Baselines measured in the same run: raw lupa (``LuaRuntime()`` +
``execute``) for the in-process runtime, and a new runtime for ``fresh_env`` (what a pool worker
does per task); a raw JSON-lines round trip to a Python subprocess (no Lua) for the pool, its
time and the echo process's CPU per message against the worker's CPU per task. Goals: under
0.2 ms in-process, under 2 ms on the pool.

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

    def fresh_env() -> None:  # what a pool worker does per task: a new env of a kept state
        runtime.fresh_env()
        runtime.execute("return 1+1")

    runtime = Runtime()
    chunk = runtime.load("return 1+1")
    results = {
        "fresh_env_on_kept_runtime_ms": per_call_ms(fresh_env, n, repeats),
        "raw_lupa_ms": per_call_ms(raw, n, repeats),
        "runtime_no_modules_ms": per_call_ms(bare, n, repeats),
        "runtime_lazy_modules_ms": per_call_ms(lazy, n, repeats),
        "runtime_eager_modules_ms": per_call_ms(eager, n // 4 or 1, repeats),
        "call_on_existing_runtime_ms": per_call_ms(lambda: runtime.call(chunk), n, repeats),
        "modules_registered": registry.names(),
    }
    results["ratio_no_modules_vs_raw"] = results["runtime_no_modules_ms"] / results["raw_lupa_ms"]
    results["ratio_lazy_vs_raw"] = results["runtime_lazy_modules_ms"] / results["raw_lupa_ms"]
    results["ratio_fresh_env_vs_new_runtime"] = (
        results["fresh_env_on_kept_runtime_ms"] / results["runtime_lazy_modules_ms"]
    )
    return results


def child_cpu_ms(pid: int) -> float:
    """User + system CPU a process used so far, in ms."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return (times.user + times.system) * 1e3


def raw_subprocess_round_trip(n: int, repeats: int) -> tuple[float, float]:
    """Mean ms of one round trip, and the echo process's CPU ms per message."""
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
        once()
        cpu = child_cpu_ms(proc.pid)
        elapsed = per_call_ms(once, n, repeats)
        return elapsed, (child_cpu_ms(proc.pid) - cpu) / (n * repeats)
    finally:
        stdin.close()
        proc.wait()


def pool(n: int, repeats: int, in_process_ms: float) -> dict[str, Any]:
    from slothlab.lua import WorkerPool

    with WorkerPool(size=1) as serial:  # one worker, so its CPU is all the tasks'
        serial.run("return 1")
        worker = serial.workers[0]
        assert worker is not None
        cpu = child_cpu_ms(worker.proc.pid)
        task_ms = per_call_ms(lambda: serial.run("return 1+1"), n, repeats)
        worker_cpu_ms = (child_cpu_ms(worker.proc.pid) - cpu) / (n * repeats)
    with WorkerPool(size=2) as workers:
        workers.run("return 1")  # wait for a worker
        start = time.perf_counter()
        futures = [workers.submit("return 1+1") for _ in range(n)]
        for future in futures:
            future.result()
        throughput = n / (time.perf_counter() - start)
    raw_ms, raw_cpu_ms = raw_subprocess_round_trip(n, repeats)
    return {
        "pool_task_ms": task_ms,
        "worker_cpu_per_task_ms": worker_cpu_ms,
        "raw_subprocess_cpu_per_message_ms": raw_cpu_ms,
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
