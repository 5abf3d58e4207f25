"""A child process for the multi-process state tests: ``python _worker.py ACTION DB ARGS...``.

Actions:
    incr N          increment "counter" N times
    cas N           add 1 to "cas" N times with get-then-compare_swap loops
    hold NAME FILE  take lock NAME, write its fence to FILE, hold until FILE.release exists
    wait NAME T     wait up to T seconds for lock NAME; print its fence (or "timeout")
    bigwrite N      one transaction writing N keys, then block forever (to be killed)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from slothlab.state import Store


def main(argv: list[str]) -> int:
    from slothlab.errors import StateError

    action, db = argv[0], Path(argv[1])
    store = Store(db)
    try:
        return _ACTIONS[action](store, argv[2:])
    except StateError as exc:  # the tests look for this line (e.g. SQLITE_BUSY surfacing)
        print(f"StateError: {exc}", flush=True)
        return 3


def _incr(store: Store, args: list[str]) -> int:
    for _ in range(int(args[0])):
        store.increment("counter")
    return 0


def _cas(store: Store, args: list[str]) -> int:
    for _ in range(int(args[0])):
        while True:
            old = store.get("cas")  # None while missing: CAS from nil creates it
            if store.compare_swap("cas", old, (old or 0) + 1):
                break
    return 0


def _hold(store: Store, args: list[str]) -> int:
    name, out = args[0], Path(args[1])
    fence = store.lock(name, timeout_s=30, ttl_s=60)
    out.write_text(str(fence))
    release = Path(str(out) + ".release")
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    store.unlock(name)
    return 0


def _wait(store: Store, args: list[str]) -> int:
    fence = store.lock(args[0], timeout_s=float(args[1]), ttl_s=60)
    print("timeout" if fence is None else fence, flush=True)
    return 0


def _bigwrite(store: Store, args: list[str]) -> int:
    conn = store._conn()
    conn.execute("BEGIN IMMEDIATE")
    for i in range(int(args[0])):
        conn.execute(
            "INSERT INTO kv (key, t, v, exp) VALUES (?, 's', ?, NULL)", (f"big:{i}", "x" * 200)
        )
    print("written", flush=True)  # the transaction is open and unfinished: kill me now
    time.sleep(120)
    return 0


_ACTIONS = {"incr": _incr, "cas": _cas, "hold": _hold, "wait": _wait, "bigwrite": _bigwrite}

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
