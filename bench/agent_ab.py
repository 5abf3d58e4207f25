"""Benchmark: the same no-op tasks on two revisions of the agent, in turn (an A/B of a change).

Starts two real agents (``slothlab agent start``, no master) on loopback: ``base`` runs the code
of a git revision (checked out into a temporary worktree) and ``new`` the working tree. A
``requests`` session per agent submits no-op tasks (``POST /v1/tasks?wait=``, as
``AgentClient.run`` does), alternating between the two agents so both see the same moments of
the machine. Before each timed request it waits ``--settle-ms`` (so one agent's after-work, such
as refilling a spare shell, does not land on the other's request) and makes one untimed request
to the same agent (the first round trip after a pause pays for waking idle CPUs). With
``--batch`` it times batches of 500 (``POST /v1/tasks:batch?wait=``, 2 client threads) instead.
Prints one JSON document: each side's p50/p90 latency (or median tasks/s) and ``new_over_base``.
The agents get a home, settings and token of their own (no ``SLOTHLAB_*`` variable of the caller
reaches them, so they register with no master).

Run: ``.venv/bin/python bench/agent_ab.py [--base HEAD~1] [--kind lua|shell] [--tasks 1000]
[--settle-ms 20] [--batch] [--rounds 6]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
NOOP = {"lua": "return 1", "shell": "true"}
START = "import sys; from slothlab.cli import main; sys.exit(main(prog_name='slothlab'))"


@contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """``revision`` checked out in a temporary git worktree."""
    parent = Path(tempfile.mkdtemp(prefix="slothlab-ab-"))
    where = parent / "tree"
    try:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(where), revision],
            check=True,
        )
        try:
            yield where
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)], check=False
            )
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@contextmanager
def agent(code: Path) -> Iterator[tuple[str, requests.Session]]:
    """An agent running the package under ``code``; its URL and a session with its token."""
    home = tempfile.mkdtemp(prefix="slothlab-ab-home-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLOTHLAB_")}
    env.update(SLOTHLAB_HOME=home, PYTHONPATH=str(code))
    command = [sys.executable, "-c", START, "agent", "start", "--name", "ab", "--port", "0"]
    proc = subprocess.Popen(
        [*command, "--token", "ab-token"], env=env, cwd=home, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        found = re.search(r"http://\S+", proc.stdout.readline())
        if found is None:
            raise SystemExit(f"the agent from {code} did not start")
        session = requests.Session()
        session.trust_env = False
        session.headers["Authorization"] = "Bearer ab-token"
        yield found.group(0), session
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(home, ignore_errors=True)


def one_task(kind: str) -> Callable[[str, requests.Session], None]:
    def run(url: str, session: requests.Session) -> None:
        body = {"kind": kind, "source": NOOP[kind], "idempotency_key": uuid.uuid4().hex}
        answer = session.post(f"{url}/v1/tasks?wait=20", json=body, timeout=30).json()
        assert answer["state"] == "succeeded", answer

    return run


def batches(kind: str, tasks: int) -> Callable[[str, requests.Session], float]:
    def run(url: str, session: requests.Session) -> float:
        def chunk(_: int) -> None:
            body = {"tasks": [{"kind": kind, "source": NOOP[kind]}] * 500}
            answer = session.post(f"{url}/v1/tasks:batch?wait=60", json=body, timeout=120)
            assert all(t["state"] == "succeeded" for t in answer.json()["tasks"])

        start = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(chunk, range(max(tasks // 500, 1))))
        return max(tasks // 500, 1) * 500 / (time.perf_counter() - start)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="git revision of the base agent")
    parser.add_argument("--kind", choices=sorted(NOOP), default="lua")
    parser.add_argument("--tasks", type=int, default=1000, help="tasks per side (latency)")
    parser.add_argument("--settle-ms", type=float, default=20.0, help="pause before each request")
    parser.add_argument("--batch", action="store_true", help="time batches instead")
    parser.add_argument("--rounds", type=int, default=6, help="batched runs per side")
    args = parser.parse_args()
    if args.tasks < 1 or args.rounds < 1 or args.settle_ms < 0:
        parser.error("--tasks and --rounds must be at least 1, --settle-ms at least 0")
    with worktree(args.base) as base_tree, agent(base_tree) as base, agent(ROOT) as new:
        sides = {"base": base, "new": new}
        samples: dict[str, list[float]] = {"base": [], "new": []}
        if args.batch:
            rate = batches(args.kind, 2000)
            for i in range(args.rounds):
                for name in sorted(sides, reverse=bool(i % 2)):
                    samples[name].append(rate(*sides[name]))
            doc: dict[str, dict[str, float]] = {
                n: {"tasks_per_s_median": round(statistics.median(v))} for n, v in samples.items()
            }
            ratio = statistics.median(samples["new"]) / statistics.median(samples["base"])
        else:
            task = one_task(args.kind)
            for i in range(args.tasks + 200):
                for name in sorted(sides, reverse=bool(i % 2)):
                    time.sleep(args.settle_ms / 1000)
                    task(*sides[name])  # untimed: wakes the CPUs after the pause
                    start = time.perf_counter()
                    task(*sides[name])
                    if i >= 200:  # warm-up rounds
                        samples[name].append(time.perf_counter() - start)
            doc = {}
            for name, values in samples.items():
                values.sort()
                doc[name] = {
                    "p50_ms": round(values[len(values) // 2] * 1000, 3),
                    "p90_ms": round(values[int(len(values) * 0.9)] * 1000, 3),
                }
            ratio = doc["new"]["p50_ms"] / doc["base"]["p50_ms"]
    settings = {
        "base": args.base,
        "kind": args.kind,
        "batch": args.batch,
        "settle_ms": args.settle_ms,
        "cpus": os.cpu_count(),
    }
    print(json.dumps({"settings": settings, **doc, "new_over_base": round(ratio, 3)}, indent=2))


if __name__ == "__main__":
    main()
