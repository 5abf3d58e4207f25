"""The worker reuses its Lua state, a fresh env per task: nothing a task does reaches the next."""

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


@pytest.mark.parametrize(
    ("mess", "check", "expected"),
    [
        ("leak = 1; _G.other = 2", "return leak, other, _G.leak", [None, None, None]),
        (
            "string.upper = nil; string.extra = 1",
            "return string.upper('a'), string.extra",
            ["A", None],
        ),
        (
            "function string.shout(s) return s .. '!' end; assert(('a'):shout() == 'a!')",
            "return pcall(function() return ('a'):shout() end)",
            [False],
        ),
        (
            "table.insert = nil; math.pi = 3; utf8.char = nil; os.time = nil",
            "return table.insert ~= nil, math.pi > 3.14, utf8.char(65), os.time() > 0",
            [True, True, "A", True],
        ),
        (
            "coroutine.wrap = nil; keep = coroutine.create(function() coroutine.yield() end)",
            "return coroutine.wrap ~= nil, keep",
            [True, None],
        ),
        (
            "setmetatable(_G, {__index = function() return 'hijacked' end})",
            "return anything, log ~= nil",
            [None, True],
        ),
        (
            "print = function() end; pcall = nil; tostring = nil",
            "return pcall(tostring, 1)",
            [True, "1"],
        ),
        ("big = string.rep('x', 8 << 20)", "return big", [None]),
    ],
)
def test_nothing_one_task_does_reaches_the_next(
    pool: WorkerPool, mess: str, check: str, expected: list[object]
) -> None:
    pool.run(mess)
    assert pool.run(check)[: len(expected)] == expected


def test_the_random_generator_is_seeded_afresh_for_each_task(pool: WorkerPool) -> None:
    seeded = "math.randomseed(42) return math.random(1, 1 << 40)"
    first = pool.run(seeded)
    assert pool.run(seeded) == first  # the same seed gives the same numbers within a task
    pool.run("math.randomseed(42)")
    after = [pool.run("return math.random(1, 1 << 40)")[0] for _ in range(3)]
    assert first[0] not in after and len(set(after)) == 3  # not the sequence task 1 chose


@pytest.fixture(autouse=True)
def in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """handle() and _Spare.make() set RLIMIT_CPU on their process: not on the test runner's
    (every test here; the pools' workers are processes of their own)."""
    monkeypatch.setattr(_worker, "_set_cpu_limit", lambda seconds: None)


def test_custom_metrics_are_handed_back_once_per_task() -> None:
    code = "metrics.counter('jobs_total', 1) return 1"
    request = {"code": code, "cpu_s": 5, "timeout_s": 5.0, "max_memory_mb": 64,
               "capabilities": {}, "context": {}}  # fmt: skip
    spare = _worker._Spare()
    totals = []
    for _ in range(3):
        spare.make(request)
        reply = _worker.handle(request, spare)
        assert reply["ok"], reply
        series = reply["custom_metrics"][0]["series"]
        totals.append(series[0]["value"])
    assert totals == [1.0, 1.0, 1.0]  # each task's own count, never the sum so far
    assert spare.uses == 3  # one Lua state served all three


def test_a_state_is_replaced_after_a_task_that_broke_and_after_max_reuse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    request = {"code": "return 1", "cpu_s": 5, "timeout_s": 5.0, "max_memory_mb": 64,
               "capabilities": {}, "context": {}}  # fmt: skip
    spare = _worker._Spare()
    spare.make(request)
    first = spare.ready[0] if spare.ready else None
    _worker.handle(request, spare)
    spare.make(request)
    assert spare.ready is not None and spare.ready[0] is first  # reused
    _worker.handle({**request, "args": {"$map": "not a list of pairs"}}, spare)  # breaks
    spare.make(request)
    assert spare.ready is not None and spare.ready[0] is not first  # a new state
    monkeypatch.setattr(_worker, "_MAX_REUSE", 2)
    second = spare.ready[0]
    _worker.handle(request, spare)
    spare.make(request)
    assert spare.ready is not None and spare.ready[0] is second  # 2nd use
    _worker.handle(request, spare)
    spare.make(request)
    assert spare.ready is not None and spare.ready[0] is not second  # past the limit
