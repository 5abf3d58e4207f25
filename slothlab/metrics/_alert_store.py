"""SQLite persistence of the alert manager: the latest state per alert and an event history.

Times are epoch seconds (numbers). The file is opened in WAL mode with ``isolation_level=None``
and every multi-statement write runs in ``BEGIN IMMEDIATE`` (see notes/reliability.md). A file
that is not a database is refused with a message, never overwritten.

>>> store = AlertStore(None)
>>> store.add_event(1.0, "ab12", "DiskFull", "firing", "firing", 97.0, "")
>>> [e.event for e in store.events()]
['firing']
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from slothlab.errors import AlertError

__all__ = ["AlertEvent", "AlertStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    fingerprint TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    state TEXT NOT NULL,
    value REAL,
    active_at REAL NOT NULL,
    fired_at REAL,
    resolved_at REAL,
    acked_by TEXT,
    acked_at REAL,
    ack_note TEXT,
    last_notified_at REAL,
    manual INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS alerts_state ON alerts (state);
CREATE TABLE IF NOT EXISTS alert_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    fingerprint TEXT NOT NULL,
    name TEXT NOT NULL,
    event TEXT NOT NULL,
    state TEXT NOT NULL,
    value REAL,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS alert_events_name ON alert_events (name, id);
"""

COLUMNS = (
    "fingerprint",
    "name",
    "labels",
    "annotations",
    "state",
    "value",
    "active_at",
    "fired_at",
    "resolved_at",
    "acked_by",
    "acked_at",
    "ack_note",
    "last_notified_at",
    "manual",
)
"""The columns of one alert row, in order."""


class AlertEvent(NamedTuple):
    """One entry of the alert history.

    Attributes:
        ts: when (epoch seconds).
        fingerprint: the alert instance.
        name: the rule or manual alert name.
        event: what happened: ``pending``, ``firing``, ``resolved``, ``inactive`` (a pending
            alert whose condition cleared), ``acknowledged``, ``notified``.
        state: the alert's state after the event.
        value: the value at that time, if any.
        detail: who acknowledged, the message, ...
    """

    ts: float
    fingerprint: str
    name: str
    event: str
    state: str
    value: float | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return self._asdict()


class AlertStore:
    """The alert manager's SQLite file (``None``: a private in-memory database).

    Args:
        path: the database file; its folder is created.
        max_events: history rows kept; older ones are pruned.
    """

    def __init__(self, path: str | Path | None, *, max_events: int = 10_000) -> None:
        self.path = Path(path).expanduser() if path is not None else None
        self.max_events = max_events
        self._lock = threading.RLock()
        self._inserts = 0
        self._depth = 0
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        target = ":memory:"
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            target = str(self.path)
        try:
            db = sqlite3.connect(target, isolation_level=None, check_same_thread=False, timeout=10)
            db.execute("PRAGMA busy_timeout = 10000")
            if self.path is not None:
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = NORMAL")
            db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise AlertError(
                f"alert store {target} cannot be opened ({exc}); it was left untouched — "
                "move it aside or pass another path"
            ) from None
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction; writes inside it join it (one commit for all)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._db
                finally:
                    self._depth -= 1
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._depth = 1
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                finally:
                    self._depth = 0
                self._db.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                raise AlertError(f"alert store {self.path or ':memory:'} failed: {exc}") from None

    def save(self, row: Mapping[str, Any]) -> None:
        """Insert or replace the row of one alert (keys: :data:`COLUMNS`)."""
        values = [_encode(row.get(c)) for c in COLUMNS]
        marks = ", ".join("?" * len(COLUMNS))
        with self.transaction() as db:
            db.execute(
                f"INSERT OR REPLACE INTO alerts ({', '.join(COLUMNS)}) VALUES ({marks})", values
            )

    def mark_notified(self, fingerprints: list[str], at: float) -> None:
        """Record when these alerts were last notified."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE alerts SET last_notified_at = ? WHERE fingerprint = ?",
                [(at, fp) for fp in fingerprints],
            )

    def load(
        self, states: tuple[str, ...] | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Alert rows (all, or those in ``states``), newest activity first."""
        sql = f"SELECT {', '.join(COLUMNS)} FROM alerts"
        args: list[Any] = []
        if states:
            sql += f" WHERE state IN ({', '.join('?' * len(states))})"
            args.extend(states)
        sql += " ORDER BY COALESCE(resolved_at, fired_at, active_at) DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, [*args, limit]).fetchall()
        return [_decode(dict(zip(COLUMNS, r, strict=True))) for r in rows]

    def add_event(
        self,
        ts: float,
        fingerprint: str,
        name: str,
        event: str,
        state: str,
        value: float | None,
        detail: str,
    ) -> None:
        """Append one history entry (and prune the oldest now and then)."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO alert_events (ts, fingerprint, name, event, state, value, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (ts, fingerprint, name, event, state, value, detail),
            )
            self._inserts += 1
            if self._inserts % 100 == 0:
                db.execute(
                    "DELETE FROM alert_events WHERE id <= (SELECT MAX(id) FROM alert_events) - ?",
                    (self.max_events,),
                )

    def events(self, name: str | None = None, limit: int = 100) -> list[AlertEvent]:
        """History entries, oldest first (the newest ``limit``), of one name or all."""
        where, args = ("WHERE name = ?", [name]) if name is not None else ("", [])
        sql = (
            "SELECT ts, fingerprint, name, event, state, value, detail FROM ("
            f"SELECT * FROM alert_events {where} ORDER BY id DESC LIMIT ?) ORDER BY id"
        )
        with self._lock:
            rows = self._db.execute(sql, [*args, limit]).fetchall()
        return [AlertEvent(*r) for r in rows]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


def _encode(value: Any) -> Any:
    kind = type(value)
    if kind is bool:
        return int(value)
    if value is None or kind in (int, float, str):
        return value
    if isinstance(value, Mapping):
        return json.dumps(dict(value), sort_keys=True)
    return value


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    row["labels"] = json.loads(row["labels"])
    row["annotations"] = json.loads(row["annotations"])
    row["manual"] = bool(row["manual"])
    return row
