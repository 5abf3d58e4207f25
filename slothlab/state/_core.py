"""Connections, transactions and error translation shared by the store's parts.

One SQLite connection per thread (``threading.local``), opened lazily with WAL,
``synchronous=NORMAL`` and a busy timeout, in autocommit mode (``isolation_level=None``): a
single statement is its own transaction, and every multi-statement read-modify-write runs in an
explicit ``BEGIN IMMEDIATE`` (a deferred transaction that upgrades to a write fails at once with
``database is locked``, whatever the busy timeout).
"""

from __future__ import annotations

import math
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self, TypeVar

from slothlab._types import Clock
from slothlab.errors import StateCorruptError, StateError, StateFullError
from slothlab.state import _schema as sql

__all__ = ["StoreCore"]

T = TypeVar("T")

_fork_generation = [0]


def _after_fork() -> None:
    # A connection must never cross a fork: the child opens its own.
    _fork_generation[0] += 1


os.register_at_fork(after_in_child=_after_fork)


class _Local(threading.local):
    conn: sqlite3.Connection | None = None
    generation: int = -1
    owner: str = ""
    owner_generation: int = -1


class StoreCore:
    """Connection handling, the clock and argument checks; the operations live in mix-ins."""

    backend = "sqlite"

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        clock: Clock = time.time,
        monotonic: Clock = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        owner: str | None = None,
        busy_timeout_s: float = 30.0,
        sweep_interval_s: float = 60.0,
        sweep_batch: int = 500,
    ) -> None:
        if path is None:
            from slothlab.config import load_settings

            path = load_settings().state_path()
        self.path = Path(path).expanduser()
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._fixed_owner = owner
        self._busy_timeout_s = busy_timeout_s
        self._sweep_interval_s = sweep_interval_s
        self._sweep_batch = sweep_batch
        self._next_sweep = 0.0
        self._local = _Local()
        # the fence of each grant this store took, by (owner, name): release and renew need it
        self._held: dict[tuple[str, str], int] = {}
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._schema_ready = False
        self._conn()  # open now: a corrupt or unreachable file fails here, not later

    # -- connections --------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        local = self._local
        conn = local.conn
        if conn is not None and local.generation == _fork_generation[0]:
            return conn
        conn = self._open()
        local.conn, local.generation = conn, _fork_generation[0]
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(
                f"cannot create the folder of state store {self.path}: {exc.strerror}; "
                "check the path and permissions"
            ) from None
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=256,
            )
        except sqlite3.Error as exc:
            raise self._translate(exc) from None
        try:
            self._configure(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise self._translate(exc) from None
        except BaseException:
            conn.close()
            raise
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _configure(self, conn: sqlite3.Connection) -> None:
        # Reading the schema first fails on a file that is not a database, before any write.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > sql.SCHEMA_VERSION:
            raise StateError(
                f"state store {self.path} was written by a newer slothlab (schema {version}); "
                "upgrade slothlab to open it"
            )
        conn.execute("PRAGMA journal_mode=WAL").fetchone()
        conn.execute("PRAGMA synchronous=NORMAL")
        if not self._schema_ready and version < sql.SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # one by one: executescript would COMMIT the open transaction first
                for statement in sql.SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {sql.SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite may have rolled back already (disk full)
                    conn.execute("ROLLBACK")
                raise
        self._schema_ready = True

    def close(self) -> None:
        """Close every connection this store opened (in any thread)."""
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = _Local()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions -------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any error, translated."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:  # SQLite may have rolled back already (disk full)
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise self._translate(exc) from None

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` with sqlite errors translated (for single statements)."""
        try:
            return fn(self._conn())
        except sqlite3.Error as exc:
            raise self._translate(exc) from None

    def _translate(self, exc: sqlite3.Error) -> StateError:
        text = str(exc)
        where = f"state store {self.path}"
        if "not a database" in text or "malformed" in text:
            return StateCorruptError(
                f"{where} is corrupt ({text}); it was left untouched: restore it from a backup, "
                "or move it aside to start an empty store"
            )
        if "disk is full" in text:
            return StateFullError(
                f"the disk holding {where} is full ({text}); nothing was written: free some "
                "space, then retry"
            )
        if "locked" in text or "busy" in text:
            return StateError(
                f"{where} stayed locked by another process for more than the "
                f"{self._busy_timeout_s:g} s busy timeout ({text}); retry, or find the stuck "
                "process"
            )
        if "unable to open" in text or "readonly" in text:
            return StateError(f"cannot open or write {where} ({text}); check path and permissions")
        return StateError(f"{where}: {text}")

    # -- clock, owner, sweep ------------------------------------------------------------------

    def _owner(self) -> str:
        if self._fixed_owner:
            return self._fixed_owner
        local = self._local
        if local.owner_generation != _fork_generation[0]:  # a forked child is a new owner
            local.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
            local.owner_generation = _fork_generation[0]
        return local.owner

    @property
    def owner(self) -> str:
        """This thread's lock owner id, ``host:pid:random`` (or the fixed one given)."""
        self._conn()
        return self._owner()

    def _maybe_sweep(self, now: float) -> None:
        if now >= self._next_sweep:
            self._next_sweep = now + self._sweep_interval_s
            self._sweep_batch_once(now)

    def _sweep_batch_once(self, now: float) -> int:
        def run(conn: sqlite3.Connection) -> int:
            removed = conn.execute(sql.SWEEP, (now, self._sweep_batch)).rowcount
            conn.execute(sql.SWEEP_LOCKS, (now,))
            return int(removed)

        return self._run(run)


def check_key(key: Any, what: str = "key") -> str:
    """``key`` if it is a non-empty string; a clear error otherwise."""
    if type(key) is str and key:
        return key
    if isinstance(key, str):
        raise ValueError(f"the {what} must not be empty")
    raise ValueError(f"the {what} must be a string, not {type(key).__name__}")


def check_ttl(ttl_s: Any) -> float:
    """A positive, finite number of seconds, as a float."""
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float):
        raise ValueError(f"a TTL must be a number of seconds, not {type(ttl_s).__name__}")
    if not ttl_s > 0 or math.isinf(ttl_s):
        raise ValueError(f"a TTL must be a positive, finite number of seconds, not {ttl_s}")
    return float(ttl_s)
