"""Key/value operations: get/set/delete, TTLs and the atomic read-modify-writes."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from slothlab.errors import StateError, StateTypeError
from slothlab.state import _schema as sql
from slothlab.state._codec import decode, encode, type_name
from slothlab.state._core import StoreCore, check_key, check_ttl

__all__ = ["KVOps"]


def _number(value: Any, what: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StateTypeError(f"{what} must be a number, not {type(value).__name__}")
    return value


class KVOps(StoreCore):
    """Typed values with TTLs."""

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when it is missing or expired.

        >>> from slothlab.state import Store
        >>> store = Store(":memory:")
        >>> store.set("n", 2) and store.get("n"), store.get("nope", "dflt")
        (2, 'dflt')
        """
        check_key(key)
        try:
            row = self._conn().execute(sql.GET, (key, self._clock())).fetchone()
        except sqlite3.Error as exc:
            raise self._translate(exc) from None
        if row is None:
            return default
        return decode(row[0], row[1])

    def set(self, key: str, value: Any, ttl_s: float | None = None) -> bool:
        """Store ``value`` under ``key`` (for ``ttl_s`` seconds, or for good); returns True."""
        check_key(key)
        tag, raw = encode(value)
        now = self._clock()
        exp = None if ttl_s is None else now + check_ttl(ttl_s)
        try:
            self._conn().execute(sql.SET, (key, tag, raw, exp))
        except sqlite3.Error as exc:
            raise self._translate(exc) from None
        self._maybe_sweep(now)
        return True

    def set_with_ttl(self, key: str, value: Any, ttl_s: float) -> bool:
        """:meth:`set` with a TTL that must be given."""
        check_ttl(ttl_s)
        return self.set(key, value, ttl_s)

    def delete(self, key: str) -> bool:
        """Remove ``key`` (missing is fine); returns True."""
        check_key(key)
        self._run(lambda c: c.execute(sql.DELETE, (key,)))
        return True

    def exists(self, key: str) -> bool:
        """True when ``key`` holds a live value (nil counts)."""
        check_key(key)
        now = self._clock()
        return self._run(lambda c: c.execute(sql.EXISTS, (key, now)).fetchone()) is not None

    def keys(self, pattern: str = "*") -> list[str]:
        """Sorted names of live keys matching the glob ``pattern`` (``*``, ``?``, ``[abc]``).

        >>> from slothlab.state import Store
        >>> store = Store(":memory:")
        >>> _ = store.set("job:2", 1), store.set("job:1", 1), store.set("other", 1)
        >>> store.keys("job:*")
        ['job:1', 'job:2']
        """
        check_key(pattern, "pattern")
        now = self._clock()
        rows = self._run(lambda c: c.execute(sql.KEYS, (pattern, now)).fetchall())
        return [r[0] for r in rows]

    def clear(self, pattern: str = "*") -> int:
        """Delete the keys matching ``pattern``; returns how many live ones were removed."""
        check_key(pattern, "pattern")
        now = self._clock()
        rows = self._run(lambda c: c.execute(sql.CLEAR, (pattern,)).fetchall())
        return sum(1 for (exp,) in rows if exp is None or exp > now)

    # -- TTL ----------------------------------------------------------------------------------

    def set_ttl(self, key: str, ttl_s: float) -> bool:
        """Give a live key ``ttl_s`` more seconds to live; False when it is missing."""
        check_key(key)
        ttl = check_ttl(ttl_s)
        now = self._clock()
        exp = now + ttl
        return bool(self._run(lambda c: c.execute(sql.SET_TTL, (exp, key, now)).rowcount))

    def get_ttl(self, key: str) -> float:
        """Seconds left; ``-1`` when the key has no TTL, ``-2`` when it is missing.

        >>> from slothlab.state import Store
        >>> store = Store(":memory:", clock=lambda: 100.0)
        >>> _ = store.set("a", 1, ttl_s=30), store.set("b", 1)
        >>> store.get_ttl("a"), store.get_ttl("b"), store.get_ttl("c")
        (30.0, -1, -2)
        """
        check_key(key)
        now = self._clock()
        row = self._run(lambda c: c.execute(sql.GET_EXP, (key, now)).fetchone())
        if row is None:
            return -2
        return -1 if row[0] is None else float(row[0]) - now

    def persist(self, key: str) -> bool:
        """Remove the TTL of ``key``; True when it had one."""
        check_key(key)
        now = self._clock()
        return bool(self._run(lambda c: c.execute(sql.PERSIST, (key, now)).rowcount))

    # -- atomic read-modify-writes ------------------------------------------------------------

    def increment(self, key: str, delta: int | float = 1) -> int | float:
        """Add ``delta`` atomically and return the new value (a missing key counts as 0).

        Integers stay integers; a float on either side gives a float. A key holding anything
        but a number raises :class:`~slothlab.errors.StateTypeError`.

        >>> from slothlab.state import Store
        >>> store = Store(":memory:")
        >>> store.increment("hits"), store.increment("hits", 5), store.decrement("hits", 0.5)
        (1, 6, 5.5)
        """
        check_key(key)
        _number(delta, "the increment")
        tag, raw = encode(delta)
        now = self._clock()
        try:
            row = self._conn().execute(sql.INCREMENT, (key, tag, raw, now)).fetchone()
        except sqlite3.Error as exc:
            raise self._translate(exc) from None
        if row is None:
            return self._increment_refused(key, tag, raw, now)
        self._maybe_sweep(now)
        return row[0]  # type: ignore[no-any-return]

    def _increment_refused(self, key: str, tag: str, raw: Any, now: float) -> int | float:
        """Why the one-statement increment changed nothing (or, if that changed, do it)."""
        with self._write() as conn:
            row = conn.execute(sql.GET, (key, now)).fetchone()
            if row is not None and row[0] not in ("i", "f"):
                raise StateTypeError(
                    f"cannot increment {key!r}: it holds a {type_name(row[0], row[1])}, "
                    "not a number"
                )
            if row is not None and row[0] == "i" and tag == "i":
                raise StateError(
                    f"cannot increment {key!r}: {row[1]} + {raw} overflows a 64-bit integer"
                )
            result = conn.execute(sql.INCREMENT, (key, tag, raw, now)).fetchone()
        return result[0]  # type: ignore[no-any-return]

    def decrement(self, key: str, delta: int | float = 1) -> int | float:
        """Subtract ``delta`` atomically (see :meth:`increment`)."""
        return self.increment(key, -_number(delta, "the decrement"))

    def append(self, key: str, text: str) -> int:
        """Append ``text`` to the string at ``key`` (missing: ""); returns the new length.

        The length counts characters. Numbers are appended as Lua would print them.

        >>> from slothlab.state import Store
        >>> store = Store(":memory:")
        >>> store.append("log", "ab"), store.append("log", 1), store.get("log")
        (2, 3, 'ab1')
        """
        check_key(key)
        if isinstance(text, int | float) and not isinstance(text, bool):
            text = str(text)
        if not isinstance(text, str):
            raise StateTypeError(f"append needs a string, not {type(text).__name__}")
        now = self._clock()
        row = self._run(lambda c: c.execute(sql.APPEND, (key, text, now)).fetchone())
        if row is None:
            found = self._run(lambda c: c.execute(sql.GET, (key, now)).fetchone())
            kind = type_name(found[0], found[1]) if found else "changing value"
            raise StateTypeError(f"cannot append to {key!r}: it holds a {kind}, not a string")
        return int(row[0])

    def compare_swap(self, key: str, old: Any, new: Any) -> bool:
        """Set ``key`` to ``new`` only if it holds ``old`` now, atomically; True when swapped.

        ``old=None`` matches a missing, expired or nil key. Numbers compare by value
        (``1 == 1.0``), tables by content. A TTL the key has is kept.

        >>> from slothlab.state import Store
        >>> store = Store(":memory:")
        >>> store.compare_swap("v", None, 1), store.compare_swap("v", 5, 2), store.get("v")
        (True, False, 1)
        """
        check_key(key)
        new_tag, new_raw = encode(new)
        now = self._clock()
        if old is None:
            params: tuple[Any, ...] = (key, new_tag, new_raw, now)
            return self._run(lambda c: c.execute(sql.CAS_FROM_NIL, params).fetchone()) is not None
        old_tag, old_raw = encode(old)
        if old_tag in ("i", "f"):
            query, params = sql.CAS_NUMBER, (new_tag, new_raw, key, old_raw, now)
        else:
            query, params = sql.CAS_TYPED, (new_tag, new_raw, key, old_tag, old_raw, now)
        try:
            return self._conn().execute(query, params).rowcount == 1
        except sqlite3.Error as exc:
            raise self._translate(exc) from None

    def set_if_absent(self, key: str, value: Any, ttl_s: float | None = None) -> bool:
        """Store ``value`` only when ``key`` is missing or expired; True when stored."""
        check_key(key)
        tag, raw = encode(value)
        now = self._clock()
        exp = None if ttl_s is None else now + check_ttl(ttl_s)
        params = (key, tag, raw, exp, now)
        return self._run(lambda c: c.execute(sql.SET_IF_ABSENT, params).fetchone()) is not None

    def get_set(self, key: str, value: Any) -> Any:
        """Store ``value`` (without a TTL) and return the previous value (None when missing)."""
        check_key(key)
        tag, raw = encode(value)
        now = self._clock()
        with self._write() as conn:
            row = conn.execute(sql.GET, (key, now)).fetchone()
            conn.execute(sql.SET, (key, tag, raw, None))
        return None if row is None else decode(row[0], row[1])

    def update(self, key: str, fn: Callable[[Any], Any]) -> Any:
        """Replace the value with ``fn(value)`` in one transaction; returns the new value.

        ``fn`` gets None for a missing key. Other writers wait until it returns (keep it
        short); if it raises, nothing changes. A TTL the key has is kept.

        >>> from slothlab.state import Store
        >>> store = Store(":memory:")
        >>> store.update("seen", lambda v: (v or []) + ["a"])
        ['a']
        """
        check_key(key)
        if not callable(fn):
            raise ValueError(f"update needs a function, not {type(fn).__name__}")
        now = self._clock()
        with self._write() as conn:
            row = conn.execute(sql.GET_FULL, (key, now)).fetchone()
            new = fn(None if row is None else decode(row[0], row[1]))
            tag, raw = encode(new)
            conn.execute(sql.SET, (key, tag, raw, None if row is None else row[2]))
        return new
