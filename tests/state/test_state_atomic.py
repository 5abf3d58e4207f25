"""The atomic read-modify-writes and lists."""

from __future__ import annotations

import pytest

from slothlab.errors import StateError, StateTypeError
from slothlab.state import Store

from .conftest import FakeClock


def test_increment_and_decrement_keep_integers(store: Store) -> None:
    assert store.increment("n") == 1
    assert store.increment("n", 41) == 42
    assert type(store.get("n")) is int
    assert store.decrement("n") == 41
    assert store.decrement("n", 50) == -9
    assert store.decrement("missing") == -1


def test_increment_with_floats(store: Store) -> None:
    assert store.increment("f", 0.5) == 0.5
    assert store.increment("f", 1) == 1.5
    store.set("i", 2)
    result = store.increment("i", 1.0)
    assert result == 3.0 and type(result) is float
    assert type(store.get("i")) is float
    store.set("whole", 2.0)
    assert type(store.increment("whole")) is float


def test_increment_of_expired_key_restarts_from_zero(store: Store, clock: FakeClock) -> None:
    store.set("n", 100, ttl_s=5)
    assert store.increment("n") == 101
    assert store.get_ttl("n") == 5  # a live key keeps its TTL
    clock.advance(6)
    assert store.increment("n") == 1
    assert store.get_ttl("n") == -1
    store.set("s", "text", ttl_s=1)
    clock.advance(2)
    assert store.increment("s") == 1  # an expired non-number is just gone


@pytest.mark.parametrize("value", ["12", True, None, [1], {"a": 1}, b"x"])
def test_increment_of_non_number_is_an_error(store: Store, value: object) -> None:
    store.set("k", value)
    with pytest.raises(StateTypeError, match="cannot increment 'k': it holds a"):
        store.increment("k")
    assert store.get("k") == value


def test_increment_refuses_overflow_and_bad_deltas(store: Store) -> None:
    store.set("big", 2**63 - 1)
    with pytest.raises(StateError, match="overflows"):
        store.increment("big")
    assert store.get("big") == 2**63 - 1
    for delta in ["1", True, None]:
        with pytest.raises(StateTypeError, match="must be a number"):
            store.increment("n", delta)  # type: ignore[arg-type]


def test_append(store: Store, clock: FakeClock) -> None:
    assert store.append("s", "ab") == 2
    assert store.append("s", "ç€") == 4  # characters, not bytes
    assert store.append("s", 2.5) == 7
    assert store.get("s") == "abç€2.5"
    store.set("n", 1)
    with pytest.raises(StateTypeError, match="it holds a integer, not a string"):
        store.append("n", "x")
    with pytest.raises(StateTypeError, match="needs a string"):
        store.append("s", ["x"])  # type: ignore[arg-type]
    store.set("t", "old", ttl_s=1)
    clock.advance(1)
    assert store.append("t", "new") == 3


def test_compare_swap(store: Store, clock: FakeClock) -> None:
    assert store.compare_swap("k", None, 1) is True  # missing matches nil
    assert store.compare_swap("k", None, 2) is False
    assert store.compare_swap("k", 2, 3) is False
    assert store.compare_swap("k", 1.0, "one") is True  # numbers compare by value
    assert store.compare_swap("k", "uno", 2) is False
    assert store.compare_swap("k", "one", {"b": 1, "a": [1]}) is True
    assert store.compare_swap("k", {"a": [1], "b": 1}, True) is True  # tables by content
    assert store.compare_swap("k", 1, False) is False  # true is not 1
    assert store.compare_swap("k", True, None) is True
    assert store.exists("k") and store.get("k", 9) is None
    assert store.compare_swap("k", None, b"\x00") is True  # stored nil matches nil
    assert store.get("k") == b"\x00"


def test_compare_swap_keeps_ttl_and_ignores_expired(store: Store, clock: FakeClock) -> None:
    store.set("k", 1, ttl_s=10)
    assert store.compare_swap("k", 1, 2)
    assert store.get_ttl("k") == 10
    clock.advance(10)
    assert store.compare_swap("k", 2, 3) is False
    assert store.compare_swap("k", None, 4) is True
    assert store.get_ttl("k") == -1


def test_set_if_absent(store: Store, clock: FakeClock) -> None:
    assert store.set_if_absent("k", "first", ttl_s=5) is True
    assert store.set_if_absent("k", "second") is False
    assert store.get("k") == "first"
    clock.advance(5)
    assert store.set_if_absent("k", "third") is True
    assert store.get("k") == "third"
    assert store.get_ttl("k") == -1


def test_get_set(store: Store) -> None:
    assert store.get_set("k", 1) is None
    assert store.get_set("k", [2]) == 1
    assert store.get("k") == [2]


def test_update(store: Store, clock: FakeClock) -> None:
    assert store.update("c", lambda v: (v or 0) + 1) == 1
    assert store.update("c", lambda v: v * 10) == 10
    store.set("t", {"n": 1}, ttl_s=30)
    assert store.update("t", lambda v: {**v, "m": 2}) == {"n": 1, "m": 2}
    assert store.get_ttl("t") == 30


def test_update_rolls_back_when_fn_raises(store: Store) -> None:
    store.set("k", 1)

    def boom(value: object) -> object:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError, match="no"):
        store.update("k", boom)
    with pytest.raises(StateTypeError):
        store.update("k", lambda v: object())
    assert store.get("k") == 1
    store.set("after", 2)  # the connection is usable: no transaction left open
    assert not store._conn().in_transaction


def test_lists(store: Store) -> None:
    assert store.list_length("q") == 0
    assert store.list_pop("q") is None
    assert store.list_shift("q") is None
    assert store.list_range("q", 1, -1) == []
    for i, item in enumerate(["a", 2, {"x": [1]}, None, 2.0], 1):
        assert store.list_push("q", item) == i
    assert store.list_length("q") == 5
    assert store.list_range("q") == ["a", 2, {"x": [1]}, None, 2.0]
    assert store.list_range("q", 2, 3) == [2, {"x": [1]}]
    assert store.list_range("q", -2, -1) == [None, 2.0]
    assert store.list_range("q", 0, 1) == ["a"]
    assert store.list_range("q", 4, 100) == [None, 2.0]
    assert store.list_range("q", 3, 2) == []
    assert store.list_shift("q") == "a"
    pop = store.list_pop("q")
    assert pop == 2.0 and type(pop) is float
    assert store.get("q") == [2, {"x": [1]}, None]
    assert store.list_pop("q") is None  # the nil item
    assert store.list_length("q") == 2


def test_list_operations_on_non_lists_are_errors(store: Store) -> None:
    store.set("s", "text")
    store.set("t", {"a": 1})
    for key in ("s", "t"):
        with pytest.raises(StateTypeError, match="not a list"):
            store.list_push(key, 1)
        with pytest.raises(StateTypeError, match="not a list"):
            store.list_length(key)
    with pytest.raises(ValueError, match="integer"):
        store.list_range("s", "1")  # type: ignore[arg-type]
    with pytest.raises(StateTypeError):
        store.list_push("q", object())
    assert store.get("s") == "text"


def test_list_keeps_ttl(store: Store, clock: FakeClock) -> None:
    store.set("q", [1], ttl_s=10)
    store.list_push("q", 2)
    assert store.get_ttl("q") == 10
    clock.advance(10)
    assert store.list_push("q", 3) == 1
