"""The Lua ``state`` module: every function through a real sandboxed runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from slothlab.errors import LuaError
from slothlab.lua import Runtime
from slothlab.state import Store

from .conftest import FakeClock


@pytest.fixture
def rt(store: Store) -> Runtime:
    return Runtime(modules=["state"], context={"state_store": store})


def run(rt: Runtime, code: str) -> list[Any]:
    return rt.execute(code)


def test_typed_values_round_trip(rt: Runtime) -> None:
    results = run(
        rt,
        """
        state.set("i", 2); state.set("f", 2.0); state.set("b", false); state.set("s", "x")
        state.set("t", {a = {1, 2}, b = "c"}); state.set("n", nil)
        return math.type(state.get("i")), math.type(state.get("f")), state.get("b"),
               state.get("s"), state.get("t").a[2], state.get("n", "d"), state.exists("n"),
               state.get("missing", "d"), "attempt " .. state.get("i")
        """,
    )
    assert results == ["integer", "float", False, "x", 2, None, True, "d", "attempt 2"]


def test_values_written_in_lua_are_read_in_python(rt: Runtime, store: Store) -> None:
    run(rt, 'state.set("cfg", {replicas = 3, tags = {"a", "b"}}); state.set("bin", "\\255")')
    assert store.get("cfg") == {"replicas": 3, "tags": ["a", "b"]}
    assert store.get("bin") == b"\xff"
    store.set("py", {"x": [1.5, None, True]})
    assert run(rt, "local v = state.get('py'); return v.x[1], v.x[2], v.x[3]") == [
        1.5,
        None,
        True,
    ]
    assert run(rt, "return state.get('bin') == '\\255'") == [True]


def test_keys_delete_clear(rt: Runtime) -> None:
    results = run(
        rt,
        """
        for _, k in ipairs({"job:2", "job:1", "x"}) do state.set(k, 1) end
        local before = state.keys("job:*")
        local d = state.delete("x")
        return before, d, state.exists("x"), state.clear(), state.keys()
        """,
    )
    assert results == [["job:1", "job:2"], True, False, 2, {}]


def test_ttl_functions(rt: Runtime, clock: FakeClock) -> None:
    assert run(
        rt,
        """
        state.set("a", 1, 10); state.set_with_ttl("b", 2, 20); state.set("c", 3)
        return state.get_ttl("a"), state.get_ttl("b"), state.get_ttl("c"), state.get_ttl("d"),
               state.set_ttl("c", 5), state.set_ttl("d", 5), state.persist("b"), state.get_ttl("b")
        """,
    ) == [10, 20, -1, -2, True, False, True, -1]
    clock.advance(10)
    assert run(rt, "return state.get('a'), state.exists('c'), state.exists('b')") == [
        None,
        False,
        True,
    ]


def test_atomic_functions(rt: Runtime) -> None:
    assert run(
        rt,
        """
        local a = state.increment("n"); local b = state.increment("n", 10)
        local c = state.decrement("n", 2); local d = state.decrement("n")
        local e = state.append("s", "ab"); local f = state.append("s", "c")
        local g = state.compare_swap("s", "abc", "x"); local h = state.compare_swap("s", "y", "z")
        local i = state.set_if_absent("s", 1); local j = state.set_if_absent("new", 1, 30)
        local k = state.get_set("s", "w")
        return a, b, c, d, e, f, g, h, i, j, k, state.get("s"), math.type(d)
        """,
    ) == [1, 11, 9, 8, 2, 3, True, False, False, True, "x", "w", "integer"]


def test_update_runs_the_lua_function_in_one_transaction(rt: Runtime, store: Store) -> None:
    assert run(
        rt,
        """
        local v = state.update("c", function(old) return (old or 0) + 1 end)
        local t = state.update("t", function(old)
            old = old or {items = {}}
            table.insert(old.items, "x")
            return old
        end)
        return v, state.update("c", function(old) return old * 2 end), #t.items
        """,
    ) == [1, 2, 1]
    with pytest.raises(LuaError, match=r"state.update: cell:1: boom"):
        run(rt, 'state.update("c", function(old) error("boom") end)')
    assert store.get("c") == 2
    assert not store._conn().in_transaction
    assert run(rt, "return pcall(state.update, 'c', 5)")[0] is False


def test_lists(rt: Runtime) -> None:
    assert run(
        rt,
        """
        for _, v in ipairs({"a", "b", "c", "d"}) do state.list_push("q", v) end
        local r = state.list_range("q", 2, -1)
        return state.list_length("q"), r, state.list_pop("q"), state.list_shift("q"),
               state.list_length("q"), state.list_pop("missing")
        """,
    ) == [4, ["b", "c", "d"], "d", "a", 2, None]


def test_locks(rt: Runtime, db_path: Path, clock: FakeClock) -> None:
    other = Store(db_path, clock=clock, owner="someone-else")
    assert run(
        rt,
        """
        local ok, fence = state.try_lock("deploy", 10)
        local held, who = state.is_locked("deploy")
        local again, fence2 = state.lock("deploy", 1)
        local renewed = state.renew_lock("deploy", 30)
        local list = state.locks()
        local released = state.unlock("deploy")
        return ok, fence, held, who == list[1].owner, again, fence2, renewed, #list,
               list[1].name, released, (state.is_locked("deploy"))
        """,
    ) == [True, 1, True, True, True, 2, True, 1, "deploy", True, False]
    other.try_lock("busy", ttl_s=60)
    ok, message = run(rt, "return state.try_lock('busy')")
    assert ok is False and "held by someone-else" in message
    ok, message = run(rt, "return state.lock('busy', 0)")
    assert ok is False and message.startswith("timed out after 0 s: lock 'busy' is held")
    assert run(rt, "return state.is_locked('busy')") == [True, "someone-else"]


def test_with_lock(rt: Runtime, store: Store, db_path: Path, clock: FakeClock) -> None:
    assert run(
        rt,
        """
        return state.with_lock("w", function(fence)
            return "inside", fence, (state.is_locked("w"))
        end, 5)
        """,
    ) == ["inside", 1, True]
    assert not store.is_locked("w")
    with pytest.raises(LuaError, match="cell:1: kaput"):
        run(rt, 'state.with_lock("w", function() error("kaput") end)')
    assert not store.is_locked("w")
    Store(db_path, clock=clock, owner="x").try_lock("w", ttl_s=60)
    result = run(rt, "return state.with_lock('w', function() return 1 end, 0)")
    assert result[0] is None and "held by x" in result[1]


def test_stats(rt: Runtime, db_path: Path) -> None:
    stats = run(rt, "state.set('a', 1); return state.stats()")[0]
    assert stats["total_keys"] == 1 and stats["backend"] == "sqlite"
    assert stats["db_path"] == str(db_path)
    assert set(stats) == {
        "total_keys",
        "expired_keys",
        "active_locks",
        "db_size_bytes",
        "db_path",
        "backend",
    }


@pytest.mark.parametrize(
    "code, message",
    [
        ("state.set(1, 2)", "state.set: the key must be a string"),
        ("state.set('k', 1, -5)", "TTL must be a positive"),
        ("state.set('k', 'x'); state.increment('k')", "cannot increment 'k': it holds a string"),
        ("state.set('k', 'x'); state.list_push('k', 1)", "not a list"),
        ("state.set('k', {f = print})", "state.set: a table to store holds a"),
        ("state.with_lock('k', 5)", "must be a function"),
    ],
)
def test_misuse_raises_at_the_callers_line(rt: Runtime, code: str, message: str) -> None:
    with pytest.raises(LuaError, match=message) as info:
        run(rt, code)
    assert info.value.chunk == "cell" and info.value.line == 1


def test_store_failures_come_back_as_nil_and_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a sqlite database at all, just text" * 100)
    monkeypatch.setenv("SLOTHLAB_STATE_PATH", str(bad))
    rt = Runtime(modules=["state"])  # no store given: the default path, opened on first use
    value, message = run(rt, "return state.get('k')")
    assert value is None
    assert "is corrupt (file is not a database)" in message and str(bad) in message
    assert run(rt, "return state.set('k', 1)")[1] == message


def test_no_file_is_opened_until_state_is_used(slothlab_home: Path) -> None:
    rt = Runtime(modules=["state"])
    rt.execute("return 1")
    assert not (slothlab_home / "state.db").exists()
    assert rt.execute("state.set('k', 1); return state.get('k')") == [1]
    assert (slothlab_home / "state.db").exists()
