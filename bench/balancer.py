"""Benchmark: master agent selection over many agents, and the master's heartbeat intake.

Prints one JSON document:

* ``select``: microseconds per ``AgentRegistry.select`` decision over N registered (simulated)
  agents for each strategy, against a naive per-decision scan of a Python list doing the same
  filtering and scoring (the ratio is naive / ours). Goal: under 1 ms per decision at 10,000.
* ``intake``: heartbeats a real master process takes over HTTP. The master runs as
  ``slothlab master`` does (uvicorn, httptools, uvloop, the full app) in its own process, with
  two baselines on the same server, measured in the same run with the same request body: a
  no-op FastAPI route through the master's whole app (``noop_post_fastapi``) and a bare ASGI
  answer in front of it (``noop_post_raw_asgi``, the floor of the server stack). The load comes
  from other processes:

  - ``saturated``: closed loop, ``wrk`` (C, one thread, keep-alive connections, a Lua script
    cycling agent names) when installed, else an asyncio raw-socket client in two processes
    (``--client python``): requests/s, p50/p99, the master's CPU (user + system of all its
    threads, the background flush to SQLite and DuckDB included) and the client's;
  - ``at_goal_rate``: the goal's load, 1,000 heartbeats/s (10,000 agents at a 10 s interval)
    paced open loop over 50 connections, latency counted from when each request was due.

  ``server_cpu_us_per_heartbeat`` (saturated) is the capacity figure that does not depend on
  the client: the master's Python work runs on one core (one event loop, one GIL), so it takes
  at most ``1e6 / us`` heartbeats a second (``projected_agents_at_10s_interval``). On this
  2-core machine the client shares the cores with the master (and with other work: see the
  load averages), so the measured rate is below the projection. Goal: 10,000 agents at 10 s.

Run: ``.venv/bin/python bench/balancer.py [--agents 10000] [--decisions 2000] [--seconds 5]
[--connections 16] [--intake-agents 2000] [--client auto|wrk|python] [--goal-rate 1000]
[--paced-connections 50] [--extra-metrics 0] [--skip-select] [--no-fast-path]``.
``wrk`` is the Debian package ``wrk``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from slothlab.master.balancer import Balancer
from slothlab.master.registry import AgentRegistry
from slothlab.protocol import AgentInfo, Heartbeat, SelectRequest

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


TOKEN = "bench-token"
# what a real agent sends (slothlab.agent.app.host_metrics + effective_capacity)
AGENT_METRICS = {
    "cpu_percent": 12.5, "memory_percent": 40.2, "disk_percent": 51.0, "load1": 0.52,
    "load5": 0.48, "load15": 0.4, "memory_available_mb": 901.5, "disk_free_gb": 37.2,
    "effective_capacity": 4.0,
}  # fmt: skip
BEAT = ""  # the heartbeat body, set by main()


def heartbeat_body(extra_metrics: int = 0) -> str:
    """A real agent's heartbeat, with ``extra_metrics`` custom numbers (Lua tasks' metrics)."""
    metrics = {
        **AGENT_METRICS,
        **{f"custom_metric_{i}_total": float(i) for i in range(extra_metrics)},
    }
    return json.dumps({"running": 1, "queued": 0, "metrics": metrics}, separators=(",", ":"))


def serve_master(data_dir: str, fast_path: bool = True) -> None:
    """The master as ``slothlab master`` runs it, plus two baselines on the same server:

    ``POST /bench/noop``, a no-op FastAPI route through the master's whole app (middleware,
    body guard, routing), and ``POST /bench/raw``, answered by a bare ASGI function in front of
    it (the floor of uvicorn + httptools + uvloop on this machine).
    """
    from slothlab.agent.server import bind, serve
    from slothlab.config import load_settings
    from slothlab.master import Master, MasterConfig, create_app

    config = MasterConfig.from_settings(load_settings(), data_dir=data_dir, token=TOKEN)
    master = Master(config)
    app = create_app(master)
    if not fast_path:
        app.heartbeats = None  # every heartbeat through the FastAPI route

    @app.post("/bench/noop")
    async def noop() -> dict[str, bool]:
        return {"ok": True}

    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"11")],
    }
    body = {"type": "http.response.body", "body": b'{"ok":true}'}  # fmt: skip

    async def raw_in_front(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/bench/raw":
            more = True
            while more:
                more = (await receive()).get("more_body", False)
            await send(start)
            await send(body)
            return
        await app(scope, receive, send)

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]

    def ready() -> None:  # called on the server's event loop: say which loop and parser serve
        loop = type(asyncio.get_running_loop())
        http = "httptools" if importlib.util.find_spec("httptools") else "h11"
        print(f"http://127.0.0.1:{port} {loop.__module__}.{loop.__name__} {http}", flush=True)

    master.start()
    try:
        serve(raw_in_front, sock, on_ready=ready)
    finally:
        master.close()


def start_master(home: Path, fast_path: bool) -> tuple[subprocess.Popen[str], str, str]:
    env = dict(os.environ, SLOTHLAB_HOME=str(home), SLOTHLAB_TOKEN=TOKEN)
    args = [sys.executable, __file__, "--serve", str(home / "m"), *([] if fast_path else ["off"])]
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    assert proc.stdout is not None
    url, _, stack = proc.stdout.readline().strip().partition(" ")
    if not url.startswith("http://"):
        proc.kill()
        raise SystemExit(f"the master did not start (exit {proc.wait()})")
    return proc, url, stack


# -- the asyncio client: raw HTTP/1.1 over keep-alive sockets ------------------------------------


def _request(host: str, path: str, body: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


def _paths(route: str, agents: int) -> list[str]:
    if route == "heartbeat":
        return [f"/v1/agents/a{i}/heartbeat" for i in range(agents)]
    return [f"/bench/{route}"]


async def _round_trip(reader: Any, writer: Any, request: bytes) -> bool:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    size = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    await reader.readexactly(size)
    return bool(head.startswith(b"HTTP/1.1 2"))


async def _connection(
    stream: tuple[Any, Any], reqs: list[bytes], stop: float, interval: float | None, first: float
) -> tuple[list[float], int]:
    """Closed loop (``interval`` None: the next request when the answer is in) or paced: one
    request every ``interval`` s from ``first``, latency counted from when it was due (so a
    slow server is not hidden by the client waiting for it)."""
    reader, writer = stream
    latencies: list[float] = []
    bad = 0
    i = random.randrange(len(reqs))
    due = first
    while (now := time.monotonic()) < stop:
        if interval is not None:
            if due > now:
                await asyncio.sleep(due - now)
            if due >= stop:
                break
        else:
            due = now
        bad += not await _round_trip(reader, writer, reqs[i % len(reqs)])
        latencies.append(time.monotonic() - due)
        i += 7919
        if interval is not None:
            due += interval
    writer.close()
    return latencies, bad


def _run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _python_worker(
    url: str, paths: list[str], body: str, conns: int, seconds: float, rate: float | None, out: Any
) -> None:
    host, _, port = url.removeprefix("http://").partition(":")
    reqs = [_request(host, p, body) for p in paths]

    async def main() -> list[tuple[list[float], int]]:
        streams = []  # every connection is open before the clock starts (agents stay connected)
        for _ in range(conns):
            streams.append(await asyncio.open_connection(host, int(port)))
        t0 = time.monotonic() + 0.05
        interval = conns / rate if rate else None
        return await asyncio.gather(
            *(
                _connection(s, reqs, t0 + seconds, interval, t0 + (interval or 0) * k / conns)
                for k, s in enumerate(streams)
            )
        )

    results = _run(main())
    out.send(([x for lat, _ in results for x in lat], sum(bad for _, bad in results)))


def python_load(
    url: str, route: str, agents: int, conns: int, seconds: float, rate: float | None = None
) -> dict[str, Any]:
    """Two client processes, ``conns`` connections in all; ``rate`` paces them (open loop)."""
    procs, pipes = [], []
    for k in range(2):
        mine, theirs = multiprocessing.Pipe(duplex=False)
        share = conns // 2 + (k < conns % 2)
        part = rate * share / conns if rate else None
        args = (url, _paths(route, agents), BEAT, share, seconds, part, theirs)
        p = multiprocessing.Process(target=_python_worker, args=args)
        p.start()
        procs.append(p)
        pipes.append(mine)
    latencies: list[float] = []
    bad = 0
    for pipe, p in zip(pipes, procs, strict=True):
        lat, b = pipe.recv()
        latencies.extend(lat)
        bad += b
        p.join()
    q = np.quantile(latencies, [0.5, 0.99]) * 1000 if latencies else [float("nan")] * 2
    return {"requests": len(latencies), "seconds": seconds, "p50_ms": float(q[0]),
            "p99_ms": float(q[1]), "non_2xx": bad, "socket_errors": 0}  # fmt: skip


def register(url: str, n: int, conns: int = 8) -> float:
    """Register agents ``a0`` .. ``a{n-1}`` over ``conns`` connections; registrations/s."""
    host, _, port = url.removeprefix("http://").partition(":")
    reqs = [
        _request(host, "/v1/agents/register", json.dumps(
            {"name": f"a{i}", "url": f"http://h{i}:8701", "version": "b", "tags": ["bench"],
             "region": "eu", "metrics": AGENT_METRICS}))
        for i in range(n)
    ]  # fmt: skip

    async def one(part: list[bytes]) -> int:
        reader, writer = await asyncio.open_connection(host, int(port))
        ok = [await _round_trip(reader, writer, r) for r in part]
        writer.close()
        return sum(ok)

    async def main() -> list[int]:
        return await asyncio.gather(*(one(reqs[k::conns]) for k in range(conns)))

    t0 = time.monotonic()
    done = sum(_run(main()))
    if done != n:
        raise SystemExit(f"only {done} of {n} registrations succeeded")
    return n / (time.monotonic() - t0)


# -- wrk: a C client, one thread, keep-alive connections, closed loop -----------------------------

WRK_SCRIPT = """
local n = %(agents)d
local beat = %(beat)s
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
local i = 0
id = 0
local threads = 0
function setup(thread) thread:set("id", threads); threads = threads + 1 end
function request()
  i = i + 1
  if "%(route)s" ~= "heartbeat" then return wrk.format("POST", "/bench/%(route)s", nil, beat) end
  local name = "a" .. ((i * 7919 + id * 104729) %% n)
  return wrk.format("POST", "/v1/agents/" .. name .. "/heartbeat", nil, beat)
