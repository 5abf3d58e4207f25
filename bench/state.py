"""Throughput of slothlab.state against the same operations written directly on sqlite3.

Both sides use one file each in a temporary folder, WAL, synchronous=NORMAL, autocommit with
BEGIN IMMEDIATE where a transaction is needed, and a kv/locks/fences schema of the same shape.
The raw side is the minimal correct SQL for each operation (no typing, no TTL checks).

Run: ``.venv/bin/python bench/state.py`` (quick) or ``--n 20000 --rounds 5`` (longer).
Prints one JSON document: ops/s of each side per operation, and their ratio (goal: >= 0.5).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from slothlab.state import Store

RAW_SCHEMA = """
CREATE TABLE kv (key TEXT NOT NULL PRIMARY KEY, v, exp REAL);
CREATE TABLE locks (name TEXT NOT NULL PRIMARY KEY, owner TEXT NOT NULL, fence INTEGER NOT NULL,
                    exp REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE fences (name TEXT NOT NULL PRIMARY KEY, fence INTEGER NOT NULL) WITHOUT ROWID;
"""
RAW_INCR = (
    "INSERT INTO kv (key, v) VALUES (?, 1) ON CONFLICT (key) DO UPDATE SET v = v + 1 RETURNING v"
)
RAW_GET = "SELECT v FROM kv WHERE key = ?"
RAW_CAS = "UPDATE kv SET v = ? WHERE key = ? AND v = ?"
RAW_LOCK_ROW = "SELECT owner, exp FROM locks WHERE name = ?"
RAW_FENCE = (
    "INSERT INTO fences (name, fence) VALUES (?, 1) "
    "ON CONFLICT (name) DO UPDATE SET fence = fence + 1 RETURNING fence"
)
RAW_GRANT = (
    "INSERT INTO locks (name, owner, fence, exp) VALUES (?, ?, ?, ?) ON CONFLICT (name) "
    "DO UPDATE SET owner = excluded.owner, fence = excluded.fence, exp = excluded.exp"
)
RAW_RELEASE = "DELETE FROM locks WHERE name = ? AND owner = ? AND fence = ?"


def raw_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(RAW_SCHEMA)
    conn.execute("INSERT INTO kv (key, v) VALUES ('c', 0)")
    return conn


def raw_ops(conn: sqlite3.Connection) -> dict[str, Callable[[], object]]:
    owner = "bench:1:raw"

    def increment() -> object:
        return conn.execute(RAW_INCR, ("n",)).fetchone()[0]

    def cas() -> object:
        old = conn.execute(RAW_GET, ("c",)).fetchone()[0]
        return conn.execute(RAW_CAS, (old + 1, "c", old)).rowcount == 1

    def lock() -> object:
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(RAW_LOCK_ROW, ("L",)).fetchone()
        if row is not None and row[0] != owner and row[1] > now:
            conn.execute("COMMIT")
            return None
        fence = conn.execute(RAW_FENCE, ("L",)).fetchone()[0]
        conn.execute(RAW_GRANT, ("L", owner, fence, now + 30))
        conn.execute("COMMIT")
        return conn.execute(RAW_RELEASE, ("L", owner, fence)).rowcount

    return {"increment": increment, "cas": cas, "lock_acquire_release": lock}


def our_ops(store: Store) -> dict[str, Callable[[], object]]:
    store.set("c", 0)

    def cas() -> object:
        old = store.get("c")
        return store.compare_swap("c", old, old + 1)

    def lock() -> object:
        store.try_lock("L")
        return store.unlock("L")

    return {"increment": lambda: store.increment("n"), "cas": cas, "lock_acquire_release": lock}


def ops_per_s(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="operations per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per side (median kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slothlab-bench-") as folder:
        conn = raw_connection(Path(folder) / "raw.db")
        store = Store(Path(folder) / "ours.db")
        raw, ours = raw_ops(conn), our_ops(store)
        results = {}
        for name in raw:
            ops_per_s(raw[name], 200), ops_per_s(ours[name], 200)  # warm up caches
            raw_s, our_s = [], []
            for _ in range(args.rounds):  # interleaved, so load changes hit both sides
                raw_s.append(ops_per_s(raw[name], args.n))
                our_s.append(ops_per_s(ours[name], args.n))
            r, o = statistics.median(raw_s), statistics.median(our_s)
            results[name] = {
                "slothlab_ops_s": round(o),
                "raw_sqlite3_ops_s": round(r),
                "ratio": round(o / r, 3),
            }
        store.close()
        conn.close()
    print(
        json.dumps(
            {
                "benchmark": "state",
                "sqlite_version": sqlite3.sqlite_version,
                "n": args.n,
                "rounds": args.rounds,
                "results": results,
                "goal": "ratio >= 0.5 for every operation",
                "goal_met": all(v["ratio"] >= 0.5 for v in results.values()),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
