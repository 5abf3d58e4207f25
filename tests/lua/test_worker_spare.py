"""The worker makes the next task's runtime ahead; every task still starts in a fresh one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from slothlab.lua import _worker
from slothlab.lua.pool import WorkerPool


@pytest.fixture(scope="module")
def pool() -> Iterator[WorkerPool]:
    with WorkerPool(size=1) as made:
        yield made


def test_a_task_never_sees_the_previous_ones_state(pool: WorkerPool) -> None:
    pool.run("leak = 41; string.leak = 1")
    assert pool.run("return leak, string.leak") == [None, None]
    assert pool.run("return leak") == [None]


def test_a_task_with_other_options_gets_its_own_runtime(pool: WorkerPool) -> None:
    assert pool.run("return exec ~= nil", capabilities={"exec": True}) == [True]
    assert pool.run("return exec ~= nil") == [False]  # the spare had exec: not used
    assert pool.run("return exec ~= nil", capabilities={"exec": True}) == [True]


def test_output_belongs_to_its_own_task(pool: WorkerPool) -> None:
    seen: list[list[tuple[str, str]]] = [[], []]
    for i, word in enumerate(("first", "second")):
        pool.run(
            f"print('{word}')", output=lambda stream, text, i=i: seen[i].append((stream, text))
        )
    assert seen == [[("stdout", "first")], [("stdout", "second")]]


def test_spare_is_used_once_and_only_for_the_same_options() -> None:
    request = {
        "code": "return 1",
        "cpu_s": 5,
        "timeout_s": 5.0,
        "max_memory_mb": 64,
        "capabilities": {},
        "context": {"workdir": "/tmp"},
    }
    spare = _worker._Spare()
    spare.make(request)
    assert spare.take({**request, "context": {}}) is None  # other options: not used, dropped
    assert spare.take(request) is None  # gone
    spare.make(request)
    ready = spare.take(request)
    assert ready is not None and spare.take(request) is None
    runtime, output = ready
    runtime.execute("print('x')")  # its output goes to the sink made with it
    assert output.lines == [["stdout", "x"]]
