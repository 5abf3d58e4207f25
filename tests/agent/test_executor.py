"""The executor: priorities, capacity, cancel, idempotency, retention, resource limits, Lua."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from slothlab.agent import Executor, ResourceLimits, TaskTable
from slothlab.errors import AgentBusyError, AgentError, TaskNotFoundError

from .conftest import FakeSource, lua, shell, wait_until

Make = Callable[..., Executor]


def blocker(gate: Path) -> str:
    return f"while [ ! -e {gate} ]; do sleep 0.01; done"


def test_shell_task_succeeds_and_fails(executor: Executor) -> None:
    ok = executor.submit(shell("echo out; echo err >&2"))
    bad = executor.submit(shell("exit 7"))
    assert ok.wait(10) and bad.wait(10)
    info = ok.info()
    assert (info.state, info.stdout, info.stderr, info.exit_code) == (
        "succeeded",
        "out\n",
        "err\n",
        0,
    )
    assert (bad.info().state, bad.info().exit_code, bad.info().error) == (
        "failed",
        7,
        "exit code 7",
    )


def test_a_command_that_cannot_start_fails_with_a_message(
    executor: Executor, tmp_path: Path
) -> None:
    record = executor.submit(shell("true", workdir=str(tmp_path / "nope")))
    assert record.wait(10)
    assert record.info().state == "failed"
    assert "cannot start the command in" in (record.info().error or "")


def test_higher_priority_runs_first_fifo_within_one(make_executor: Make, tmp_path: Path) -> None:
    executor = make_executor(capacity=1)
    gate = tmp_path / "gate"
    first = executor.submit(shell(blocker(gate)))
    order = tmp_path / "order"
    names = [("low-1", -5), ("mid-1", 0), ("high", 10), ("mid-2", 0), ("low-2", -5)]
    records = [
        executor.submit(shell(f"echo {name} >> {order}", priority=p, name=name))
        for name, p in names
    ]
    assert first.info().state == "running"
    assert all(r.info().state == "queued" for r in records)
    gate.touch()
    assert all(r.wait(10) for r in records)
    assert order.read_text().split() == ["high", "mid-1", "mid-2", "low-1", "low-2"]


def test_capacity_limits_concurrency(make_executor: Make, tmp_path: Path) -> None:
    executor = make_executor(capacity=2)
    gate = tmp_path / "gate"
    records = [executor.submit(shell(blocker(gate))) for _ in range(5)]
    assert [r.info().state for r in records] == ["running"] * 2 + ["queued"] * 3
    assert executor.counts()["running"] == 2 and executor.counts()["queued"] == 3
    gate.touch()
    assert all(r.wait(10) for r in records)
    assert executor.counts()["running"] == 0


def test_timeout_marks_the_task_and_kills_its_children(executor: Executor, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    record = executor.submit(shell(f"sleep 30 & echo $! > {pidfile}; wait", timeout_s=0.5))
    assert record.wait(10)
    info = record.info()
    assert info.state == "timeout" and "timeout of 0.5 s" in (info.error or "")
    child = int(pidfile.read_text())
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE


def test_output_cap_keeps_the_first_bytes(make_executor: Make) -> None:
    executor = make_executor(capacity=1, max_output=1000)
    record = executor.submit(shell("head -c 5000 /dev/zero | tr '\\0' x"))
    assert record.wait(10)
    info = record.info()
    assert info.state == "succeeded" and info.truncated
    assert info.stdout == "x" * 1000


def test_cancel_queued_task_never_runs(make_executor: Make, tmp_path: Path) -> None:
    executor = make_executor(capacity=1)
    gate, marker = tmp_path / "gate", tmp_path / "ran"
    running = executor.submit(shell(blocker(gate)))
    queued = executor.submit(shell(f"touch {marker}"))
    assert executor.cancel(queued.id).info().state == "cancelled"
    assert executor.counts()["queued"] == 0
    gate.touch()
    assert running.wait(10)
    assert executor.submit(shell("true")).wait(10)  # the queue moved on past the cancelled one
    assert not marker.exists()


def test_cancel_running_task_kills_its_group(executor: Executor, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    record = executor.submit(shell(f"sleep 30 & echo $! > {pidfile}; wait"))
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the child")
    child = int(pidfile.read_text())
    executor.cancel(record.id)
    assert record.wait(10)
    info = record.info()
    assert info.state == "cancelled" and info.error == "cancelled on request"
    wait_until(
        lambda: (
            not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        ),
        what="the child to die",
    )


def test_cancel_finished_or_unknown(executor: Executor) -> None:
    record = executor.submit(shell("true"))
    assert record.wait(10)
    assert executor.cancel(record.id).info().state == "succeeded"
    with pytest.raises(TaskNotFoundError, match="no task 'nope'"):
        executor.cancel("nope")


def test_idempotency_key_returns_the_first_task(executor: Executor, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    first = executor.submit(shell(f"echo x >> {counter}", idempotency_key="deploy-1"))
    assert first.wait(10)
    again = executor.submit(shell(f"echo x >> {counter}", idempotency_key="deploy-1"))
    assert again is first
    assert counter.read_text() == "x\n"


def test_idempotency_under_concurrent_submits(make_executor: Make, tmp_path: Path) -> None:
    executor = make_executor(capacity=4)
    counter = tmp_path / "count"
    start = threading.Barrier(8)
    ids: list[str] = []

    def submit() -> None:
        start.wait()
        ids.append(executor.submit(shell(f"echo x >> {counter}", idempotency_key="k")).id)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(ids) == 8 and len(set(ids)) == 1
    assert executor.get(ids[0]).wait(10)
    assert counter.read_text() == "x\n"


def test_batch_with_a_repeated_key_makes_one_task(executor: Executor) -> None:
    records = executor.submit_many(
        [shell("true", idempotency_key="b"), shell("true", idempotency_key="b")]
    )
    assert records[0] is records[1]


def test_results_are_forgotten_after_their_time(make_executor: Make) -> None:
    now = [1000.0]
    table = TaskTable(result_ttl_s=60.0, max_records=100, key_ttl_s=600.0)
    executor = make_executor(capacity=1, table=table, clock=lambda: now[0])
    record = executor.submit(shell("true", idempotency_key="once"))
    assert record.wait(10)
    wait_until(lambda: executor.counts()["running"] == 0, what="the slot to free")
    now[0] += 30
    executor.poke()
    assert executor.get(record.id) is record
    now[0] += 31
    executor.poke()
    with pytest.raises(TaskNotFoundError):
        executor.get(record.id)
    with pytest.raises(AgentError, match="was forgotten; it is not run twice"):
        executor.submit(shell("true", idempotency_key="once"))
    now[0] += 600
    executor.poke()
    assert executor.submit(shell("true", idempotency_key="once")).wait(10)  # the key expired too


def test_results_beyond_the_count_are_forgotten(make_executor: Make) -> None:
    executor = make_executor(capacity=1, table=TaskTable(max_records=3))
    records = [executor.submit(shell("true")) for _ in range(5)]
    assert all(r.wait(10) for r in records)
    wait_until(lambda: executor.counts()["running"] == 0, what="the slot to free")
    executor.poke()
    kept = [r.id for r in executor.recent()]
    assert kept == [r.id for r in reversed(records[2:])]


def test_queue_action_holds_work_until_below(make_executor: Make) -> None:
    source = FakeSource(cpu=95.0)
    limits = ResourceLimits(max_cpu_percent=90, action="queue")
    executor = make_executor(capacity=2, limits=limits, snapshot=source)
    record = executor.submit(shell("true"))
    assert record.info().state == "queued" and executor.effective_capacity() == 0
    assert executor.limit_state()["over"] and "CPU at 95%" in executor.limit_state()["message"]
    source.cpu = 50.0
    executor.poke()
    assert record.wait(10) and record.info().state == "succeeded"


def test_reject_action_refuses_new_tasks(make_executor: Make) -> None:
    source = FakeSource(memory=97.0)
    limits = ResourceLimits(max_memory_percent=95, action="reject")
    executor = make_executor(capacity=2, limits=limits, snapshot=source)
    with pytest.raises(AgentBusyError, match="memory at 97% \\(limit 95%\\)") as caught:
        executor.submit(shell("true"))
    assert caught.value.status == 503
    source.memory = 20.0
    executor.poke()
    assert executor.submit(shell("true")).wait(10)


def test_throttle_action_lowers_capacity(make_executor: Make, tmp_path: Path) -> None:
    source = FakeSource(cpu=99.0)
    limits = ResourceLimits(max_cpu_percent=90, action="throttle", throttle_capacity=1)
    executor = make_executor(capacity=3, limits=limits, snapshot=source)
    gate = tmp_path / "gate"
    records = [executor.submit(shell(blocker(gate))) for _ in range(3)]
    assert [r.info().state for r in records] == ["running", "queued", "queued"]
    source.cpu = 10.0
    executor.poke()
    assert [r.info().state for r in records] == ["running"] * 3
    gate.touch()
    assert all(r.wait(10) for r in records)


def test_queue_full_is_429(make_executor: Make, tmp_path: Path) -> None:
    executor = make_executor(capacity=1, max_queue=1)
    gate = tmp_path / "gate"
    executor.submit(shell(blocker(gate)))
    executor.submit(shell("true"))
    with pytest.raises(AgentBusyError, match="queue is full") as caught:
        executor.submit(shell("true"))
    assert caught.value.status == 429
    gate.touch()


def test_shutdown_refuses_new_work_and_cancels_the_queue(
    make_executor: Make, tmp_path: Path
) -> None:
    executor = make_executor(capacity=1)
    gate = tmp_path / "gate"
    running = executor.submit(shell(f"{blocker(gate)}; echo done"))
    queued = executor.submit(shell("true"))
    stopper = threading.Thread(target=executor.shutdown, kwargs={"grace_s": 10.0})
    stopper.start()
    wait_until(lambda: queued.done, what="the queued task to be cancelled")
    with pytest.raises(AgentBusyError, match="shutting down"):
        executor.submit(shell("true"))
    gate.touch()  # the running task may finish within the grace period
    stopper.join(10)
    assert running.info().state == "succeeded" and queued.info().state == "cancelled"


def test_shutdown_kills_what_outlives_the_grace(make_executor: Make) -> None:
    executor = make_executor(capacity=1)
    record = executor.submit(shell("sleep 30"))
    executor.shutdown(grace_s=0.2)
    assert record.info().state == "cancelled"


# -- Lua ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lua_executor() -> Executor:
    executor = Executor("lua-agent", capacity=2, kill_grace_s=0.5)
    yield executor  # type: ignore[misc]
    executor.shutdown(grace_s=0.0)


def test_lua_task_gets_args_and_returns_json(lua_executor: Executor) -> None:
    record = lua_executor.submit(
        lua("local a, b = ... print('adding') return a + b, {x = b}", args=[2, 3])
    )
    assert record.wait(30)
    info = record.info()
    assert info.state == "succeeded", info.error
    assert info.result == [5, {"x": 3}] and info.stdout == "adding\n"


def test_lua_error_fails_the_task(lua_executor: Executor) -> None:
    record = lua_executor.submit(lua("error('boom')"))
    assert record.wait(30)
    assert record.info().state == "failed" and "boom" in (record.info().error or "")


def test_lua_timeout(lua_executor: Executor) -> None:
    record = lua_executor.submit(lua("while true do end", timeout_s=0.5))
    assert record.wait(30)
    assert record.info().state == "timeout"


def test_lua_sandbox_has_no_exec_by_default(lua_executor: Executor) -> None:
    record = lua_executor.submit(lua("return exec == nil, os.execute == nil"))
    assert record.wait(30)
    assert record.info().result == [True, True]


def test_cancel_running_lua_kills_its_worker(lua_executor: Executor) -> None:
    record = lua_executor.submit(lua("print('spinning') while true do end", timeout_s=60))
    wait_until(lambda: record.info().state == "running", what="the Lua task to run")
    lua_executor.cancel(record.id)
    assert record.wait(10)
    assert record.info().state == "cancelled"
    after = lua_executor.submit(lua("return 'next'"))  # the pool replaced the killed worker
    assert after.wait(30) and after.info().result == ["next"]


def test_lua_runner_lends_the_warmest_worker_and_closing_wakes_waiters() -> None:
    from slothlab.agent.lua import LuaRunner

    def sink(stream: str, text: str) -> None:
        pass

    runner = LuaRunner(size=2)
    try:
        a, b = runner.start("return 1"), runner.start("return 2")  # both workers lent
        assert a._pool is not b._pool
        assert a.wait(sink) == [1] and b.wait(sink) == [2]  # b came back last
        again = runner.start("return 3")
        assert again._pool is b._pool  # the most recently used worker goes out first
        assert again.wait(sink) == [3]
        held = [runner._borrow(), runner._borrow()]
        assert {id(p) for p in held} == {id(a._pool), id(b._pool)}
        outcome: list[BaseException | None] = []

        def borrow() -> None:  # blocks: both workers are lent
            try:
                runner._borrow()
                outcome.append(None)
            except RuntimeError as exc:
                outcome.append(exc)

        waiter = threading.Thread(target=borrow)
        waiter.start()
    finally:
        runner.close()
    waiter.join(10)
    assert not waiter.is_alive() and isinstance(outcome[0], RuntimeError)
