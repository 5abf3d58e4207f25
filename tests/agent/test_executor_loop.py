"""Lua tasks, and shell tasks in spare shells, run from an attached event loop (the agent
server's), without a thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from slothlab.agent import Executor
from slothlab.agent.lua import LuaRunner
from slothlab.agent.tasks import TaskRecord

from .conftest import gone, lua, shell, wait_until

Make = Callable[..., Executor]


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[], Any]) -> Any:
    async def call() -> Any:
        return fn()

    return asyncio.run_coroutine_threadsafe(call(), loop).result(10)


@pytest.fixture
def attached(make_executor: Make, loop: asyncio.AbstractEventLoop) -> Executor:
    executor = make_executor(capacity=2)
    on_loop(loop, lambda: executor.attach_loop(loop))
    executor.start()
    return executor


@pytest.fixture
def with_spares(attached: Executor) -> list[int]:
    """``attached`` with its spare shells ready; the threads its tasks finish on."""
    assert attached.spares.fill(wait_s=30) == attached.spares.size
    return finishing_threads(attached)


def finishing_threads(executor: Executor) -> list[int]:
    seen: list[int] = []
    executor.add_listener(lambda record: seen.append(threading.get_ident()))
    return seen


def loop_thread(loop: asyncio.AbstractEventLoop) -> int:
    return on_loop(loop, threading.get_ident)  # type: ignore[no-any-return]


def test_lua_tasks_finish_on_the_loop_once_a_worker_is_warm(
    attached: Executor, loop: asyncio.AbstractEventLoop
) -> None:
    seen = finishing_threads(attached)
    first = attached.submit(lua("return 1"))  # no worker yet: a thread starts one
    assert first.wait(30) and first.info().state == "succeeded"
    records = []
    for i in range(6):  # one at a time: the warm worker is free for each
        code = "local a, b = ... print('sum', a + b) return a + b"
        records.append(attached.submit(lua(code, args=[i, 1])))
        assert records[-1].wait(30)
    records.append(on_loop(loop, lambda: attached.submit(lua("return 'from the loop'"))))
    assert records[-1].wait(30)
    infos = [r.info() for r in records]
    assert [i.result for i in infos] == [[i + 1] for i in range(6)] + [["from the loop"]]
    assert [i.stdout for i in infos[:6]] == [f"sum\t{i + 1}\n" for i in range(6)]
    wait_until(lambda: len(seen) == 8, what="every task's listener")
    assert seen[0] != loop_thread(loop)  # the cold start went through a thread
    assert set(seen[1:]) == {loop_thread(loop)}  # the rest never left the loop


def test_errors_timeouts_and_cancels_on_the_loop(
    attached: Executor, loop: asyncio.AbstractEventLoop
) -> None:
    assert attached.submit(lua("return 1")).wait(30)  # warm a worker
    seen = finishing_threads(attached)
    failed = attached.submit(lua("error('boom')"))
    slow = attached.submit(lua("while true do end", timeout_s=0.5))
    assert failed.wait(30) and slow.wait(30)
    assert failed.info().state == "failed" and "boom" in (failed.info().error or "")
    assert slow.info().state == "timeout"
    stuck = attached.submit(lua("while true do end", timeout_s=60))
    wait_until(lambda: stuck.cancel is not None, what="the task to be armed")
    attached.cancel(stuck.id)
    assert stuck.wait(30) and stuck.info().state == "cancelled"
    after = attached.submit(lua("return 2"))  # the killed worker was replaced
    assert after.wait(30) and after.info().result == [2]
    assert loop_thread(loop) in seen


def test_a_worker_that_dies_mid_task_fails_only_that_task(
    attached: Executor, loop: asyncio.AbstractEventLoop
) -> None:
    assert attached.submit(lua("return 1")).wait(30)
    pool = attached.lua._idle[-1]
    worker = pool.workers[0]
    assert worker is not None
    record = attached.submit(lua("while true do end", timeout_s=60))
    wait_until(lambda: record.cancel is not None, what="the task to start")
    worker.proc.kill()
    assert record.wait(30) and record.info().state == "failed"
    assert "killed" in (record.info().error or "")
    again = attached.submit(lua("return 3"))
    assert again.wait(30) and again.info().result == [3]


def test_shell_tasks_in_spare_shells_run_on_the_loop(
    attached: Executor, loop: asyncio.AbstractEventLoop, with_spares: list[int]
) -> None:
    seen = with_spares
    record = attached.submit(shell("echo out; echo err >&2; exit 3"))
    assert record.wait(30)
    info = record.info()
    assert (info.state, info.exit_code, info.stdout, info.stderr) == ("failed", 3, "out\n", "err\n")
    assert "exit" in (info.error or "")
    big = attached.submit(shell("head -c 300000 /dev/zero | tr '\\0' x; echo; echo done"))
    assert big.wait(30) and big.info().state == "succeeded"
    assert len(big.info().stdout) == 300006 or big.info().truncated
    wait_until(lambda: len(seen) == 2, what="the listeners")
    assert set(seen) == {loop_thread(loop)}  # neither went through a thread


def test_shell_timeouts_and_cancels_on_the_loop(
    attached: Executor, loop: asyncio.AbstractEventLoop, with_spares: list[int]
) -> None:
    seen = with_spares
    slow = attached.submit(shell("sleep 30 & wait", timeout_s=0.5))
    assert slow.wait(30) and slow.info().state == "timeout"
    assert "killed" in (slow.info().error or "")
    wait_until(lambda: attached.spares.fill() == attached.spares.size, what="spares again")
    stubborn = attached.submit(shell("trap '' TERM; echo armed; while :; do sleep 0.05; done"))
    wait_until(lambda: "armed" in stubborn.info().stdout, what="the trap to be set")
    attached.cancel(stubborn.id)  # SIGTERM is ignored: the SIGKILL after the grace ends it
    assert stubborn.wait(30) and stubborn.info().state == "cancelled"
    wait_until(lambda: len(seen) == 2, what="the listeners")
    assert set(seen) == {loop_thread(loop)}


def test_shell_tasks_fork_in_a_thread_when_no_spare_fits(
    make_executor: Make, loop: asyncio.AbstractEventLoop, tmp_path: Any
) -> None:
    executor = make_executor(capacity=1, shell_spares=0)
    on_loop(loop, lambda: executor.attach_loop(loop))
    executor.start()
    seen = finishing_threads(executor)
    record = executor.submit(shell("echo $0", workdir=str(tmp_path)))
    assert record.wait(30) and record.info().stdout == "/bin/sh\n"
    missing = executor.submit(shell("true", workdir=str(tmp_path / "nope")))
    assert missing.wait(30) and missing.info().state == "failed"
    assert "cannot start the command in" in (missing.info().error or "")
    wait_until(lambda: len(seen) == 2, what="the listeners")
    assert loop_thread(loop) not in seen


def test_no_loop_attached_keeps_every_task_in_threads(make_executor: Make) -> None:
    executor = make_executor(capacity=1)
    seen = finishing_threads(executor)
    records = [executor.submit(lua("return 1")) for _ in range(3)]
    assert all(r.wait(30) for r in records)
    wait_until(lambda: len(seen) == 3, what="the listeners")
    assert threading.get_ident() not in seen and len(set(seen)) == 1


def test_a_closed_loop_sends_tasks_to_threads(make_executor: Make) -> None:
    executor = make_executor(capacity=1)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(asyncio.sleep(0))
    executor.attach_loop(loop)  # this thread stands for the loop's
    loop.close()
    record: TaskRecord = executor.submit(lua("return 5"))
    assert record.wait(30) and record.info().result == [5]


def test_a_kill_after_the_reply_is_in_spares_the_worker(loop: asyncio.AbstractEventLoop) -> None:
    runner = LuaRunner(size=1)
    try:
        assert runner.start("return 0").wait(lambda s, t: None) == [0]  # a started worker
        pid = runner._idle[-1].workers[0].proc.pid  # type: ignore[union-attr]
        ended: list[object] = []
        kill = on_loop(
            loop,
            lambda: runner.start_async(loop, "return 7", lambda r, e: ended.append(r or e)),
        )
        assert kill is not None
        wait_until(lambda: ended, what="the task's end")
        kill()  # a cancel that lands just after the reply: the worker is someone else's now
        assert ended == [[7]]
        assert runner.start("return 8").wait(lambda s, t: None) == [8]
        assert runner._idle[-1].workers[0].proc.pid == pid  # type: ignore[union-attr]
    finally:
        runner.close()


def test_a_worker_killed_while_idle_is_replaced_before_the_next_task(
    attached: Executor, loop: asyncio.AbstractEventLoop
) -> None:
    assert attached.submit(lua("return 1")).wait(30)
    worker = attached.lua._idle[-1].workers[0]
    assert worker is not None
    worker.proc.kill()
    worker.proc.wait()
    record = attached.submit(lua("return 2"))
    assert record.wait(30) and record.info().result == [2], record.info().error


def test_large_requests_and_replies_still_work_on_the_loop_path(
    attached: Executor, loop: asyncio.AbstractEventLoop
) -> None:
    assert attached.submit(lua("return 1")).wait(30)
    seen = finishing_threads(attached)
    big_reply = attached.submit(lua("return #string.rep('x', 3 << 20), string.rep('y', 3 << 20)"))
    assert big_reply.wait(60) and big_reply.info().state == "succeeded", big_reply.info().error
    result = big_reply.info().result
    assert result is not None and result[0] == 3 << 20 and len(result[1]) == 3 << 20
    big_request = attached.submit(lua("return #(...)", args=["z" * (100 << 10)]))
    assert big_request.wait(60) and big_request.info().result == [100 << 10]
    wait_until(lambda: len(seen) == 2, what="both listeners")
    assert seen[0] == loop_thread(loop)  # a 3 MiB reply: read on the loop, parsed in a thread
    assert seen[1] != loop_thread(loop)  # a 100 KiB request: sent from a thread


def test_a_shell_task_on_the_loop_takes_its_group_with_it(
    attached: Executor, loop: asyncio.AbstractEventLoop, with_spares: list[int]
) -> None:
    seen = with_spares
    # the background sleep closed its pipes: the task ends at once and the group kill follows
    quiet = attached.submit(shell("sleep 300 >/dev/null 2>&1 & echo $!"))
    assert quiet.wait(30) and quiet.info().state == "succeeded"
    pid = int(quiet.info().stdout)
    wait_until(lambda: gone(pid), what=f"the background sleep {pid} to be killed")
    wait_until(lambda: attached.spares.fill() == attached.spares.size, what="spares again")
    # this one holds the pipes open: the group is killed at the shell's exit, then they close
    holding = attached.submit(shell("sleep 300 & echo $!"))
    assert holding.wait(30) and holding.info().state == "succeeded"
    held = int(holding.info().stdout)
    wait_until(lambda: gone(held), what=f"the background sleep {held} to be killed")
    wait_until(lambda: len(seen) == 2, what="the listeners")
    assert set(seen) == {loop_thread(loop)}


def test_a_shell_the_loop_cannot_follow_fails_its_task_and_frees_its_slot(
    attached: Executor, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from slothlab.agent import shell as shell_module

    assert attached.spares.fill(wait_s=30) == attached.spares.size
    started: list[int] = []

    def no_fd_left(pid: int) -> int:
        started.append(pid)
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(shell_module.os, "pidfd_open", no_fd_left)
    record = attached.submit(shell("sleep 300"))
    assert record.wait(30) and record.info().state == "failed"
    error = record.info().error or ""
    assert "agent error" in error and "open files" in error
    assert started and gone(started[0])  # the shell was killed and reaped
    wait_until(lambda: attached.counts()["running"] == 0, what="its capacity back")


def test_pipes_held_by_an_escaped_process_are_read_a_while_then_left(
    attached: Executor, loop: asyncio.AbstractEventLoop, with_spares: list[int], tmp_path: Any
) -> None:
    import os

    seen = with_spares
    # setsid: out of the task's process group, so the group kill misses it; it holds stdout.
    # The shell exits only once the escaped one is out of the group (it wrote the flag).
    flag = tmp_path / "escaped"
    command = (
        f"setsid sh -c 'echo $$ > {flag}; exec sleep 300' & "
        f"while [ ! -s {flag} ]; do :; done; echo started"
    )
    record = attached.submit(shell(command))
    try:
        assert record.wait(30) and record.info().state == "succeeded"
        assert record.info().stdout == "started\n"
        assert record.info().finished_at is not None and record.info().started_at is not None
        assert record.info().finished_at - record.info().started_at >= 0.9  # the 1 s drain
        wait_until(lambda: len(seen) == 1, what="the listener")
        assert seen == [loop_thread(loop)]
    finally:
        if flag.exists() and flag.read_text().strip():
            os.kill(int(flag.read_text()), 9)  # the escaped sleep (exec kept the shell's pid)
