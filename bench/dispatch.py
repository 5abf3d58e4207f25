"""Benchmark: no-op task dispatch through the client, direct to an agent and through the master.

Prints one JSON document. A local cluster (``slothlab.cluster.up``, one master and one agent on
loopback) runs no-op shell (``true``) and Lua (``return 1``) tasks:

* ``latency_ms``: p50/p99 of submit -> finished result, one task at a time, direct to the agent
  (``AgentClient``) and through the master (``Controller``, naming the agent);
* ``throughput``: tasks per second for N tasks submitted one by one (4 client threads) and in
  batches of 100 (``submit_batch``), then waited for, direct and through the master;
* ``raw``: the same ``requests.Session`` POSTing a small JSON body to a bare Starlette app on the
  same server stack (uvicorn, httptools, uvloop) in its own process: the floor of one round trip.

Ratios are ours / raw (latency) and raw / ours (throughput). The issue's goal: direct latency
within 1.5x of the raw round trip. Ray, dask and ipyparallel are not installed here and are not
measured. Run: ``.venv/bin/python bench/dispatch.py [--tasks 300] [--rounds 100]``.
"""

from __future__ import annotations

import sys

# bench/select.py would shadow the stdlib `select` (imported by socket, subprocess): drop bench/
sys.path[:] = [p for p in sys.path if p != __file__.rpartition("/")[0]]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import requests  # noqa: E402

from slothlab import cluster  # noqa: E402
from slothlab.client import AgentClient, Controller  # noqa: E402

RAW_APP = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

async def task(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"id": "x", "state": "succeeded", "echo": len(body)}, status_code=202)

app = Starlette(routes=[Route("/v1/tasks", task, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), http="httptools", loop="uvloop",
            log_level="warning")
"""

NOOP = {"shell": "true", "lua": "return 1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _quantiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return {"p50": round(statistics.median(ordered) * 1000, 3), "p99": round(p99 * 1000, 3)}


def _time(fn: Callable[[], Any], rounds: int) -> list[float]:
    for _ in range(5):
        fn()
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def raw_round_trip(rounds: int) -> dict[str, float]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", RAW_APP, str(port)], start_new_session=True)
    try:
        session, url = requests.Session(), f"http://127.0.0.1:{port}/v1/tasks"
        deadline = time.monotonic() + 30
        while True:
            try:
                session.post(url, json={}, timeout=2)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        body = {"kind": "shell", "source": "true", "idempotency_key": "k"}
        return _quantiles(_time(lambda: session.post(url, json=body, timeout=5), rounds))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def latency(client: Any, kind: str, rounds: int, **where: Any) -> dict[str, float]:
    def one() -> None:
        task = client.submit(kind, NOOP[kind], **where)
        assert client.wait(task.id, timeout=30).state == "succeeded"

    return _quantiles(_time(one, rounds))


def throughput(client: Any, kind: str, n: int, batched: bool, **where: Any) -> float:
    start = time.perf_counter()
    if batched:
        tasks = []
        for i in range(0, n, 100):
            chunk = [{"kind": kind, "source": NOOP[kind], **where} for _ in range(min(100, n - i))]
            tasks += client.submit_batch(chunk)
    else:
        with ThreadPoolExecutor(4) as pool:
            tasks = list(pool.map(lambda _: client.submit(kind, NOOP[kind], **where), range(n)))
    with ThreadPoolExecutor(4) as pool:
        states = list(pool.map(lambda t: client.wait(t.id, timeout=120).state, tasks))
    assert states.count("succeeded") == n, {s: states.count(s) for s in set(states)}
    return round(n / (time.perf_counter() - start), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300, help="tasks per throughput run")
    parser.add_argument("--rounds", type=int, default=100, help="tasks per latency run")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="slothlab-bench-"))
    env = {k: v for k, v in os.environ.items() if k != "SLOTHLAB_TOKEN"}
    env["SLOTHLAB_HOME"] = str(home)
    state = cluster.up(1, home=home, environ=env, timeout_s=60)
    try:
        token = (home / "token").read_text().strip()
        agent = AgentClient(state.agents[0].url, token, name="agent-1")
        master = Controller(state.master_url, token)
        raw = raw_round_trip(args.rounds)
        doc: dict[str, Any] = {"raw_post_ms": raw, "latency_ms": {}, "throughput": {}}
        for kind in ("shell", "lua"):
            direct = latency(agent, kind, args.rounds)
            through = latency(master, kind, args.rounds, agent="agent-1")
            doc["latency_ms"][kind] = {
                "direct": direct,
                "via_master": through,
                "direct_p50_over_raw": round(direct["p50"] / raw["p50"], 2),
                "via_master_p50_over_raw": round(through["p50"] / raw["p50"], 2),
            }
            doc["throughput"][kind] = {
                "direct_one_by_one": throughput(agent, kind, args.tasks, False),
                "direct_batched": throughput(agent, kind, args.tasks, True),
                "via_master_one_by_one": throughput(master, kind, args.tasks, False),
                "via_master_batched": throughput(master, kind, args.tasks, True),
            }
        doc["tasks"], doc["rounds"] = args.tasks, args.rounds
        print(json.dumps(doc, indent=2))
    finally:
        cluster.down(home, grace_s=5)


if __name__ == "__main__":
    main()
