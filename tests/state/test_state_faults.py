"""Faults: a corrupt file and a full disk fail closed, with the file left as it was."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from slothlab.errors import StateCorruptError, StateFullError
from slothlab.lua import Runtime
from slothlab.state import Store


def test_garbage_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    garbage = bytes(range(256)) * 64
    path.write_bytes(garbage)
    with pytest.raises(StateCorruptError) as info:
        Store(path)
    message = str(info.value)
    assert str(path) in message and "file is not a database" in message
    assert "left untouched" in message and "restore it from a backup" in message
    assert path.read_bytes() == garbage
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db"]  # no -wal, no -shm


def test_malformed_pages_are_reported_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store(path) as store:
        for i in range(400):
            store.set(f"key:{i:04d}", "v" * 200)
        store._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(2 * page, len(data) - page, 3 * page):  # smash b-tree pages
        data[offset : offset + 64] = b"\xa5" * 64
    path.write_bytes(bytes(data))
    before = path.read_bytes()
    with (
        pytest.raises(StateCorruptError, match=r"malformed|not a database") as info,
        Store(path) as store,
    ):
        store.keys()
        for i in range(400):
            store.get(f"key:{i:04d}")
    assert str(path) in str(info.value)
    assert path.read_bytes() == before


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs (we run as root); skips nothing: mounting must work where tests run."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        # No mount permission (an unprivileged container): let the caller fall back to a page
        # cap, which makes SQLite fail with the same SQLITE_FULL "database or disk is full".
        yield tmp_path / "capped"
        return
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(store: Store, capped: bool) -> tuple[int, StateFullError]:
    if capped:
        store._conn().execute("PRAGMA max_page_count = 100")
    for i in range(10_000):
        try:
            store.set(f"blob:{i}", "x" * 20_000)
        except StateFullError as exc:
            return i, exc
    raise AssertionError("the disk never filled up")


def test_full_disk_fails_closed_and_the_file_still_opens(tiny_disk: Path) -> None:
    capped = tiny_disk.name == "capped"
    path = tiny_disk / "state.db"
    store = Store(path)
    store.set("before", {"ok": True})
    written, error = _fill(store, capped)
    assert written > 0
    message = str(error)
    assert str(path) in message and "database or disk is full" in message
    assert "free some space" in message
    assert store.get(f"blob:{written}") is None  # the failed write left nothing behind
    with pytest.raises(StateFullError):
        store.update("before", lambda v: {**v, "big": "y" * 600_000})
    assert not store._conn().in_transaction
    assert store.get("before") == {"ok": True}
    rt = Runtime(modules=["state"], context={"state_store": store})
    value, lua_message = rt.execute("return state.set('lua', string.rep('z', 600000))")
    assert value is None and "database or disk is full" in lua_message
    store.close()
    with Store(path) as again:  # reopens fine, with everything written before the error
        assert again.get("before") == {"ok": True}
        assert again.get(f"blob:{written - 1}") == "x" * 20_000
        if not capped:
            with pytest.raises(StateFullError):  # still full: even a delete needs WAL space
                again.delete(f"blob:{written - 1}")
            remount = ["mount", "-o", "remount,size=4m", str(tiny_disk)]
            subprocess.run(remount, check=True)
        assert again.delete(f"blob:{written - 1}")  # with space again, writes work
        assert again.set("after", 1)
        assert again._conn().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
