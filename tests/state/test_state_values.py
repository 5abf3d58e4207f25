"""Typed values, keys, TTLs: the plain operations of the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from slothlab.errors import StateTypeError
from slothlab.state import StateBackend, Store

from .conftest import FakeClock

VALUES = [
    None,
    True,
    False,
    0,
    2,
    -(2**63),
    2**63 - 1,
    2.0,
    -0.5,
    float("inf"),
    "",
    "héllo",
    b"\xff\x00raw",
    [],
    {},
    [1, 2.0, "x", None, True],
    {"a": {"b": [1, {"c": None}]}, "z": 1.5},
]


def test_store_meets_the_backend_contract(store: Store) -> None:
    assert isinstance(store, StateBackend)


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_values_come_back_with_their_type(store: Store, value: object) -> None:
    store.set("k", value)
    got = store.get("k", "default")
    assert got == value
    assert type(got) is type(value)


def test_values_survive_reopening(db_path: Path, clock: FakeClock) -> None:
    with Store(db_path, clock=clock) as s:
        for i, value in enumerate(VALUES):
            s.set(f"k{i}", value)
    with Store(db_path, clock=clock) as s:
        for i, value in enumerate(VALUES):
            assert s.get(f"k{i}") == value
            assert type(s.get(f"k{i}")) is type(value)


def test_table_keys_become_strings(store: Store) -> None:
    store.set("t", {1: "a", "b": 2})
    assert store.get("t") == {"1": "a", "b": 2}


@pytest.mark.parametrize(
    "value, message",
    [
        (float("nan"), "NaN"),
        (2**64, "64 bits"),
        (object(), "cannot store a object"),
        ({"f": print}, "holds a builtin_function_or_method"),
        ([b"\xff"], "binary string"),
    ],
)
def test_unstorable_values_are_refused(store: Store, value: object, message: str) -> None:
    with pytest.raises(StateTypeError, match=message):
        store.set("k", value)
    assert not store.exists("k")


@pytest.mark.parametrize("key", ["", 1, None, b"k"])
def test_bad_keys_are_refused(store: Store, key: object) -> None:
    with pytest.raises(ValueError, match="key must"):
        store.set(key, 1)  # type: ignore[arg-type]


def test_missing_key_gives_default_and_stored_nil_gives_nil(store: Store) -> None:
    assert store.get("missing") is None
    assert store.get("missing", 7) == 7
    store.set("nil", None)
    assert store.exists("nil")
    assert store.get("nil", 7) is None


def test_delete_exists(store: Store) -> None:
    store.set("a", 1)
    assert store.exists("a")
    assert store.delete("a") is True
    assert not store.exists("a")
    assert store.delete("a") is True


def test_keys_and_clear_with_globs(store: Store, clock: FakeClock) -> None:
    for key in ["job:1", "job:2", "job:10", "other", "jobx"]:
        store.set(key, 1)
    store.set("job:old", 1, ttl_s=1)
    clock.advance(2)
    assert store.keys() == ["job:1", "job:10", "job:2", "jobx", "other"]
    assert store.keys("job:*") == ["job:1", "job:10", "job:2"]
    assert store.keys("job:?") == ["job:1", "job:2"]
    assert store.keys("nothing*") == []
    assert store.clear("job:*") == 3  # the expired job:old is removed but not counted
    assert store.keys() == ["jobx", "other"]
    assert store.clear() == 2
    assert store.stats()["total_keys"] == 0
    assert store.stats()["expired_keys"] == 0


def test_ttl_expires_at_once(store: Store, clock: FakeClock) -> None:
    store.set("k", "v", ttl_s=10)
    assert store.get_ttl("k") == 10
    clock.advance(9.5)
    assert store.get("k") == "v"
    assert store.get_ttl("k") == pytest.approx(0.5)
    clock.advance(0.5)
    assert store.get("k") is None
    assert not store.exists("k")
    assert store.get_ttl("k") == -2
    assert store.keys() == []


def test_set_with_ttl_set_ttl_persist(store: Store, clock: FakeClock) -> None:
    assert store.get_ttl("k") == -2
    assert store.set_ttl("k", 5) is False
    store.set_with_ttl("k", 1, 5)
    assert store.set_ttl("k", 100) is True
    assert store.get_ttl("k") == 100
    assert store.persist("k") is True
    assert store.persist("k") is False
    assert store.get_ttl("k") == -1
    clock.advance(1000)
    assert store.get("k") == 1
    store.set("k", 2)  # a plain set removes a TTL
    assert store.get_ttl("k") == -1


@pytest.mark.parametrize("ttl", [0, -1, "10", float("inf"), float("nan"), True])
def test_bad_ttls_are_refused(store: Store, ttl: object) -> None:
    with pytest.raises(ValueError, match="TTL"):
        store.set("k", 1, ttl_s=ttl)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="TTL"):
        store.set_with_ttl("k", 1, None)  # type: ignore[arg-type]


def test_sweep_deletes_expired_rows_in_batches(db_path: Path, clock: FakeClock) -> None:
    with Store(db_path, clock=clock, sweep_batch=7, sweep_interval_s=1e9) as s:
        for i in range(30):
            s.set(f"k{i}", i, ttl_s=1 + (i % 2))
        s.set("keep", 1)
        clock.advance(1.5)
        assert s.stats()["expired_keys"] == 15
        assert s.stats()["total_keys"] == 16
        assert s.sweep() == 15
        assert s.stats()["expired_keys"] == 0
        assert s.stats()["total_keys"] == 16


def test_writes_sweep_on_their_own(db_path: Path, clock: FakeClock) -> None:
    with Store(db_path, clock=clock, sweep_batch=100, sweep_interval_s=60) as s:
        for i in range(10):
            s.set(f"k{i}", i, ttl_s=1)
        clock.advance(61)
        s.set("trigger", 1)
        assert s.stats()["expired_keys"] == 0


def test_stats(store: Store, clock: FakeClock, db_path: Path) -> None:
    store.set("a", 1)
    store.set("b", 1, ttl_s=1)
    store.set("c", 1, ttl_s=10)
    store.try_lock("L")
    clock.advance(2)
    stats = store.stats()
    assert stats == {
        "total_keys": 2,
        "expired_keys": 1,
        "active_locks": 1,
        "db_size_bytes": stats["db_size_bytes"],
        "db_path": str(db_path),
        "backend": "sqlite",
    }
    assert stats["db_size_bytes"] > 0


def test_default_path_comes_from_settings(slothlab_home: Path) -> None:
    with Store() as s:
        s.set("k", 1)
        assert s.path == slothlab_home / "state.db"
    assert (slothlab_home / "state.db").exists()


def test_state_path_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "deep" / "er" / "s.db"
    monkeypatch.setenv("SLOTHLAB_STATE_PATH", str(target))
    with Store() as s:
        assert s.path == target
        s.set("k", 1)
    assert target.exists()


def test_wal_and_synchronous_normal(store: Store) -> None:
    conn = store._conn()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.isolation_level is None


def test_threads_share_a_store(store: Store) -> None:
    import threading

    def work() -> None:
        for _ in range(200):
            store.increment("n")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get("n") == 800
