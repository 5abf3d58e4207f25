"""The worker pool: real worker processes, limits, kills and replacement."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from slothlab.errors import (
    LuaError,
    LuaMemoryError,
    LuaSyntaxError,
    LuaTimeoutError,
    SlothlabError,
)
from slothlab.lua import WorkerPool

PATTERN_BOMB = "return string.find(string.rep('a', 40), string.rep('a*', 40) .. 'b')"


@pytest.fixture(scope="module")
def pool() -> Iterator[WorkerPool]:
    with WorkerPool(size=2, max_memory_mb=48, kill_grace_s=0.5) as p:
        yield p


def test_results_args_and_globals(pool: WorkerPool) -> None:
    code = "local a, b = ... return a + b, cfg.name, {x = 1.5, [2] = '\\xff'}"
    assert pool.run(code, args=[2, 3], globals={"cfg": {"name": "web"}}) == [
        5,
        "web",
        {"x": 1.5, 2: b"\xff"},
    ]


def test_functions_come_back_as_placeholders(pool: WorkerPool) -> None:
    assert pool.run("return print") == ["<function>"]


def test_submit_gives_futures(pool: WorkerPool) -> None:
    futures = [pool.submit("return ... * 2", args=[i]) for i in range(6)]
    assert [f.result(timeout=30) for f in futures] == [[i * 2] for i in range(6)]


def test_errors_keep_their_class_and_location(pool: WorkerPool) -> None:
    with pytest.raises(LuaError) as info:
        pool.run("local x = 1\nerror('boom')", "job")
    assert (str(info.value), info.value.chunk, info.value.line) == ("job:2: boom", "job", 2)
    assert "job:2: in main chunk" in info.value.traceback
    with pytest.raises(LuaSyntaxError):
        pool.run("return +")


def test_output_is_delivered(pool: WorkerPool) -> None:
    seen: list[tuple[str, str]] = []
    pool.run("print('hello', 1)", output=lambda s, t: seen.append((s, t)))
    assert seen == [("stdout", "hello\t1")]


def test_lua_loop_ends_without_losing_the_worker(pool: WorkerPool) -> None:
    pids = {w.proc.pid for w in pool.workers if w is not None}
    with pytest.raises(LuaTimeoutError, match="time limit exceeded"):
        pool.run("while true do end", timeout_s=0.3)
    assert pool.run("return 1") == [1]
    assert {w.proc.pid for w in pool.workers if w is not None} == pids


def test_memory_bomb(pool: WorkerPool) -> None:
    with pytest.raises(LuaMemoryError):
        pool.run("local s = 'x' while true do s = s .. s end")
    assert pool.run("return 2") == [2]


def test_pattern_bomb_is_killed_on_the_wall_clock() -> None:
    with WorkerPool(size=1, max_memory_mb=32, kill_grace_s=0.2) as pool:
        old = pool.workers[0]
        with pytest.raises(LuaTimeoutError, match="worker was killed"):
            pool.run(PATTERN_BOMB, timeout_s=0.3)
        assert pool.run("return 'alive'") == ["alive"]
        assert pool.workers[0] is not old


@pytest.mark.slow
@pytest.mark.parametrize("before", [None, 1, 30], ids=["first", "same-limit", "other-limit"])
def test_pattern_bomb_is_stopped_by_rlimit_cpu(before: int | None) -> None:
    # The parent waits long; the worker's own CPU limit (1 s + rounding) ends it first. After
    # a task with the same limit the worker set it while it waited (in a reused runtime); after
    # one with another limit it sets it when the task comes.
    with WorkerPool(size=1, max_memory_mb=32, kill_grace_s=30) as pool:
        if before is not None:
            assert pool.run("return 0", timeout_s=before) == [0]
        with pytest.raises(LuaTimeoutError, match="CPU limit"):
            pool.run(PATTERN_BOMB, timeout_s=1)
        assert pool.run("return 1") == [1]


def test_crashed_worker_is_replaced() -> None:
    with WorkerPool(size=1) as pool:
        assert pool.run("return 1") == [1]
        worker = pool.workers[0]
        assert worker is not None
        worker.proc.kill()
        worker.proc.wait()
        with pytest.raises(LuaError, match="worker"):
            pool.run("return 2")
        assert pool.run("return 3") == [3]


def test_drop_dead_replaces_a_worker_that_died_while_idle() -> None:
    with WorkerPool(size=1) as pool:
        assert pool.run("return 1") == [1]
        worker = pool.workers[0]
        assert worker is not None
        worker.kill()  # e.g. a cancel that came just after the task's reply
        pool.drop_dead()
        assert pool.workers[0] is None
        assert pool.run("return 2") == [2]  # a new worker, not an error
        assert pool.workers[0] is not None and pool.workers[0].proc.pid != worker.proc.pid


def test_worker_environment_has_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOTHLAB_TEST_SECRET", "hunter2")
    with WorkerPool(size=1) as pool:
        assert pool.run("return 1") == [1]  # the worker has started
        worker = pool.workers[0]
        assert worker is not None
        environ = Path(f"/proc/{worker.proc.pid}/environ").read_bytes().split(b"\0")
        names = {e.split(b"=", 1)[0] for e in environ if e}
    assert b"SLOTHLAB_TEST_SECRET" not in names
    assert names <= {b"PATH", b"LANG", b"PYTHONPATH", b"PYTHONDONTWRITEBYTECODE"}


def test_capabilities_travel(pool: WorkerPool, tmp_path: Path) -> None:
    # Without capabilities nothing outside is reachable; the worker's cwd is / anyway.
    with pytest.raises(LuaError):
        pool.run("io.open('x', 'w')")
    assert os.listdir(tmp_path) == []
    assert pool.run("return 1", capabilities={"exec": False, "fs": False}) == [1]


def test_bad_input() -> None:
    with WorkerPool(size=1) as pool:
        with pytest.raises(TypeError, match="cannot send a object"):
            pool.run("return ...", args=[object()])
        with pytest.raises(ValueError, match="timeout_s"):
            pool.run("return 1", timeout_s=0)
    with pytest.raises(SlothlabError, match="closed"):
        pool.run("return 1")
    with pytest.raises(ValueError, match="at least one"):
        WorkerPool(size=0)
