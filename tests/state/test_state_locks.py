"""Locks: leases, fencing tokens, owners, waiting."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from slothlab.errors import LockError
from slothlab.state import LockInfo, Store

from .conftest import FakeClock


@pytest.fixture
def pair(db_path: Path, clock: FakeClock) -> tuple[Store, Store]:
    return Store(db_path, clock=clock, owner="a"), Store(db_path, clock=clock, owner="b")


def test_owner_id_is_host_pid_random(store: Store) -> None:
    import os
    import socket

    host, pid, rand = store.owner.rsplit(":", 2)
    assert host == socket.gethostname() and pid == str(os.getpid())
    assert re.fullmatch(r"[0-9a-f]{8}", rand)
    other: list[str] = []
    t = threading.Thread(target=lambda: other.append(store.owner))
    t.start()
    t.join()
    assert other[0] != store.owner  # one owner per thread


def test_try_lock_excludes_other_owners(pair: tuple[Store, Store], clock: FakeClock) -> None:
    a, b = pair
    assert a.try_lock("L", ttl_s=10) == 1
    assert b.try_lock("L") is None
    assert a.is_locked("L") and b.is_locked("L")
    info = b.lock_info("L")
    assert info == LockInfo("L", "a", 1, clock.now + 10, 10)
    clock.advance(10)  # the lease ran out
    assert not b.is_locked("L")
    assert b.try_lock("L") == 2
    assert a.unlock("L") is False  # a's grant is gone: releasing must not free b's lock
    assert a.renew_lock("L", 10) is False
    assert b.lock_info("L").owner == "b"  # type: ignore[union-attr]
    assert b.unlock("L") is True
    assert a.try_lock("L") == 3


def test_fences_never_reset(pair: tuple[Store, Store]) -> None:
    a, b = pair
    fences = []
    for store in (a, b, a, b):
        fences.append(store.try_lock("L"))
        store.unlock("L")
    assert fences == [1, 2, 3, 4]
    assert a.try_lock("other") == 1  # one counter per name
    assert a.try_lock("L") == 5  # re-taking a held lock renews it under a new fence
    assert a.try_lock("L") == 6


def test_renew_matches_owner_and_fence(pair: tuple[Store, Store], clock: FakeClock) -> None:
    a, b = pair
    a.try_lock("L", ttl_s=5)
    clock.advance(4)
    assert b.renew_lock("L", 100) is False
    assert a.renew_lock("L", 5) is True
    clock.advance(4)
    assert a.is_locked("L")
    clock.advance(1)
    assert a.renew_lock("L", 5) is False  # an expired lease cannot be renewed
    assert not a.is_locked("L")


def test_locks_lists_unexpired_leases(pair: tuple[Store, Store], clock: FakeClock) -> None:
    a, b = pair
    a.try_lock("x", ttl_s=5)
    b.try_lock("y", ttl_s=50)
    assert [(i.name, i.owner, i.fence) for i in a.locks()] == [("x", "a", 1), ("y", "b", 1)]
    clock.advance(5)
    assert [i.name for i in a.locks()] == ["y"]
    assert a.locks()[0].as_dict()["ttl_s"] == 45


def test_lock_waits_for_release_by_another_thread(db_path: Path) -> None:
    holder, waiter = Store(db_path, owner="holder"), Store(db_path, owner="waiter")
    assert holder.try_lock("L", ttl_s=60) is not None
    released = threading.Event()

    def release_soon() -> None:
        deadline_reached = not released.wait(30)
        assert not deadline_reached
        holder.unlock("L")

    t = threading.Thread(target=release_soon)
    t.start()
    # the waiter sees the lock busy first, then is let go
    assert waiter.lock("L", timeout_s=0) is None
    released.set()
    fence = waiter.lock("L", timeout_s=10)
    t.join()
    assert fence == 2
    assert waiter.lock_info("L").owner == "waiter"  # type: ignore[union-attr]


def test_lock_times_out_on_a_monotonic_deadline(db_path: Path, clock: FakeClock) -> None:
    ticks = iter(range(1000))
    sleeps: list[float] = []
    waiter = Store(
        db_path,
        clock=clock,
        owner="w",
        monotonic=lambda: float(next(ticks)) * 0.01,
        sleep=sleeps.append,
    )
    Store(db_path, clock=clock, owner="h").try_lock("L", ttl_s=600)
    assert waiter.lock("L", timeout_s=0.2) is None
    assert 1 <= len(sleeps) <= 25
    assert all(0 < s <= 0.05 for s in sleeps)  # short backoff, never past the deadline


def test_with_lock_releases_on_error(pair: tuple[Store, Store]) -> None:
    a, b = pair
    assert a.with_lock("L", lambda fence: ("ok", fence)) == ("ok", 1)
    assert not a.is_locked("L")

    def fail(fence: int) -> None:
        assert b.is_locked("L")
        raise RuntimeError("inside")

    with pytest.raises(RuntimeError, match="inside"):
        a.with_lock("L", fail)
    assert not a.is_locked("L")
    b.try_lock("L")
    with pytest.raises(LockError, match="could not take lock 'L' within 0 s \\(held by b\\)"):
        a.with_lock("L", lambda fence: None, timeout_s=0)
    with a.locked("M") as fence:
        assert fence == 1 and a.is_locked("M")
    assert not a.is_locked("M")


def test_bad_lock_arguments(store: Store) -> None:
    with pytest.raises(ValueError, match="lock name"):
        store.try_lock("")
    with pytest.raises(ValueError, match="TTL"):
        store.try_lock("L", ttl_s=0)
    with pytest.raises(ValueError, match="timeout"):
        store.lock("L", timeout_s="soon")  # type: ignore[arg-type]
