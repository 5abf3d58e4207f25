"""Cost of the host collector: CPU share of one core and RSS while sampling at 1 Hz.

Every mode runs in its own child process, all at the same time (same machine conditions),
and the parent measures each child with psutil: (user + system CPU time delta) / wall time,
from the moment the child says it is ready (imports and set-up excluded), and its RSS at the
end. Modes:

* ``idle``: an interpreter that only waits (the floor).
* ``raw``: a bare loop of the same psutil calls at 1 Hz (the baseline).
* ``collector``: :class:`slothlab.metrics.Collector` at 1 Hz.
* ``collector+history``: the same, each tick written to a DuckDB history (batched, flushed
  every 5 s).
* ``collector+history-per-tick``: the same, flushed every tick (the pattern not to use).
* ``recorder``: what a notebook runs: :class:`slothlab.metrics.recorder.Recorder` writing the
  collector's ticks and 20 custom series (recorded every 5 s) to a DuckDB history.

The history modes flush once before measuring: the first flush imports pyarrow and pandas
(through DuckDB's Arrow scan) once per process, ~0.5-1 s of CPU that is set-up, not a cost per
tick (``first_flush_s`` in their results).

Prints one JSON document. ``--seconds`` makes the run longer (default 20).

    .venv/bin/python bench/collector.py [--seconds 20] [--interval 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

MODES = (
    "idle",
    "raw",
    "collector",
    "collector+history",
    "collector+history-per-tick",
    "recorder",
)
GOAL_SHARE_OF_CORE = 0.005


# -- children -------------------------------------------------------------------------------


def _raw_tick(psutil: Any, me: Any, mounts: list[str]) -> int:
    """The psutil calls the collector makes each tick, with no bookkeeping."""
    psutil.cpu_times()
    psutil.cpu_times(percpu=True)
    psutil.virtual_memory()
    psutil.swap_memory()
    for mount in mounts:
        psutil.disk_usage(mount)
    psutil.disk_io_counters()
    psutil.net_io_counters(pernic=True)
    psutil.getloadavg()
    psutil.boot_time()
    me.cpu_times()
    me.memory_info()
    return len(psutil.pids())


def _child(mode: str, interval: float, workdir: Path) -> None:
    stop = threading.Event()
    ticks = [0]
    started = [time.process_time(), time.monotonic()]

    def mark_start(*_: Any) -> None:  # the parent starts measuring: count from here
        ticks[0] = 0
        started[:] = [time.process_time(), time.monotonic()]

    def mark_end(*_: Any) -> None:  # the parent stops measuring; tear-down is not counted
        info["ticks"] = ticks[0]
        cpu_s, wall_s = time.process_time() - started[0], time.monotonic() - started[1]
        info["cpu_share_of_core_in_child"] = round(cpu_s / wall_s, 6)  # ns-resolution clock
        stop.set()

    info: dict[str, Any] = {"mode": mode}
    signal.signal(signal.SIGUSR1, mark_start)
    signal.signal(signal.SIGTERM, mark_end)
    if mode == "idle":
        _ready()
        stop.wait()
    elif mode == "raw":
        import psutil

        me = psutil.Process()
        # like the collector, read the mount list once a minute (it is the dearest call)
        mounts, mounts_at = [p.mountpoint for p in psutil.disk_partitions()], time.monotonic()
        _raw_tick(psutil, me, mounts)
        _ready()
        next_at = time.monotonic() + interval
        while not stop.wait(max(0.0, next_at - time.monotonic())):
            if time.monotonic() - mounts_at >= 60:
                mounts, mounts_at = (
                    [p.mountpoint for p in psutil.disk_partitions()],
                    time.monotonic(),
                )
            _raw_tick(psutil, me, mounts)
            ticks[0] += 1
            next_at += interval
    else:
        extra = _run_collector(mode, interval, workdir, stop, ticks)
        info.update(extra)
    print(json.dumps(info), flush=True)


def _run_collector(
    mode: str, interval: float, workdir: Path, stop: threading.Event, ticks: list[int]
) -> dict[str, Any]:
    from slothlab.metrics.collector import Collector

    def count(samples: list[Any]) -> None:
        ticks[0] += 1

    history = None
    if mode != "collector":
        from slothlab.metrics.history import MetricsHistory

        history = MetricsHistory(workdir / f"{mode}.duckdb", flush_interval_s=5.0)
    collector = Collector(interval_s=interval, on_sample=count)
    recorder = None
    if mode == "recorder":
        from slothlab.metrics.custom import CustomMetrics
        from slothlab.metrics.recorder import Recorder

        assert history is not None
        recorder = Recorder(collector, _custom(CustomMetrics()), history, interval_s=5.0)
        recorder.start()
    elif history is not None:
        per_tick = mode.endswith("per-tick")
        collector.add_listener(_per_tick(history) if per_tick else history.write)
    collector.start()
    out: dict[str, Any] = {}
    if history is not None:  # set-up: the first flush imports pyarrow and pandas
        started = time.process_time()
        history.flush()
        out["first_flush_s"] = round(time.process_time() - started, 3)
    _ready()
    stop.wait()
    collector.stop()
    if recorder is not None:
        recorder.stop()
    if history is not None:
        history.flush()
        out["rows"] = int(history.sql("SELECT count(*) AS n FROM samples")["n"].iloc[0])
        history.close()
    return out


def _custom(custom: Any) -> Any:
    """20 custom series, as a task would set them: 10 gauges, 5 counters, a 5-tag timer."""
    for i in range(10):
        custom.gauge(f"bench_queue_depth_{i}", i)
    for i in range(5):
        custom.counter("bench_jobs_total", 1, {"kind": f"k{i}"})
    for i in range(5):
        custom.record_timer("bench_step", 1.5, {"step": f"s{i}"})
    return custom


def _per_tick(history: Any) -> Any:
    def write_and_flush(samples: list[Any]) -> None:
        history.write(samples)
        history.flush()

    return write_and_flush


def _ready() -> None:
    print("ready", flush=True)


# -- parent ---------------------------------------------------------------------------------


def _cpu(proc: Any) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def _measure(seconds: float, interval: float) -> dict[str, Any]:
    import psutil

    with tempfile.TemporaryDirectory() as tmp:
        children = {
            mode: subprocess.Popen(
                [sys.executable, __file__, "--child", mode, "--interval", str(interval),
                 "--workdir", tmp],
                stdout=subprocess.PIPE,
                text=True,
            )
            for mode in MODES
        }  # fmt: skip
        for mode, child in children.items():
            line = child.stdout.readline() if child.stdout else ""
            if line.strip() != "ready":
                raise SystemExit(f"child {mode} failed to start: {line!r}")
        procs = {mode: psutil.Process(c.pid) for mode, c in children.items()}
        for child in children.values():
            child.send_signal(signal.SIGUSR1)
        start_cpu = {mode: _cpu(p) for mode, p in procs.items()}
        t0 = time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - t0
        end_cpu = {mode: _cpu(p) for mode, p in procs.items()}
        rss = {mode: p.memory_info().rss for mode, p in procs.items()}
        results: dict[str, Any] = {}
        for mode, child in children.items():
            child.send_signal(signal.SIGTERM)
            out, _ = child.communicate(timeout=60)
            share = (end_cpu[mode] - start_cpu[mode]) / wall
            results[mode] = {
                "cpu_share_of_core": round(share, 6),
                "cpu_percent_of_core": round(share * 100, 4),
                "cpu_time_resolution_share": round(0.01 / wall, 6),  # psutil: 10 ms ticks
                "rss_mb": round(rss[mode] / 2**20, 1),
                **json.loads(out.strip().splitlines()[-1]),
            }
    return {"wall_s": round(wall, 2), "modes": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time per run")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.interval, args.workdir or Path(tempfile.gettempdir()))
        return
    measured = _measure(args.seconds, args.interval)
    modes = measured["modes"]
    raw = modes["raw"]["cpu_share_of_core"]
    collector = modes["collector"]["cpu_share_of_core"]
    history = modes["collector+history"]
    report = {
        "benchmark": "collector",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "interval_s": args.interval,
        **measured,
        "ratio_collector_to_raw": round(collector / raw, 2) if raw > 0 else None,
        "ratio_history_to_raw": (
            round(history["cpu_share_of_core"] / raw, 2)
            if raw > 0 and "skipped" not in history
            else None
        ),
        "goal_share_of_core": GOAL_SHARE_OF_CORE,
        "collector_meets_goal": collector < GOAL_SHARE_OF_CORE,
        "collector_with_history_meets_goal": history["cpu_share_of_core"] < GOAL_SHARE_OF_CORE,
        "recorder_meets_goal": modes["recorder"]["cpu_share_of_core"] < GOAL_SHARE_OF_CORE,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