end
function done(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d\\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99), summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


def wrk_load(url: str, route: str, agents: int, conns: int, seconds: float) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(WRK_SCRIPT % {"agents": agents, "beat": json.dumps(BEAT), "token": TOKEN,
                               "route": route})  # fmt: skip
    try:
        args = ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "-s", fh.name, url]
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(fh.name)
    found = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", out)
    if found is None:
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    count, duration_us, p50, p99, bad, socket_errors = map(int, found.groups())
    return {"requests": count, "seconds": duration_us / 1e6, "p50_ms": p50 / 1000,
            "p99_ms": p99 / 1000, "non_2xx": bad, "socket_errors": socket_errors}  # fmt: skip


# -- one measured phase ---------------------------------------------------------------------------


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(load: Any, master: psutil.Process, route: str, settle_s: float) -> dict[str, Any]:
    """One load phase; the master's CPU counts until ``settle_s`` after it (its last flush) and
    is divided by the load's duration for ``server_cpu_percent`` (the flush belongs to it)."""
    before = master.cpu_times()
    client_before = _children_cpu()
    result = load(route)
    client_cpu = _children_cpu() - client_before
    time.sleep(settle_s)  # the flush of the last second's heartbeats belongs to this phase
    after = master.cpu_times()
    server_cpu = (after.user - before.user) + (after.system - before.system)
    count = max(1, result["requests"])
    return {
        "per_s": round(result["requests"] / result["seconds"]),
        "p50_ms": round(result["p50_ms"], 2),
        "p99_ms": round(result["p99_ms"], 2),
        "non_2xx": result["non_2xx"],
        "socket_errors": result["socket_errors"],
        "server_cpu_percent": round(100 * server_cpu / result["seconds"], 1),
        "server_cpu_us_per_request": round(1e6 * server_cpu / count, 1),
        "server_system_us_per_request": round(1e6 * (after.system - before.system) / count, 1),
        "client_cpu_percent": round(100 * client_cpu / result["seconds"], 1),
    }


