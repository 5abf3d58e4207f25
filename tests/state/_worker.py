"""A child process for the multi-process state tests: ``python _worker.py ACTION DB ARGS...``.

Actions:
    incr N          increment "counter" N times
    cas N           add 1 to "cas" N times with get-then-compare_swap loops
    hold NAME FILE  take lock NAME, write its fence to FILE, hold until FILE.release exists
    wait NAME T     print "busy" if lock NAME is held, then wait up to T seconds for it and
                    print its fence (or "timeout")
    batches N       write batches of N keys, one transaction each, printing each batch's
                    number once committed, until killed
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
    tmp = out.with_suffix(".tmp")
    tmp.write_text(str(fence))
    tmp.rename(out)  # atomic: the test never reads a half-written file
    release = Path(str(out) + ".release")
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    store.unlock(name)
    return 0


def _wait(store: Store, args: list[str]) -> int:
    fence = store.try_lock(args[0], ttl_s=60)
    if fence is None:
        print("busy", flush=True)  # the lock is held: from here on, lock() has to wait
        fence = store.lock(args[0], timeout_s=float(args[1]), ttl_s=60)
    print("timeout" if fence is None else fence, flush=True)
    return 0


def _batches(store: Store, args: list[str]) -> int:
    size = int(args[0])
    conn = store._conn()
    for batch in range(1_000_000):
        conn.execute("BEGIN IMMEDIATE")
        for j in range(size):
            conn.execute(
                "INSERT INTO kv (key, t, v, exp) VALUES (?, 's', ?, NULL)",
                (f"b{batch:06d}:{j}", "x" * 300),
            )
        conn.execute("COMMIT")
        print(batch, flush=True)
    return 0


_ACTIONS = {"incr": _incr, "cas": _cas, "hold": _hold, "wait": _wait, "batches": _batches}

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
