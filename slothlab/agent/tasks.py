"""Task records: state, capped output with a live line log, waiters, and the retained table.

A :class:`TaskRecord` is what the executor knows of one task. Output arrives in chunks from a
runner thread; each stream keeps its first ``max_output`` bytes (the rest is counted, and
``truncated`` says so) and the kept bytes are also cut into lines, the events that
``GET /v1/tasks/{id}/logs`` streams. Async readers wait for changes without polling: a waiter
registers an :class:`asyncio.Event` that writer threads set through its loop.

:class:`TaskTable` holds the records and the idempotency keys, and forgets finished tasks after
``result_ttl_s`` seconds or beyond ``max_records``; keys are remembered longer
(``key_ttl_s``), so a key whose task was forgotten is still refused rather than run twice.

>>> from slothlab.protocol import TaskRequest
>>> record = TaskRecord("t1", "agent-1", TaskRequest(kind="shell", source="echo hi"), 0.0)
>>> record.feed("stdout", b"hi\\nthere")
>>> record.finish("succeeded", 1.0, exit_code=0)
>>> [(e.stream, e.text) for e in record.events_since(0)]
[('stdout', 'hi'), ('stdout', 'there')]
>>> info = record.info()
>>> info.state, info.stdout, info.exit_code
('succeeded', 'hi\\nthere', 0)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from slothlab.errors import TaskNotFoundError
from slothlab.protocol import TERMINAL_STATES, TaskInfo, TaskRequest

__all__ = ["DEFAULT_MAX_OUTPUT", "LogEvent", "TaskRecord", "TaskTable"]

DEFAULT_MAX_OUTPUT = 1 << 20
"""Bytes kept of each of a task's stdout and stderr."""

_MAX_LINE = 64 << 10  # a line longer than this is cut into events of this size


class LogEvent(NamedTuple):
    """One line of output: its place in the task's log, the stream and the text (no newline)."""

    seq: int
    stream: str
    text: str


