"""The SQLite state store: one file, many threads and processes.

>>> import tempfile, pathlib
>>> folder = tempfile.mkdtemp()
>>> store = Store(pathlib.Path(folder) / "state.db")
>>> store.set("deploy:version", "1.4.2", ttl_s=3600)
True
>>> store.increment("deploy:count"), store.get("deploy:version")
(1, '1.4.2')
>>> fence = store.try_lock("deploy")
>>> store.is_locked("deploy"), store.unlock("deploy")
(True, True)
>>> store.close()
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path

from slothlab.state import _schema as sql
from slothlab.state._kv import KVOps
from slothlab.state._lists import ListOps
from slothlab.state._locks import LockOps
from slothlab.state.base import StoreStats

__all__ = ["Store", "open_store"]


class Store(LockOps, ListOps, KVOps):
    """The persistent ``state`` store (SQLite in WAL mode).

    Share one Store between threads (each gets its own connection); other processes open
    their own on the same file. Every operation is atomic; the read-modify-writes
    (increment, compare_swap, append, update, get_set, set_if_absent, lists, lock grants) are
    safe across processes.

    Args:
        path: the database file (default: ``state_path()`` of the settings, i.e.
            ``<SLOTHLAB_HOME>/state.db`` or ``SLOTHLAB_STATE_PATH``); folders are created.
            ``":memory:"`` gives a private in-memory store per thread (for examples).
        clock: wall-clock seconds for TTLs and lock leases (tests pass a fake one).
        monotonic: the clock lock waits measure their deadline with.
        sleep: how lock waits sleep between polls.
        owner: a fixed lock owner id; default ``host:pid:random``, one per thread.
        busy_timeout_s: how long a write waits for another writer before failing.
        sweep_interval_s: how often (on writes) a batch of expired keys is deleted.
        sweep_batch: how many expired keys one sweep batch deletes.

    Raises:
        StateCorruptError: the file is not a SQLite database or is malformed (left untouched).
        StateError: the file cannot be opened or created.
    """

    def sweep(self) -> int:
        """Delete every expired key and lease now, in batches; returns the keys removed."""
        total = 0
        while True:
            removed = self._sweep_batch_once(self._clock())
            total += removed
            if removed < self._sweep_batch:
                return total

    def stats(self) -> StoreStats:
        """``{total_keys, expired_keys, active_locks, db_size_bytes, db_path, backend}``.

        ``total_keys`` counts live keys; ``expired_keys`` expired ones not yet swept.
        """
        now = self._clock()

        def counts(c: sqlite3.Connection) -> tuple[int, int, int]:
            live = c.execute(sql.COUNT_LIVE, (now,)).fetchone()[0]
            expired = c.execute(sql.COUNT_EXPIRED, (now,)).fetchone()[0]
            held = c.execute(sql.COUNT_LOCKS, (now,)).fetchone()[0]
            return live, expired, held

        live, expired, held = self._run(counts)
        return {
            "total_keys": live,
            "expired_keys": expired,
            "active_locks": held,
            "db_size_bytes": self._size_bytes(),
            "db_path": str(self.path),
            "backend": self.backend,
        }

    def _size_bytes(self) -> int:
        size = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                size += os.path.getsize(f"{self.path}{suffix}")
        return size

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"


_open: dict[Path, Store] = {}
_open_lock = threading.Lock()


def open_store(path: str | Path | None = None) -> Store:
    """The process-wide Store for ``path`` (default: the settings' state path), opened once.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.db"
    >>> open_store(path) is open_store(path)
    True
    """
    if path is None:
        from slothlab.config import load_settings

        path = load_settings().state_path()
    key = Path(path).expanduser().absolute()
    with _open_lock:
        store = _open.get(key)
        if store is None:
            store = _open[key] = Store(key)
        return store
