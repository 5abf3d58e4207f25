"""Task records and the task table: output lines and caps, waiters, retention, keys."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from slothlab.agent import TaskRecord, TaskTable
from slothlab.agent.tasks import _MAX_LINE
from slothlab.protocol import TaskRequest


def record(max_output: int = 1000, key: str | None = None) -> TaskRecord:
    request = TaskRequest(kind="shell", source="true", idempotency_key=key)
    return TaskRecord("t", "a", request, 0.0, max_output=max_output)


def test_chunks_become_lines_across_boundaries() -> None:
    r = record()
    r.feed("stdout", b"hel")
    r.feed("stdout", b"lo\nwor")
    r.feed("stderr", b"oops\n")
    assert [(e.seq, e.stream, e.text) for e in r.events_since(0)] == [
        (0, "stdout", "hello"),
        (1, "stderr", "oops"),
    ]
    r.finish("succeeded", 1.0)
    assert [e.text for e in r.events_since(2)] == ["wor"]


def test_cap_keeps_first_bytes_and_says_truncated() -> None:
    r = record(max_output=8)
    r.feed("stdout", b"1234\n5678\n90\n")
    r.finish("succeeded", 1.0)
    info = r.info()
    assert info.stdout == "1234\n567" and info.truncated
    assert [e.text for e in r.events_since(0)] == ["1234", "567"]


def test_a_huge_line_is_cut_into_events() -> None:
    r = record(max_output=3 * _MAX_LINE)
    r.feed("stdout", b"x" * (2 * _MAX_LINE + 10))
    assert [len(e.text) for e in r.events_since(0)] == [_MAX_LINE, _MAX_LINE]


def test_invalid_utf8_is_replaced() -> None:
    r = record()
    r.feed("stdout", b"\xff\xfeok\n")
    assert r.events_since(0)[0].text == "\ufffd\ufffdok"


def test_cancel_wins_and_finish_happens_once() -> None:
    r = record()
    r.cancel_requested = True
    r.finish("failed", 1.0, exit_code=-15)
    r.finish("succeeded", 2.0)
    assert (r.state, r.finished_at, r.error) == ("cancelled", 1.0, "cancelled on request")


def test_async_waiter_wakes_on_a_change_from_a_thread() -> None:
    r = record()

    async def main() -> bool:
        version = r.version
        threading.Timer(0.05, lambda: r.feed("stdout", b"x\n")).start()
        return await r.changed(version, 10.0)

    assert asyncio.run(main())
    assert r._waiters == []


def test_timed_out_waiters_do_not_pile_up() -> None:
    r = record()

    async def main() -> list[bool]:
        return [await r.changed(r.version, 0.01) for _ in range(5)]

    assert asyncio.run(main()) == [False] * 5
    assert r._waiters == []


def test_a_cancelled_waiter_leaves_nothing_behind() -> None:
    r = record()

    async def main() -> None:
        waiting = asyncio.create_task(r.changed(r.version, 60.0))
        while not r._waiters:  # until it registered
            await asyncio.sleep(0)
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        r.feed("stdout", b"late\n")  # a wake after the cancel is harmless

    asyncio.run(main())
    assert r._waiters == []


def test_table_forgets_by_age_and_count_but_remembers_keys() -> None:
    table = TaskTable(result_ttl_s=10.0, max_records=2, key_ttl_s=100.0)
    records = []
    for i in range(3):
        r = TaskRecord(
            f"t{i}",
            "a",
            TaskRequest(kind="shell", source="true", idempotency_key=f"k{i}"),
            float(i),
        )
        table.add(r)
        r.finish("succeeded", float(i))
        table.finished(r)
        records.append(r)
    assert table.sweep(3.0) == 1 and len(table) == 2  # over the count
    assert table.by_key("k0") == ("t0", None)
    assert table.sweep(11.5) == 1  # t1 finished at 1.0, past 10 s
    assert [r.id for r in table.recent()] == ["t2"]
    table.sweep(200.0)
    assert table.by_key("k2") is None and len(table) == 0


def test_as_dict_is_info_without_the_model() -> None:
    from slothlab.protocol import DispatchRequest, TaskInfo

    quiet = TaskRecord("t0", "agent-1", TaskRequest(kind="lua", source="return 1"), 1.0)
    shell = TaskRecord(
        "t1",
        "agent-1",
        TaskRequest(kind="shell", source="echo", name="n", priority=5, idempotency_key="k"),
        2.0,
        max_output=4,
    )
    shell.start(2.5)
    shell.feed("stdout", b"hello\n")
    shell.feed("stderr", b"\xff oops")
    shell.finish("failed", 3.0, exit_code=2, error="exit code 2")
    lua = TaskRecord("t2", "agent-1", DispatchRequest(kind="lua", source="x", agent="a"), 4.0)
    lua.finish("succeeded", 5.0, result=[1, {"$bytes": "AA=="}, None, "é"])
    for record in (quiet, shell, lua):
        assert TaskInfo.model_validate(record.as_dict()) == record.info()
        assert set(record.as_dict()) == set(TaskInfo.model_fields)
