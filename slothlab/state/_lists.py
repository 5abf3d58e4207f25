"""Lists: a key holding a JSON array, changed in one ``BEGIN IMMEDIATE`` transaction each."""

from __future__ import annotations

import sqlite3
from typing import Any

from slothlab.errors import StateTypeError
from slothlab.state import _schema as sql
from slothlab.state._codec import canonical_json, decode, type_name
from slothlab.state._core import StoreCore, check_key

__all__ = ["ListOps"]


class ListOps(StoreCore):
    """Lists stored as tables (``get`` returns them as Python lists / Lua arrays)."""

    def _read_list(self, conn: sqlite3.Connection, key: str, now: float) -> list[Any] | None:
        row = conn.execute(sql.GET, (key, now)).fetchone()
        if row is None:
            return None
        value = decode(row[0], row[1])
        if not isinstance(value, list):
            raise StateTypeError(
                f"{key!r} holds a {type_name(row[0], row[1])}, not a list; "
                "list operations need a list"
            )
        return value

    def _pop(self, key: str, index: int) -> Any:
        check_key(key)
        now = self._clock()
        with self._write() as conn:
            items = self._read_list(conn, key, now)
            if not items:
                return None
            item = items.pop(index)
            conn.execute(sql.WRITE_KEEP_TTL, ("j", canonical_json(items), key))
        return item

    def list_push(self, key: str, item: Any) -> int:
        """Add ``item`` at the end of the list at ``key`` (missing: a new list); new length.

        >>> from slothlab.state import Store
        >>> store = Store(":memory:")
        >>> store.list_push("q", "a"), store.list_push("q", {"n": 1}), store.get("q")
        (1, 2, ['a', {'n': 1}])
        """
        check_key(key)
        canonical_json([item])  # refuse what cannot be stored before taking the write lock
        now = self._clock()
        with self._write() as conn:
            items = self._read_list(conn, key, now)
            if items is None:
                conn.execute(sql.SET, (key, "j", canonical_json([item]), None))
                return 1
            items.append(item)
            conn.execute(sql.WRITE_KEEP_TTL, ("j", canonical_json(items), key))
        return len(items)

    def list_pop(self, key: str) -> Any:
        """Remove and return the last item (None when the list is empty or missing)."""
        return self._pop(key, -1)

    def list_shift(self, key: str) -> Any:
        """Remove and return the first item (None when the list is empty or missing).

        >>> from slothlab.state import Store
        >>> store = Store(":memory:")
        >>> _ = [store.list_push("q", x) for x in (1, 2, 3)]
        >>> store.list_shift("q"), store.list_pop("q"), store.list_length("q")
        (1, 3, 1)
        """
        return self._pop(key, 0)

    def list_length(self, key: str) -> int:
        """The number of items (0 for a missing key)."""
        check_key(key)
        now = self._clock()
        items = self._run(lambda c: self._read_list(c, key, now))
        return 0 if items is None else len(items)

    def list_range(self, key: str, first: int = 1, last: int = -1) -> list[Any]:
        """Items ``first`` to ``last``, inclusive, counted from 1 as in Lua; negative counts
        from the end (-1 is the last item).

        >>> from slothlab.state import Store
        >>> store = Store(":memory:")
        >>> _ = [store.list_push("q", x) for x in "abcde"]
        >>> store.list_range("q", 2, 3), store.list_range("q", -2), store.list_range("q", 4, 2)
        (['b', 'c'], ['d', 'e'], [])
        """
        check_key(key)
        for name, bound in (("first", first), ("last", last)):
            if isinstance(bound, bool) or not isinstance(bound, int):
                raise ValueError(f"list_range: {name} must be an integer, not {bound!r}")
        now = self._clock()
        items = self._run(lambda c: self._read_list(c, key, now)) or []
        n = len(items)
        start = first - 1 if first > 0 else max(n + first, 0) if first < 0 else 0
        stop = last if last >= 0 else n + last + 1
        return items[start:stop]
