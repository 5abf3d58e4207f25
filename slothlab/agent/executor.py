"""The agent's executor: a priority queue, a concurrency limit, resource limits, cancel.

Submitted tasks wait in a heap (higher ``priority`` first, first come first served within one);
up to ``capacity`` run at once: shell tasks through :class:`~slothlab.agent.shell.ShellRun`, Lua
tasks on a :class:`~slothlab.agent.lua.LuaRunner`, each in a thread of its own or, with an event
loop attached (:meth:`Executor.attach_loop`), followed from that loop when a warm Lua worker or a
spare shell (and no working directory) is ready.
Scheduling happens under one lock, synchronously on every submit, finish, cancel and
:meth:`Executor.poke`, so the state after a call is known (tests need no sleeps). A ticker thread
pokes every ``tick_s`` to re-read the resource limits and forget old results.

An idempotency key seen before returns the task it first created (even under concurrent
submits, even after that task finished); a key whose task was already forgotten is refused with
409, never run a second time.

>>> from slothlab.protocol import TaskRequest
>>> with Executor("doc", capacity=1) as executor:
...     record = executor.submit(TaskRequest(kind="shell", source="echo hello"))
...     _ = record.wait(10)
...     again = executor.submit(TaskRequest(kind="shell", source="echo x", idempotency_key="k"))
...     same = executor.submit(TaskRequest(kind="shell", source="echo y", idempotency_key="k"))
>>> record.info().state, record.info().stdout, again is same
('succeeded', 'hello\\n', True)
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slothlab.agent.limits import ResourceLimits, SnapshotSource, Verdict
from slothlab.agent.lua import LuaRunner
from slothlab.agent.shell import ShellLimits, ShellOutcome, ShellRun, ShellSpares, command_line
from slothlab.agent.tasks import DEFAULT_MAX_OUTPUT, TaskRecord, TaskTable
from slothlab.errors import AgentBusyError, AgentError, LuaError, LuaTimeoutError
from slothlab.protocol import TaskRequest

__all__ = ["Executor"]

log = logging.getLogger("slothlab.agent")

FinishListener = Callable[[TaskRecord], None]


class Executor:
    """Runs an agent's tasks.

    Args:
        name: the agent's name (it goes into every :class:`~slothlab.protocol.TaskInfo`).
        capacity: tasks run at once.
        limits: resource ceilings and the action past them.
        snapshot: where readings for ``limits`` come from (the host collector; a fake in tests).
        lua: the Lua runner (default: one with room for ``capacity`` tasks, started lazily).
        shell_limits: rlimits of shell tasks' processes.
        shell_spares: shells kept started ahead for shell tasks (0: fork each one).
        kill_grace_s: after a cancel's SIGTERM, how long until SIGKILL.
        max_output: bytes kept of each output stream of a task.
        max_queue: tasks that may wait; more get 429.
        table: the task table (retention settings).
        clock: wall clock for task times.
        tick_s: how often the ticker re-reads limits and sweeps old results.
        limit_check_s: how long one reading of the limits is trusted between ticks.
    """

    def __init__(
        self,
        name: str = "agent",
        *,
        capacity: int = 4,
        limits: ResourceLimits | None = None,
        snapshot: SnapshotSource | None = None,
        lua: LuaRunner | None = None,
        shell_limits: ShellLimits | None = None,
        shell_spares: int = 2,
        kill_grace_s: float = 2.0,
        max_output: int = DEFAULT_MAX_OUTPUT,
        max_queue: int = 10_000,
        table: TaskTable | None = None,
        clock: Callable[[], float] = time.time,
        tick_s: float = 1.0,
        limit_check_s: float = 0.5,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be 1 or more, not {capacity}")
        self.name = name
        self.capacity = capacity
        self.limits = limits or ResourceLimits()
        self.snapshot = snapshot
        self.lua = lua or LuaRunner(size=capacity)
        self.shell_limits = shell_limits or ShellLimits()
        self.spares = ShellSpares(shell_spares)
        self.kill_grace_s = kill_grace_s
        self.max_output = max_output
        self.max_queue = max_queue
        self.table = table if table is not None else TaskTable()
        self.clock = clock
        self.tick_s = tick_s
        self.limit_check_s = limit_check_s
        self._lock = threading.Condition()
        self._heap: list[tuple[int, int, str]] = []
        self._queued: set[str] = set()
        self._running: set[str] = set()
        self._seq = 0
        self._closing = False
        self._verdict = Verdict()
        self._verdict_at = float("-inf")
        self._listeners: list[FinishListener] = []
        self._threads = ThreadPoolExecutor(max_workers=capacity, thread_name_prefix="agent-task")
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> Executor:
        """Start the ticker thread (limits and retention); idempotent."""
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="agent-ticker", daemon=True)
            self._ticker.start()
            self.spares.fill()
        return self

    def _tick(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                self.poke()
            except Exception:  # the ticker must outlive one bad reading
                log.exception("executor tick failed")

    def shutdown(self, grace_s: float = 10.0) -> None:
        """Stop taking tasks, cancel the queued ones, give running ones ``grace_s``, then kill."""
        with self._lock:
            self._closing = True
            queued = [self.table.get(i) for i in list(self._queued)]
        for record in queued:
            self.cancel(record.id)
        deadline = time.monotonic() + grace_s
        with self._lock:
            self._lock.wait_for(lambda: not self._running, max(0.0, deadline - time.monotonic()))
            left = [self.table.get(i) for i in self._running]
        for record in left:
            log.warning("task %s still running at shutdown; cancelling it", record.id)
            self.cancel(record.id)
        with self._lock:
            self._lock.wait_for(lambda: not self._running, self.kill_grace_s + 2.0)
        self._stop.set()
        self._threads.shutdown(wait=False)
        self.lua.close()
        self.spares.close()

    def __enter__(self) -> Executor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def add_listener(self, listener: FinishListener) -> None:
        """Call ``listener(record)`` whenever a task reaches a terminal state."""
        self._listeners.append(listener)

    # -- submitting -------------------------------------------------------------------------------

    def submit(self, request: TaskRequest) -> TaskRecord:
        """Queue one task (or return the task its idempotency key already made).

        Raises:
            AgentBusyError: over a resource limit with action ``reject`` (503), the queue is
                full (429), or the agent is shutting down (503).
            AgentError: the key's task finished long ago and was forgotten (409).
        """
        return self.submit_many([request])[0]

    def submit_many(self, requests: Iterable[TaskRequest]) -> list[TaskRecord]:
        """Queue several tasks at once, all or none; see :meth:`submit`."""
        batch = list(requests)
        with self._lock:
            self.table.sweep(self.clock())
            fresh = sum(1 for r in batch if not self._known(r))
            if fresh:
                self._admit(fresh)
            records = [self._add(request) for request in batch]
            self._schedule()
        return records

    def _known(self, request: TaskRequest) -> bool:
        key = request.idempotency_key
        return key is not None and self.table.by_key(key) is not None

    def _admit(self, count: int) -> None:
        if self._closing:
            raise AgentBusyError(
                f"agent {self.name} is shutting down and takes no new task; send it elsewhere"
            )
        if len(self._queued) + count > self.max_queue:
            raise AgentBusyError(
                f"agent {self.name}'s queue is full ({self.max_queue} tasks wait); retry later "
                "or send the task to another agent",
                status=429,
            )
        verdict = self._read_limits()
        if verdict.over and self.limits.action == "reject":
            raise AgentBusyError(
                f"agent {self.name} is over its resource limits ({verdict.message}) and "
                "rejects new tasks; retry later or send the task to another agent",
                retry_after_s=max(self.tick_s, 1.0),
            )

    def _add(self, request: TaskRequest) -> TaskRecord:
        key = request.idempotency_key
        if key is not None:
            known = self.table.by_key(key)
            if known is not None:
                task_id, existing = known
                if existing is None:
                    raise AgentError(
                        f"idempotency key {key!r} belongs to task {task_id}, which finished and "
                        "was forgotten; it is not run twice (use a new key to run it again)"
                    )
                return existing
        record = TaskRecord(_new_id(), self.name, request, self.clock(), max_output=self.max_output)
        self.table.add(record)
        self._seq += 1
        heapq.heappush(self._heap, (-request.priority, self._seq, record.id))
        self._queued.add(record.id)
        return record

    # -- scheduling -------------------------------------------------------------------------------

    def poke(self) -> None:
        """Re-read the limits now, start what may start, and forget old results."""
        with self._lock:
            self._read_limits(force=True)
            self.table.sweep(self.clock())
            self._schedule()

    def effective_capacity(self) -> int:
        """Tasks that may run at once now (lower while throttled, 0 while held or closing)."""
        if self._closing:
            return 0
        if self._verdict.over:
            if self.limits.action == "queue":
                return 0
            if self.limits.action == "throttle":
                return self.limits.throttled(self.capacity)
        return self.capacity

    def _read_limits(self, force: bool = False) -> Verdict:
        if self.snapshot is None or not self.limits.active:
            return self._verdict
        now = time.monotonic()
        if not force and now - self._verdict_at < self.limit_check_s:
            return self._verdict
        verdict = self.limits.evaluate(self.snapshot.snapshot())
        self._log_change(self._verdict, verdict)
        self._verdict, self._verdict_at = verdict, now
        return verdict

    def _log_change(self, before: Verdict, after: Verdict) -> None:
        if after.over and not before.over:
            log.warning("agent %s over its resource limits: %s", self.name, after.message)
        elif before.over and not after.over:
            log.info("agent %s is back under its resource limits", self.name)
        elif after.warning and not before.warning:
            log.warning("agent %s past a resource warning threshold: %s", self.name, after.readings)

    def _schedule(self) -> None:
        """Start queued tasks while there is room (called with the lock held)."""
        self._read_limits()
        room = self.effective_capacity()
        while self._heap and len(self._running) < room:
            _, _, task_id = heapq.heappop(self._heap)
            if task_id not in self._queued:  # cancelled while it waited
                continue
            self._queued.discard(task_id)
            self._running.add(task_id)
            record = self.table.get(task_id)
            record.start(self.clock())
            launch = self._launch_lua if record.request.kind == "lua" else self._launch_shell
            if self._on_loop(launch, record):
                continue
            self._threads.submit(self._run, record)

    # -- the event loop ---------------------------------------------------------------------------

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run Lua tasks (and shell tasks) from ``loop`` (the server's) when a warm worker (a
        spare shell) is ready.

        The loop sends the request and reads the reply itself, so a Lua task needs no thread:
        each hand-off between threads is a wake-up (dearest on an idle machine), and a task
        through a thread costs two more than one through the loop. Without a loop, or with
        no warm worker free, a task runs in a thread as before. Call it from the loop's thread.
        """
        self._loop, self._loop_thread = loop, threading.get_ident()

    def _on_loop(self, fn: Callable[[TaskRecord], None], record: TaskRecord) -> bool:
        """Have the attached loop call ``fn(record)``: now when this is the loop's thread (the
        worker starts while the caller finishes its bookkeeping), else soon; False without a
        running loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return False
        if threading.get_ident() == self._loop_thread:
            fn(record)
            return True
        try:
            loop.call_soon_threadsafe(fn, record)
        except RuntimeError:  # closed meanwhile
            return False
        return True

    def _launch_lua(self, record: TaskRecord) -> None:
        """Start a Lua task from the loop (or hand it to a thread when no warm worker is free)."""
        request = record.request
        assert self._loop is not None
        if record.cancel_requested:  # cancelled before it started: no worker is spent on it
            self._loop.call_soon(self._lua_done, record, None, None)
            return
        try:
            kill = self.lua.start_async(
                self._loop,
                request.source,
                lambda result, error: self._lua_done(record, result, error),
                name=request.name or "task",
                args=request.args,
                timeout_s=request.timeout_s,
                workdir=request.workdir,
                output=_lua_output(record),
            )
        except Exception as exc:  # reported from the loop: the caller may hold the lock
            self._loop.call_soon(self._lua_done, record, None, exc)
            return
        if kill is None:
            self._threads.submit(self._run, record)
            return
        self._arm(record, kill)

    def _launch_shell(self, record: TaskRecord) -> None:
        """Start a shell task from the loop in a spare shell (or hand it to a thread: a fork
        would hold up the loop)."""
        assert self._loop is not None
        if record.cancel_requested:  # cancelled before it started: nothing is spent on it
            self._loop.call_soon(self._shell_done, record, None, None)
            return
        if record.request.workdir is not None:  # checking it could hang the loop (a dead NFS)
            self._threads.submit(self._run, record)
            return
        try:
            run = self._shell_run(record, fork=False)
        except (OSError, ValueError) as exc:  # reported from the loop: the caller may hold the lock
            self._loop.call_soon(self._shell_failed, record, _start_error(record, exc))
            return
        if run is None:
            self._threads.submit(self._run, record)
            return
        try:
            run.start_async(
                self._loop,
                lambda outcome, error: self._shell_done(record, outcome, error),
                busy=lambda: bool(self._heap),  # read without the lock, as _finished_soon does
            )
        except Exception as exc:  # e.g. no fd left for its pidfd: stop the shell, report it
            run.abandon()
            self._loop.call_soon(self._shell_done, record, None, exc)
            return
        self._arm(record, run.terminate)

    def _shell_done(
        self,
        record: TaskRecord,
        outcome: ShellOutcome | None,
        error: BaseException | None,
    ) -> None:
        try:
            if outcome is not None:
                self._record_outcome(record, outcome)
            elif error is not None:  # a bug here must not leave the task running for ever
                self._agent_error(record, error)
            else:
                record.finish("cancelled", self.clock())
        finally:
            self._finished_soon(record)

    def _shell_failed(self, record: TaskRecord, message: str) -> None:
        try:
            record.finish("failed", self.clock(), error=message)
        finally:
            self._finished_soon(record)

    def _agent_error(self, record: TaskRecord, error: BaseException) -> None:
        """Fail a task on a bug of the agent's (logged with its traceback)."""
        log.error("task %s failed inside the agent", record.id, exc_info=error)
        record.finish("failed", self.clock(), error=f"agent error: {type(error).__name__}: {error}")

    def _lua_done(
        self, record: TaskRecord, result: list[Any] | None, error: BaseException | None
    ) -> None:
        try:
            if error is None:
                record.finish("succeeded", self.clock(), result=result)
            elif isinstance(error, LuaTimeoutError):
                record.finish("timeout", self.clock(), error=str(error))
            elif isinstance(error, LuaError | TypeError):
                record.finish("failed", self.clock(), error=str(error))
            else:  # a bug here must not leave the task running for ever
                self._agent_error(record, error)
        finally:
            self._finished_soon(record)

    def _finished_soon(self, record: TaskRecord) -> None:
        """:meth:`_finished` now when tasks wait to start, else on the loop's next turn: then
        whoever waits for the task (woken by ``finish``) answers first, and nothing else runs
        on the loop in between."""
        assert self._loop is not None
        if self._heap:  # read without the lock: a task queued meanwhile is started by its submit
            self._finished(record)
        else:
            self._loop.call_soon(self._finished, record)

    # -- running ----------------------------------------------------------------------------------

    def _run(self, record: TaskRecord) -> None:
        try:
            if record.request.kind == "shell":
                self._run_shell(record)
            else:
                self._run_lua(record)
        except Exception as exc:  # a bug here must not leave the task running for ever
            self._agent_error(record, exc)
        finally:
            self._finished(record)

    def _finished(self, record: TaskRecord) -> None:
        with self._lock:
            self._running.discard(record.id)
            self._queued.discard(record.id)
            self.table.finished(record)
            self._schedule()
            self._lock.notify_all()
        for listener in list(self._listeners):
            try:
                listener(record)
            except Exception:
                log.exception("task listener %r failed", listener)

    def _run_shell(self, record: TaskRecord) -> None:
        try:
            run = self._shell_run(record, fork=True)
        except (OSError, ValueError) as exc:
            record.finish("failed", self.clock(), error=_start_error(record, exc))
            return
        assert run is not None  # with fork=True
        self._arm(record, run.terminate)
        self._record_outcome(record, run.wait())

    def _shell_run(self, record: TaskRecord, *, fork: bool) -> ShellRun | None:
        """The task's shell, started (None: it needs a fork and ``fork`` is False)."""
        request = record.request
        options: dict[str, Any] = {
            "workdir": request.workdir,
            "env": request.env,
            "timeout_s": request.timeout_s,
            "limits": self.shell_limits,
            "kill_grace_s": self.kill_grace_s,
            "spares": self.spares,
        }
        command = command_line(request.source, request.args)
        if fork:
            return ShellRun(command, record.feed, **options)
        return ShellRun.in_spare(command, record.feed, **options)

    def _record_outcome(self, record: TaskRecord, outcome: ShellOutcome) -> None:
        request = record.request
        code = outcome.exit_code
        if outcome.timed_out:
            state, error = (
                "timeout",
                (f"ran past its timeout of {request.timeout_s:g} s; its process group was killed"),
            )
        elif code == 0:
            state, error = "succeeded", None
        else:
            state, error = "failed", _exit_message(code)
        record.finish(state, self.clock(), exit_code=code, error=error)

    def _run_lua(self, record: TaskRecord) -> None:
        request = record.request
        output = _lua_output(record)
        try:
            run = self.lua.start(
                request.source,
                name=request.name or "task",
                args=request.args,
                timeout_s=request.timeout_s,
                workdir=request.workdir,
            )
            self._arm(record, run.kill)
            result = run.wait(output)
        except LuaTimeoutError as exc:
            record.finish("timeout", self.clock(), error=str(exc))
        except (LuaError, TypeError) as exc:
            record.finish("failed", self.clock(), error=str(exc))
        else:
            record.finish("succeeded", self.clock(), result=result)

    def _arm(self, record: TaskRecord, stop: Callable[[], None]) -> None:
        """Let a cancel reach the running task (and honour one that came first)."""
        with self._lock:
            record.cancel = stop
            asked = record.cancel_requested
        if asked:
            stop()

    # -- reading and cancelling -----------------------------------------------------------------

    def get(self, task_id: str) -> TaskRecord:
        """The record of a task.

        Raises:
            TaskNotFoundError: no such task here (or it was forgotten).
        """
        with self._lock:
            return self.table.get(task_id)

    def recent(self, state: str | None = None, limit: int = 100) -> list[TaskRecord]:
        """The newest tasks first (optionally only those in ``state``)."""
        with self._lock:
            self.table.sweep(self.clock())
            return self.table.recent(state, limit)

    def cancel(self, task_id: str) -> TaskRecord:
        """Cancel a task: a queued one is dropped, a running one stopped (SIGTERM, then SIGKILL).

        A finished task is returned as it is.

        Raises:
            TaskNotFoundError: no such task here.
        """
        stop = None
        with self._lock:
            record = self.table.get(task_id)
            if record.done:
                return record
            record.cancel_requested = True
            if task_id in self._queued:
                self._queued.discard(task_id)
                record.finish("cancelled", self.clock())
                self.table.finished(record)
            else:
                stop = record.cancel
        if stop is not None:
            stop()
        elif record.done:
            for listener in list(self._listeners):
                listener(record)
        return record

    def counts(self) -> dict[str, int]:
        """``{"running": n, "queued": n, "capacity": n, "effective_capacity": n}``."""
        with self._lock:
            return {
                "running": len(self._running),
                "queued": len(self._queued),
                "capacity": self.capacity,
                "effective_capacity": self.effective_capacity(),
            }

    def limit_state(self) -> dict[str, Any]:
        """The last reading of the resource limits, for ``/v1/metrics``."""
        with self._lock:
            verdict = self._verdict
        return {
            "action": self.limits.action,
            "over": verdict.over,
            "warning": verdict.warning,
            "message": verdict.message,
            "readings": dict(verdict.readings),
        }

    @property
    def closing(self) -> bool:
        """True once :meth:`shutdown` began."""
        return self._closing


def _lua_output(record: TaskRecord) -> Callable[[str, str], None]:
    """Where a Lua task's ``print`` and ``log`` lines go: its stdout, or its stderr tagged."""

    def output(stream: str, text: str) -> None:
        if stream == "stdout":
            record.feed("stdout", (text + "\n").encode())
        else:
            record.feed("stderr", f"[{stream}] {text}\n".encode())

    return output


def _new_id() -> str:
    """A task id: 128 random bits as 32 hex digits (a quarter of ``uuid4().hex``'s cost)."""
    return os.urandom(16).hex()


def _start_error(record: TaskRecord, exc: OSError | ValueError) -> str:
    message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    where = f" in {record.request.workdir}" if record.request.workdir else ""
    return f"cannot start the command{where}: {message}"


def _exit_message(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"exit code {code}"
