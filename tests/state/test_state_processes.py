"""Real processes on one file: atomic totals, no SQLITE_BUSY, kill -9, locks across processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slothlab.state import Store

WORKER = str(Path(__file__).with_name("_worker.py"))
LIMIT_S = 120  # every child is killed past this, so a test always ends


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WORKER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"child {proc.args} did not finish in {LIMIT_S} s: {out} {err}")
    return proc.returncode, out, err


def run_all(procs: list[subprocess.Popen[str]]) -> None:
    results = [finish(p) for p in procs]
    for code, out, err in results:
        assert "StateError" not in out, out  # e.g. "database is locked" surfacing
        assert code == 0, (out, err)


@pytest.mark.parametrize("action, key", [("incr", "counter"), ("cas", "cas")])
def test_eight_processes_give_exact_totals(db_path: Path, action: str, key: str) -> None:
    Store(db_path).close()  # create the schema once, before the race
    run_all([spawn(action, str(db_path), "500") for _ in range(8)])
    with Store(db_path) as store:
        assert store.get(key) == 8 * 500


def test_kill_9_mid_write_leaves_all_or_nothing(db_path: Path) -> None:
    Store(db_path).close()
    size = 400
    proc = spawn("batches", str(db_path), str(size))
    assert proc.stdout is not None
    committed = -1
    deadline = time.monotonic() + LIMIT_S
    try:
        while committed < 3 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            committed = int(line)
    finally:
        proc.send_signal(signal.SIGKILL)  # somewhere inside the next batch's transaction
        proc.wait(timeout=LIMIT_S)
        proc.stdout.close()
        assert proc.stderr is not None
        proc.stderr.close()
    assert committed >= 3, "the writer never committed its first batches"
    with Store(db_path) as store:
        conn = store._conn()
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        counts = dict(
            conn.execute(
                "SELECT substr(key, 1, 7), count(*) FROM kv GROUP BY substr(key, 1, 7)"
            ).fetchall()
        )
        assert all(n == size for n in counts.values()), counts  # no half-written batch
        assert len(counts) >= committed + 1  # every batch reported committed survived
        store.set("after", "ok")
        assert store.get("after") == "ok"


def test_lock_waits_across_processes(db_path: Path, tmp_path: Path) -> None:
    Store(db_path).close()
    fence_file = tmp_path / "fence"
    holder = spawn("hold", str(db_path), "L", str(fence_file))
    deadline = time.monotonic() + LIMIT_S
    while not fence_file.exists() and time.monotonic() < deadline and holder.poll() is None:
        time.sleep(0.01)  # polling for the child's file, with a deadline
    held_fence = int(fence_file.read_text())
    with Store(db_path) as store:
        info = store.lock_info("L")
        assert info is not None and info.fence == held_fence
        assert info.owner.split(":")[1] == str(holder.pid)
    impatient = spawn("wait", str(db_path), "L", "0.2")
    assert finish(impatient)[1].split() == ["busy", "timeout"]
    waiter = spawn("wait", str(db_path), "L", "60")
    assert waiter.stdout is not None
    assert waiter.stdout.readline().strip() == "busy"  # it found the lock held and now waits
    Path(str(fence_file) + ".release").write_text("go")
    assert finish(holder)[0] == 0
    code, out, err = finish(waiter)
    assert code == 0, err
    assert int(out) == held_fence + 1
