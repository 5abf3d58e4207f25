"""The master's task table (SQLite): which agent has each task, under which key, in what state.

Row states are the task states of :mod:`slothlab.protocol` plus two of the master's own:
``sending`` (the request is on its way to ``agent``) and ``doubt`` (it was sent and no clear
answer came back; the same agent is asked again with the same key before anything else).

>>> table = TaskTable(":memory:")
>>> table.create("t1", "t1", {"kind": "shell", "source": "true"}, now=0.0)
>>> table.create("t2", "t1", {"kind": "shell", "source": "true"}, now=0.0)
't1'
>>> table.get("t1").state
'sending'
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slothlab.errors import MasterError
from slothlab.protocol import TaskInfo

__all__ = ["TaskRow", "TaskTable"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS tasks (
        id TEXT PRIMARY KEY, key TEXT NOT NULL UNIQUE, agent TEXT, agent_task_id TEXT,
        state TEXT NOT NULL, request TEXT NOT NULL, info TEXT, attempts INTEGER NOT NULL,
        created REAL NOT NULL, updated REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS tasks_created ON tasks (created)",
)
_COLUMNS = "id, key, agent, agent_task_id, state, request, info, attempts, created, updated"


@dataclass(frozen=True)
class TaskRow:
    """One task as the master tracks it."""

    id: str
    key: str
    agent: str | None
    agent_task_id: str | None
    state: str
    request: dict[str, Any]
    info: TaskInfo | None
    attempts: int
    created: float
    updated: float


class TaskTable:
    """Tasks by master id and idempotency key; thread-safe.

    Args:
        path: the SQLite file (the master's ``master.db``), or ``":memory:"``.
    """

    def __init__(self, path: str | Path) -> None:
        memory = str(path) == ":memory:"
        if not memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._depth = 0  # nesting of batch() in the thread holding the lock
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout = 5000")
            if not memory:
                self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            for statement in _SCHEMA:
                self._db.execute(statement)
        except sqlite3.DatabaseError as exc:
            raise MasterError(f"cannot open the task table {path}: {exc}") from None

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Make the writes inside one transaction: one commit instead of one per write.

        Other threads wait for the table meanwhile, so keep network calls outside. Nests (only
        the outermost commits); an exception rolls everything back.
        """
        with self._lock:
            if self._depth == 0:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if self._depth == 0:
                self._db.execute("COMMIT")

    def create(self, task_id: str, key: str, request: dict[str, Any], *, now: float) -> str | None:
        """Add a task in state ``sending``; None, or the id of the task that has ``key`` already."""
        with self._lock:
            try:
                self._db.execute(
                    f"INSERT INTO tasks ({_COLUMNS}) VALUES (?, ?, NULL, NULL, 'sending', ?, "
                    "NULL, 0, ?, ?)",
                    (task_id, key, json.dumps(request), now, now),
                )
            except sqlite3.IntegrityError:
                row = self._db.execute("SELECT id FROM tasks WHERE key = ?", (key,)).fetchone()
                return str(row[0]) if row else None
        return None

    def sending(self, task_id: str, agent: str, *, now: float) -> None:
        """The task is being sent to ``agent`` (one more attempt)."""
        self._exec(
            "UPDATE tasks SET agent = ?, state = 'sending', attempts = attempts + 1, updated = ? "
            "WHERE id = ?",
            (agent, now, task_id),
        )

    def record(self, task_id: str, info: TaskInfo, *, now: float) -> None:
        """Store what the agent said (the state follows ``info.state``)."""
        self._exec(
            "UPDATE tasks SET agent = ?, agent_task_id = ?, state = ?, info = ?, updated = ? "
            "WHERE id = ?",
            (info.agent, info.agent_task_id, info.state, info.model_dump_json(), now, task_id),
        )

    def set_state(self, task_id: str, state: str, info: TaskInfo | None, *, now: float) -> None:
        """Set the row state (``doubt``, ``lost``, ``rejected`` ...) and the info shown."""
        dumped = None if info is None else info.model_dump_json()
        self._exec(
            "UPDATE tasks SET state = ?, info = coalesce(?, info), updated = ? WHERE id = ?",
            (state, dumped, now, task_id),
        )

    def get(self, task_id: str) -> TaskRow | None:
        """The task with master id ``task_id``, or None."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM tasks WHERE id = ?", (task_id,)
            ).fetchone()
        return None if row is None else _row(row)

    def recent(self, state: str | None = None, limit: int = 100) -> list[TaskRow]:
        """Newest first, optionally only in ``state``."""
        where, params = ("WHERE state = ?", [state]) if state else ("", [])
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM tasks {where} ORDER BY created DESC, rowid DESC LIMIT ?",
                [*params, limit],
            ).fetchall()
        return [_row(r) for r in rows]

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

    def _exec(self, sql: str, params: tuple[Any, ...]) -> None:
        with self._lock:
            self._db.execute(sql, params)


def _row(row: tuple[Any, ...]) -> TaskRow:
    info = TaskInfo.model_validate_json(row[6]) if row[6] else None
    return TaskRow(
        id=row[0],
        key=row[1],
        agent=row[2],
        agent_task_id=row[3],
        state=row[4],
        request=json.loads(row[5]),
        info=info,
        attempts=row[7],
        created=row[8],
        updated=row[9],
    )