def bench_intake(
    agents: int, conns: int, seconds: float, client: str, goal_rate: float, paced_conns: int,
    fast_path: bool = True,
) -> dict[str, Any]:  # fmt: skip
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    closed = wrk_load if client == "wrk" else python_load
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        proc, url, stack = start_master(Path(tmp), fast_path)
        try:
            master = psutil.Process(proc.pid)
            registration = register(url, agents)
            closed(url, "heartbeat", agents, conns, 1.0)  # warm up
            settle = 1.3  # the master flushes every second
            sat = {
                route: measure(lambda r: closed(url, r, agents, conns, seconds), master, route,
                               settle)
                for route in ("raw", "noop", "heartbeat")
            }  # fmt: skip
            paced = measure(
                lambda r: python_load(url, r, agents, paced_conns, seconds, goal_rate),
                master, "heartbeat", settle,
            )  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(30)
    beat, raw, noop = sat["heartbeat"], sat["raw"], sat["noop"]
    us = beat["server_cpu_us_per_request"]
    projected = 1e6 / us
    kept_up = paced["per_s"] >= 0.97 * goal_rate and paced["non_2xx"] == 0
    return {
        "client": "wrk -t1 (one process)" if client == "wrk" else "python asyncio (2 processes)",
        "server": f"slothlab master app on uvicorn, one process ({stack})",
        "heartbeat_fast_path": fast_path,
        "registered_agents": agents,
        "registrations_per_s": round(registration),
        "heartbeat_body_bytes": len(BEAT),
        "metrics_per_heartbeat": len(json.loads(BEAT)["metrics"]),
        "saturated": {
            "connections": conns,
            "seconds_per_route": seconds,
            "heartbeat": beat,
            "noop_post_fastapi": noop,
            "noop_post_raw_asgi": raw,
            "ratio_heartbeat_over_raw_rate": round(beat["per_s"] / raw["per_s"], 2),
            "ratio_heartbeat_over_raw_server_cpu": round(us / raw["server_cpu_us_per_request"], 2),
            "ratio_heartbeat_over_fastapi_noop_server_cpu": round(
                us / noop["server_cpu_us_per_request"], 2
            ),
        },
        "at_goal_rate": {
            "target_per_s": goal_rate,
            "client": f"python asyncio, paced (open loop), 2 processes, {paced_conns} "
            "connections; latency counted from when each request was due",
            **paced,
        },
        "server_cpu_us_per_heartbeat": us,
        "projected_heartbeats_per_s_one_core": round(projected),
        "projected_agents_at_10s_interval": round(projected * 10),
        "measured_agents_at_10s_interval": beat["per_s"] * 10,
        "goal_10000_agents_met_measured": kept_up and beat["per_s"] >= 1000,
        "goal_10000_agents_met_projected": projected >= 1000,
        "cores": os.cpu_count(),
        "load_average_1m_before": round(load_before, 2),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    if len(sys.argv) in (3, 4) and sys.argv[1] == "--serve":
        serve_master(sys.argv[2], fast_path=sys.argv[3:] != ["off"])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=10_000, help="agents in the selection test")
    ap.add_argument("--decisions", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=5.0, help="load per intake phase")
    ap.add_argument("--connections", type=int, default=16, help="closed-loop connections")
    ap.add_argument("--intake-agents", type=int, default=2000)
    ap.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    ap.add_argument("--goal-rate", type=float, default=1000.0, help="paced heartbeats/s")
    ap.add_argument("--paced-connections", type=int, default=50)
    ap.add_argument("--extra-metrics", type=int, default=0, help="custom numbers per heartbeat")
    ap.add_argument("--skip-select", action="store_true")
    ap.add_argument(
        "--no-fast-path", action="store_true", help="heartbeats through the FastAPI route"
    )
    args = ap.parse_args()
    global BEAT
    BEAT = heartbeat_body(args.extra_metrics)
    result: dict[str, Any] = {}
    if not args.skip_select:
        result["select"] = bench_select(args.agents, args.decisions)
    result["intake"] = bench_intake(
        args.intake_agents, args.connections, args.seconds, args.client, args.goal_rate,
        args.paced_connections, not args.no_fast_path,
    )  # fmt: skip
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
