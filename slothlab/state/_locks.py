"""Leased locks with fencing tokens.

A grant takes the next token from the ``fences`` table (never reset, untouched by release), so
a resource that remembers the newest token it has seen can refuse a holder whose lease ran out
while it was paused. Renew and release match owner AND token. Lease expiry uses the wall clock
(it must survive restarts); waiting uses the monotonic clock.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from slothlab.errors import LockError
from slothlab.state import _schema as sql
from slothlab.state._core import StoreCore, check_key, check_ttl
from slothlab.state.base import LockInfo

__all__ = ["LockOps"]

_FIRST_WAIT_S = 0.001
_MAX_WAIT_S = 0.05


class LockOps(StoreCore):
    """try_lock / lock / unlock / renew_lock / with_lock / is_locked / locks."""

    def try_lock(self, name: str, ttl_s: float = 30.0) -> int | None:
        """Take ``name`` for ``ttl_s`` seconds if no one else holds it; its fence, or None.

        Taking a lock this owner already holds renews it with a new, larger fence.

        >>> from slothlab.state import Store
        >>> store = Store(":memory:")
        >>> store.try_lock("deploy"), store.try_lock("deploy"), store.unlock("deploy")
        (1, 2, True)
        """
        check_key(name, "lock name")
        ttl = check_ttl(ttl_s)
        owner = self._owner()
        now = self._clock()
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(sql.NEXT_FENCE, (name, owner, now)).fetchone()
                if row is not None:
                    conn.execute(sql.GRANT, (name, owner, row[0], now + ttl, now))
            except BaseException:
                if conn.in_transaction:  # SQLite may have rolled back already (disk full)
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise self._translate(exc) from None
        if row is None:
            return None
        self._held[owner, name] = row[0]
        return row[0]  # type: ignore[no-any-return]

    def lock(self, name: str, timeout_s: float = 30.0, ttl_s: float | None = None) -> int | None:
        """Wait up to ``timeout_s`` seconds for ``name``; its fence, or None on timeout.

        Polls with a short, growing, jittered backoff (1 ms up to 50 ms), never past the
        deadline. ``ttl_s`` defaults to 30 s.
        """
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float):
            raise ValueError(f"a lock timeout must be a number of seconds, not {timeout_s!r}")
        ttl = 30.0 if ttl_s is None else ttl_s
        deadline = self._monotonic() + max(float(timeout_s), 0.0)
        wait = _FIRST_WAIT_S
        while True:
            fence = self.try_lock(name, ttl)
            if fence is not None:
                return fence
            left = deadline - self._monotonic()
            if left <= 0:
                return None
            self._sleep(min(left, wait * random.uniform(0.5, 1.0)))
            wait = min(wait * 2, _MAX_WAIT_S)

    def unlock(self, name: str) -> bool:
        """Release ``name`` if this owner still holds the grant it took; True when released."""
        check_key(name, "lock name")
        owner = self._owner()
        fence = self._held.pop((owner, name), None)
        if fence is None:
            return False
        return bool(self._run(lambda c: c.execute(sql.RELEASE, (name, owner, fence)).rowcount))

    def renew_lock(self, name: str, ttl_s: float = 30.0) -> bool:
        """Extend this owner's unexpired lease on ``name`` to ``ttl_s`` from now."""
        check_key(name, "lock name")
        ttl = check_ttl(ttl_s)
        owner = self._owner()
        fence = self._held.get((owner, name))
        if fence is None:
            return False
        now = self._clock()
        params = (now + ttl, name, owner, fence, now)
        return bool(self._run(lambda c: c.execute(sql.RENEW, params).rowcount))

    def with_lock(
        self,
        name: str,
        fn: Callable[[int], Any],
        timeout_s: float = 30.0,
        ttl_s: float | None = None,
    ) -> Any:
        """Run ``fn(fence)`` holding ``name``; released afterwards, even when ``fn`` raises.

        Raises:
            LockError: the lock was not free within ``timeout_s``.

        >>> from slothlab.state import Store
        >>> Store(":memory:").with_lock("job", lambda fence: f"ran with fence {fence}")
        'ran with fence 1'
        """
        with self.locked(name, timeout_s, ttl_s) as fence:
            return fn(fence)

    @contextmanager
    def locked(
        self, name: str, timeout_s: float = 30.0, ttl_s: float | None = None
    ) -> Iterator[int]:
        """``with store.locked("job") as fence:`` the context-manager face of :meth:`with_lock`."""
        fence = self.lock(name, timeout_s, ttl_s)
        if fence is None:
            info = self.lock_info(name)
            holder = f" (held by {info.owner})" if info else ""
            raise LockError(f"could not take lock {name!r} within {timeout_s:g} s{holder}")
        try:
            yield fence
        finally:
            self.unlock(name)

    def lock_info(self, name: str) -> LockInfo | None:
        """The unexpired lease on ``name``, or None."""
        check_key(name, "lock name")
        now = self._clock()
        row = self._run(lambda c: c.execute(sql.LOCK_INFO, (name, now)).fetchone())
        return None if row is None else LockInfo(row[0], row[1], row[2], row[3], row[3] - now)

    def is_locked(self, name: str) -> bool:
        """True when someone holds an unexpired lease on ``name``."""
        return self.lock_info(name) is not None

    def locks(self) -> list[LockInfo]:
        """Every unexpired lease, by name."""
        now = self._clock()
        rows = self._run(lambda c: c.execute(sql.LOCKS, (now,)).fetchall())
        return [LockInfo(r[0], r[1], r[2], r[3], r[3] - now) for r in rows]
