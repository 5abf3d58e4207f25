"""Benchmark: master agent selection over many agents, and the heartbeat intake over HTTP.

Prints one JSON document:

* ``select``: microseconds per ``AgentRegistry.select`` decision over N registered (simulated)
  agents for each strategy, against a naive per-decision scan of a Python list doing the same
  filtering and scoring (the ratio is naive / ours). Goal: under 1 ms per decision at 10,000.
* ``heartbeats``: heartbeats per second a real ``slothlab master`` process takes over HTTP
  (uvicorn, keep-alive ``requests`` sessions in several client threads), against ``GET /health``
  on the same server (the raw round trip), and how many agents at a 10 s interval that sustains.
  Goal: 1,000 heartbeats/s (10,000 agents). Client threads share the machine with the server.

Run: ``.venv/bin/python bench/select.py [--agents 10000] [--decisions 2000] [--seconds 5]
[--threads 8]``.
"""

from __future__ import annotations

import sys

# this file is called select.py: drop its folder from the path so `import select` is the stdlib's
sys.path[:] = [p for p in sys.path if p != __file__.rpartition("/")[0]]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import requests  # noqa: E402

from slothlab.master.balancer import Balancer  # noqa: E402
from slothlab.master.registry import AgentRegistry  # noqa: E402
from slothlab.protocol import AgentInfo, Heartbeat, SelectRequest  # noqa: E402

TAGS = [f"t{i}" for i in range(10)]
REGIONS = ["eu", "us", "ap", "sa"]
STRATEGIES = ["weighted_round_robin", "least_connections", "resource_aware", "affinity", "random"]


def fleet(n: int, seed: int = 7) -> tuple[AgentRegistry, list[dict[str, Any]]]:
    rng = random.Random(seed)
    reg = AgentRegistry(
        ":memory:", clock=lambda: 1000.0, balancer=Balancer(np.random.default_rng(1))
    )
    plain = []
    for i in range(n):
        tags = rng.sample(TAGS, 3)
        region = rng.choice(REGIONS)
        metrics = {"cpu_percent": rng.uniform(0, 100), "memory_percent": rng.uniform(0, 100)}
        name = f"agent-{i}"
        reg.register(AgentInfo(name=name, url=f"http://h{i}:8701", version="b", tags=tags,
                               region=region, capacity=8))  # fmt: skip
        running = rng.randint(0, 8)
        reg.heartbeat(name, Heartbeat(running=running, queued=0, metrics=metrics))
        plain.append({"name": name, "tags": set(tags), "region": region, "last_seen": 1000.0,
                      "running": running, "capacity": 8, **metrics})  # fmt: skip
    return reg, plain


def naive(agents: list[dict[str, Any]], req: SelectRequest, now: float) -> str | None:
    """The obvious implementation: scan the list every decision."""
    best, best_score = None, -1.0
    for a in agents:
        if now - a["last_seen"] >= 30 or not set(req.tags) <= a["tags"]:
            continue
        if req.region is not None and a["region"] != req.region:
            continue
        if a["cpu_percent"] > req.constraints.get("max_cpu_percent", 100):
            continue
        score = (1 - a["cpu_percent"] / 100 + 1 - a["memory_percent"] / 100
                 + 1 - a["running"] / a["capacity"]) / 3  # fmt: skip
        if score > best_score:
            best, best_score = a["name"], score
    return best


def time_per_call(fn: Any, count: int) -> float:
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def bench_select(n: int, decisions: int) -> dict[str, Any]:
    reg, plain = fleet(n)
    out: dict[str, Any] = {"agents": n, "decisions": decisions, "us_per_decision": {}}
    for strategy in STRATEGIES:
        req = SelectRequest(strategy=strategy)
        out["us_per_decision"][strategy] = round(
            time_per_call(lambda r=req: reg.select(r), decisions), 1
        )
    filtered = SelectRequest(strategy="resource_aware", tags=["t1"], region="eu",
                             constraints={"max_cpu_percent": 80})  # fmt: skip
    ours = time_per_call(lambda: reg.select(filtered), decisions)
    baseline = time_per_call(lambda: naive(plain, filtered, 1000.0), max(20, decisions // 20))
    out["filtered_resource_aware_us"] = round(ours, 1)
    out["naive_list_scan_us"] = round(baseline, 1)
    out["ratio_naive_over_ours"] = round(baseline / ours, 1)
    out["under_1ms"] = max([*out["us_per_decision"].values(), ours]) < 1000
    return out


def start_master(home: Path) -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ, SLOTHLAB_HOME=str(home), SLOTHLAB_TOKEN="bench-token")
    exe = str(Path(sys.executable).with_name("slothlab"))
    args = [exe, "master", "--port", "0", "--data-dir", str(home / "m")]
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().split()[3]
    return proc, url


def hammer(url: str, threads: int, seconds: float, make: Any) -> float:
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def run(i: int) -> None:
        s = requests.Session()
        s.headers["Authorization"] = "Bearer bench-token"
        while time.monotonic() < stop:
            method, path, body = make(i, counts[i])
            r = s.request(method, url + path, json=body, timeout=10)
            r.raise_for_status()
            counts[i] += 1

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.monotonic() - t0)


def bench_heartbeats(n: int, threads: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_master(Path(tmp))
        try:
            s = requests.Session()
            s.headers["Authorization"] = "Bearer bench-token"
            for i in range(n):
                body = {"name": f"a{i}", "url": f"http://h{i}:1", "version": "b"}
                s.post(url + "/v1/agents/register", timeout=10, json=body).raise_for_status()
            metrics = {"cpu_percent": 12.0, "memory_percent": 40.0, "disk_percent": 50.0,
                       "load1": 0.5, "memory_available_mb": 900.0}  # fmt: skip

            def beat(i: int, k: int) -> tuple[str, str, Any]:
                name = f"a{(i * 7919 + k) % n}"
                return (
                    "POST",
                    f"/v1/agents/{name}/heartbeat",
                    {"running": 1, "queued": 0, "metrics": metrics},
                )

            raw = hammer(url, threads, seconds, lambda i, k: ("GET", "/health", None))
            rate = hammer(url, threads, seconds, beat)
        finally:
            proc.terminate()
            proc.wait(30)
    return {
        "registered_agents": n,
        "client_threads": threads,
        "heartbeats_per_s": round(rate),
        "raw_health_get_per_s": round(raw),
        "ratio_heartbeat_over_raw": round(rate / raw, 2),
        "agents_sustained_at_10s_interval": round(rate * 10),
        "goal_10000_agents_met": rate * 10 >= 10_000,
        "cores": os.cpu_count(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=10_000)
    ap.add_argument("--decisions", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--heartbeat-agents", type=int, default=1000)
    args = ap.parse_args()
    result = {
        "select": bench_select(args.agents, args.decisions),
        "heartbeats": bench_heartbeats(args.heartbeat_agents, args.threads, args.seconds),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