class _Stream:
    """One output stream: kept bytes (capped), dropped count, and the unfinished line."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept = bytearray()
        self.dropped = 0
        self.partial = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """Keep what fits; return the complete lines the kept part finished."""
        room = max(self.limit - len(self.kept), 0)
        taken, self.dropped = chunk[:room], self.dropped + max(len(chunk) - room, 0)
        self.kept += taken
        lines = (self.partial + taken).split(b"\n")
        self.partial = lines.pop()
        while len(self.partial) > _MAX_LINE:
            lines.append(self.partial[:_MAX_LINE])
            self.partial = self.partial[_MAX_LINE:]
        return lines

    def flush(self) -> list[bytes]:
        rest, self.partial = self.partial, b""
        return [rest] if rest else []


@dataclass(eq=False)
class _Waiter:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[bool]


class TaskRecord:
    """One task: its request, state, output and result, safe to share between threads.

    Args:
        task_id: the task's id.
        agent: the agent's name.
        request: what was submitted.
        submitted_at: when (epoch seconds).
        max_output: bytes kept of each stream.
    """

    def __init__(
        self,
        task_id: str,
        agent: str,
        request: TaskRequest,
        submitted_at: float,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> None:
        self.id = task_id
        self.agent = agent
        self.request = request
        self.state = "queued"
        self.submitted_at = submitted_at
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.exit_code: int | None = None
        self.result: list[Any] | None = None
        self.error: str | None = None
        self.cancel_requested = False
        self.cancel: Callable[[], None] | None = None  # set by the runner while it runs
        self.version = 0
        self._streams = {"stdout": _Stream(max_output), "stderr": _Stream(max_output)}
        self._events: list[LogEvent] = []
        self._lock = threading.Lock()
        self._done: threading.Event | None = None  # made by the first blocking wait() only
        self._waiters: list[_Waiter] = []

    # -- writers (runner threads) -----------------------------------------------------------------

    def feed(self, stream: str, chunk: bytes) -> None:
        """Add output of ``stream`` ("stdout" or "stderr")."""
        with self._lock:
            lines = self._streams[stream].feed(chunk)
            self._add_lines(stream, lines)

    def start(self, now: float) -> None:
        """Mark the task running."""
        with self._lock:
            self.state, self.started_at = "running", now
        self._changed()

    def finish(
        self,
        state: str,
        now: float,
        *,
        exit_code: int | None = None,
        result: list[Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Record the end; a cancel that was asked for wins over what the runner saw."""
        with self._lock:
            if self.state in TERMINAL_STATES:
                return
            for name, stream in self._streams.items():
                self._add_lines(name, stream.flush())
            self.finished_at = now
            self.exit_code, self.result = exit_code, result
            self.error = "cancelled on request" if self.cancel_requested else error
            self.cancel = None
            self.state = "cancelled" if self.cancel_requested else state  # last: `done` reads it
            done = self._done
        if done is not None:
            done.set()
        self._changed()

    def _add_lines(self, stream: str, lines: list[bytes]) -> None:
        for line in lines:
            text = line.decode("utf-8", "replace")
            self._events.append(LogEvent(len(self._events), stream, text))
        if lines:
            self.version += 1
            self._wake()

    def _changed(self) -> None:
        with self._lock:
            self.version += 1
            self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        if not waiters:
            return
        try:
            here = asyncio.get_running_loop()  # a Lua task ends on the loop that waits for it
        except RuntimeError:
            here = None
        for waiter in waiters:
            if waiter.loop is here:
                _settle(waiter.future, True)  # no trip through the loop's wake-up pipe
                continue
            with contextlib.suppress(RuntimeError):  # the waiter's loop is closed
                waiter.loop.call_soon_threadsafe(_settle, waiter.future, True)

    # -- readers --------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """True once the task reached a terminal state."""
        return self.state in TERMINAL_STATES  # set last, under the lock, by finish()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the task is done (True) or ``timeout_s`` passed (False).

        The event is made on first need: most tasks are awaited by the event loop
        (:meth:`changed`), and an Event per task stood out in py-spy profiles of a batch.
        """
        with self._lock:
            if self.state in TERMINAL_STATES:
                return True
            if self._done is None:
                self._done = threading.Event()
            done = self._done
        return done.wait(timeout_s)

    async def changed(self, since_version: int, timeout_s: float) -> bool:
        """Wait (async) until :attr:`version` differs from ``since_version``; False on timeout."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop, loop.create_future())
        with self._lock:
            if self.version != since_version:
                return True
            self._waiters.append(waiter)
        timer = loop.call_later(timeout_s, _settle, waiter.future, False)
        try:  # a future and a timer: fewer loop turns than wait_for(event.wait())
            return await waiter.future
        finally:  # a reader that timed out (or left) must not pile up on a quiet task
            timer.cancel()
            with self._lock, contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def events_since(self, seq: int) -> list[LogEvent]:
        """The log lines from ``seq`` on (a copy)."""
        with self._lock:
            return self._events[max(seq, 0) :]

    def as_dict(self) -> dict[str, Any]:
        """:meth:`info` as a plain dict (the same fields and values), without model validation.

        What the HTTP routes serialise: building a validated model per task costs more than
        the rest of a no-op task's bookkeeping.
        """
        with self._lock:
            out, err = self._streams["stdout"], self._streams["stderr"]
            request = self.request
            return {
                "id": self.id,
                "agent": self.agent,
                "kind": request.kind,
                "name": request.name,
                "state": self.state,
                "priority": request.priority,
                "idempotency_key": request.idempotency_key,
                "submitted_at": self.submitted_at,
                "started_at": self.started_at,
                "finished_at": self.finished_at,
                "exit_code": self.exit_code,
                "stdout": out.kept.decode("utf-8", "replace"),
                "stderr": err.kept.decode("utf-8", "replace"),
                "truncated": bool(out.dropped or err.dropped),
                "result": self.result,
                "error": self.error,
                "attempts": 1,
                "agent_task_id": None,
            }

    def info(self) -> TaskInfo:
        """The task as the API shows it."""
        with self._lock:
            out, err = self._streams["stdout"], self._streams["stderr"]
            request = self.request
            return TaskInfo(
                id=self.id,
                agent=self.agent,
                kind=request.kind,
                name=request.name,
                state=self.state,  # type: ignore[arg-type]  # always a TaskState
                priority=request.priority,
                idempotency_key=request.idempotency_key,
                submitted_at=self.submitted_at,
                started_at=self.started_at,
                finished_at=self.finished_at,
                exit_code=self.exit_code,
                stdout=out.kept.decode("utf-8", "replace"),
                stderr=err.kept.decode("utf-8", "replace"),
                truncated=bool(out.dropped or err.dropped),
                result=self.result,
                error=self.error,
            )


def _settle(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)


class TaskTable:
    """The tasks an agent remembers, and its idempotency keys.

    Args:
        result_ttl_s: how long a finished task is kept.
        max_records: how many finished tasks are kept at most (oldest forgotten first).
        key_ttl_s: how long an idempotency key is remembered (at least ``result_ttl_s``).
        max_keys: how many keys are remembered at most.
    """

    def __init__(
        self,
        *,
        result_ttl_s: float = 3600.0,
        max_records: int = 1000,
        key_ttl_s: float = 86_400.0,
        max_keys: int = 100_000,
    ) -> None:
        if result_ttl_s <= 0 or max_records < 1:
            raise ValueError("result_ttl_s must be positive and max_records at least 1")
        self.result_ttl_s = result_ttl_s
        self.max_records = max_records
        self.key_ttl_s = max(key_ttl_s, result_ttl_s)
        self.max_keys = max_keys
        self._records: OrderedDict[str, TaskRecord] = OrderedDict()
        self._keys: OrderedDict[str, tuple[str, float]] = OrderedDict()  # key -> (id, at)
        self._finished: OrderedDict[str, float] = OrderedDict()  # id -> finished at, in order

    def __len__(self) -> int:
        return len(self._records)

    def add(self, record: TaskRecord) -> None:
        """Keep ``record`` (and its idempotency key)."""
        self._records[record.id] = record
        key = record.request.idempotency_key
        if key is not None:
            self._keys[key] = (record.id, record.submitted_at)
            while len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)

    def by_key(self, key: str) -> tuple[str, TaskRecord | None] | None:
        """``(task id, record or None when forgotten)`` for a known key, else None."""
        found = self._keys.get(key)
        if found is None:
            return None
        return found[0], self._records.get(found[0])

    def get(self, task_id: str) -> TaskRecord:
        """The record of ``task_id``.

        Raises:
            TaskNotFoundError: no such task (never submitted, or forgotten).
        """
        try:
            return self._records[task_id]
        except KeyError:
            raise TaskNotFoundError(
                f"no task {task_id!r} on this agent: it was never submitted here, or it finished "
                f"more than {self.result_ttl_s:g} s ago and was forgotten"
            ) from None

    def recent(self, state: str | None = None, limit: int = 100) -> list[TaskRecord]:
        """The newest records first, optionally only those in ``state``."""
        out: list[TaskRecord] = []
        for record in reversed(self._records.values()):
            if state is None or record.state == state:
                out.append(record)
                if len(out) >= limit:
                    break
        return out

    def finished(self, record: TaskRecord) -> None:
        """Note that ``record`` reached a terminal state (starts its retention)."""
        self._finished[record.id] = record.finished_at or record.submitted_at

    def sweep(self, now: float) -> int:
        """Forget finished tasks past their time or beyond the count; return how many."""
        dropped = 0
        while self._finished:
            task_id, at = next(iter(self._finished.items()))
            if at > now - self.result_ttl_s and len(self._finished) <= self.max_records:
                break
            del self._finished[task_id]
            self._records.pop(task_id, None)
            dropped += 1
        while self._keys:
            _, (_, at) = next(iter(self._keys.items()))
            if at > now - self.key_ttl_s:
                break
            self._keys.popitem(last=False)
        return dropped
