"""A pool of worker processes for Lua that comes from elsewhere (the network, other users).

Each worker is a long-lived ``python -m slothlab.lua._worker`` process that imported lupa once;
every task runs in a fresh sandboxed :class:`~slothlab.lua.runtime.Runtime` inside it. On top of
the runtime's own budget (instruction hook, memory cap), a task that is stuck where no hook fires
(a crafted ``string.find`` pattern runs in C) is stopped by the process limits:

* ``RLIMIT_CPU`` set in the worker before each task (CPU used so far + the task's budget);
* ``RLIMIT_AS`` on the worker's address space;
* a wall-clock kill by the parent: past ``timeout_s`` + ``kill_grace_s`` the worker gets SIGKILL,
  the task fails with :class:`~slothlab.errors.LuaTimeoutError` and a new worker takes its place.

Workers get a minimal environment (no secrets of the parent's), ``/`` as their directory, and
talk JSON lines over pipes (JSON, not pickle: a worker is never trusted with the parent's
objects). Results are JSON-able Python values; bytes and non-string keys survive the trip.

The custom metrics a task sets (``metrics.gauge``, ``counter``, ``histogram``, ``timer``) would
die with its runtime: the worker hands them back with the reply and the pool merges them into
its ``custom_metrics`` (by default the process's, :func:`~slothlab.metrics.custom.
default_custom_metrics`, which ``slothlab agent start`` exports on ``/metrics``): counters and
histograms add up over tasks, gauges keep the last task's value.

>>> with WorkerPool(size=1) as pool:
...     pool.run("local a, b = ... return a + b, {x = 1}", args=[2, 3])
[5, {'x': 1}]
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slothlab.errors import (
    LuaError,
    LuaMemoryError,
    LuaSyntaxError,
    LuaTimeoutError,
    SlothlabError,
)

if TYPE_CHECKING:
    from slothlab.metrics.custom import CustomMetrics

__all__ = ["OutputSink", "WorkerPool", "wire_decode", "wire_encode"]

log = logging.getLogger(__name__)

_ERRORS: dict[str, type[LuaError]] = {
    c.__name__: c for c in (LuaError, LuaSyntaxError, LuaTimeoutError, LuaMemoryError)
}
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])

OutputSink = Callable[[str, str], None]

_COMPACT = json.JSONEncoder(separators=(",", ":"))  # made once: json.dumps makes one a call


# -- wire format ------------------------------------------------------------------------------


def wire_encode(value: Any) -> Any:
    """JSON-ready form of a result or argument: bytes and non-string-keyed dicts are tagged.

    >>> wire_decode(json.loads(json.dumps(wire_encode({1: b"\\xff", "a": [1.5, None]}))))
    {1: b'\\xff', 'a': [1.5, None]}
    """
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, list | tuple):
        return [wire_encode(v) for v in value]
    if isinstance(value, dict):
        if all(type(k) is str and not k.startswith("$") for k in value):
            return {k: wire_encode(v) for k, v in value.items()}
        return {"$map": [[wire_encode(k), wire_encode(v)] for k, v in value.items()]}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(
        f"cannot send a {type(value).__name__} to or from a Lua worker; use numbers, strings, "
        "bytes, booleans, None, lists and dicts of them"
    )


def wire_decode(value: Any) -> Any:
    """The inverse of :func:`wire_encode`."""
    if isinstance(value, list):
        return [wire_decode(v) for v in value]
    if isinstance(value, dict):
        if "$bytes" in value:
            return base64.b64decode(value["$bytes"])
        if "$map" in value:
            return {_hashable(wire_decode(k)): wire_decode(v) for k, v in value["$map"]}
        return {k: wire_decode(v) for k, v in value.items()}
    return value


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


# -- one worker process -----------------------------------------------------------------------


class _WorkerDied(Exception):
    def __init__(self, returncode: int | None) -> None:
        super().__init__(returncode)
        self.returncode = returncode


class _Worker:
    """One worker process and its pipes."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: str) -> None:
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            close_fds=True,
            start_new_session=True,  # a Ctrl-C in the parent's terminal is the parent's business
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin
        self._in_fd = self._in.fileno()
        self._out = self.proc.stdout.fileno()
        self._chunks: list[bytes] = []  # a reply's pieces until its newline comes
        self.killed = False

    def send(self, line: bytes) -> None:
        """Write one request line (JSON and a newline)."""
        view = memoryview(line)
        try:
            while view:
                view = view[os.write(self._in_fd, view) :]
        except OSError:
            raise _WorkerDied(self.proc.poll()) from None

    @property
    def out_fd(self) -> int:
        """The worker's reply pipe."""
        return self._out

    def read_ready(self) -> bytes | None:
        """Read what the pipe holds now (it must be readable); the next message's line once
        whole, else None. Raises _WorkerDied at the end of the pipe."""
        return self._kept_line() or self._take(self._read())

    def receive(self, deadline: float | None) -> Any:
        """The next message; None when the deadline passed first. Raises _WorkerDied."""
        line = self._kept_line()
        while line is None:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                return None
            ready, _, _ = select.select([self._out], [], [], wait)
            if ready:
                line = self._take(self._read())
        return json.loads(line)

    def _read(self) -> bytes:
        chunk = os.read(self._out, (1 << 20) if self._chunks else (1 << 16))
        if not chunk:
            raise _WorkerDied(self.proc.wait())
        return chunk

    def _take(self, chunk: bytes) -> bytes | None:
        """Keep ``chunk``; the whole line once its newline came (linear in the reply's size:
        a 50 MB reply is ~800 reads)."""
        end = chunk.find(b"\n")
        if end < 0:
            self._chunks.append(chunk)
            return None
        line = b"".join([*self._chunks, chunk[:end]])
        rest = chunk[end + 1 :]
        self._chunks = [rest] if rest else []
        return line

    def _kept_line(self) -> bytes | None:
        """A whole line left over from an earlier read (a worker writes one per request)."""
        if len(self._chunks) == 1 and b"\n" in self._chunks[0]:
            line, _, rest = self._chunks[0].partition(b"\n")
            self._chunks = [rest] if rest else []
            return line
        return None

    @property
    def alive(self) -> bool:
        """Not killed and still running."""
        return not self.killed and self.proc.poll() is None

    def kill(self) -> int | None:
        self.killed = True
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait()

    def close(self, timeout_s: float = 2.0) -> None:
        with contextlib.suppress(OSError):
            self._in.close()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# -- the pool ---------------------------------------------------------------------------------


_LOOP_PARSE_MAX = 1 << 20  # bytes of a reply parsed on the event loop; larger ones in a thread
_LOOP_REQUEST_MAX = 1 << 16  # bytes of a request the loop writes (an empty pipe takes them at once)


AsyncDone = Callable[[Any, BaseException | None], None]
"""``done(results, None)`` or ``done(None, error)``: the end of a task started on the loop."""


class _AsyncExchange:
    """One task's request and reply on the event loop (see :meth:`WorkerPool.start_async`)."""

    def __init__(
        self,
        pool: WorkerPool,
        slot: int,
        worker: _Worker,
        task: _Task,
        loop: asyncio.AbstractEventLoop,
        done: AsyncDone,
    ) -> None:
        self.pool, self.slot, self.worker, self.task = pool, slot, worker, task
        self.loop, self.done = loop, done
        self.fd = worker.out_fd
        self.timer: asyncio.TimerHandle | None = None
        self.lock = threading.Lock()
        self.over = False  # the reply is in (or the worker gone): a kill must not touch it now
        self.settled = False

    def start(self) -> bool:
        """Send the request; False when the worker was gone before it (nothing started)."""
        try:
            self.worker.send(self.task.line)
        except _WorkerDied:  # died or was killed while idle: the request never reached it
            self.pool._drop(self.slot, kill=False)
            self.pool._idle.put(self.slot)
            return False
        self.loop.add_reader(self.fd, self._readable)
        limit = self.task.timeout_s + self.pool.kill_grace_s
        self.timer = self.loop.call_later(limit, self._timed_out)
        return True

    def kill(self) -> None:
        """Stop the task now (from any thread): SIGKILL its worker, unless the reply is in."""
        with self.lock:
            if not self.over:
                self.worker.kill()

    def _readable(self) -> None:
        try:
            line = self.worker.read_ready()
        except _WorkerDied as died:
            self._stop()
            self.pool._drop(self.slot, kill=False)
            self._settle(error=_death_error(died.returncode, self.task.timeout_s))
            return
        if line is None:
            return
        self._stop()
        with self.lock:
            self.over = True
        if len(line) <= _LOOP_PARSE_MAX:
            try:
                reply = json.loads(line)
            except ValueError as exc:
                self._settle(error=LuaError(f"the worker's reply could not be read: {exc}"))
                return
            self._settle(reply=reply)
            return
        parsing = self.loop.run_in_executor(None, json.loads, line)  # not on the loop
        parsing.add_done_callback(self._parsed)

    def _parsed(self, parsing: asyncio.Future[Any]) -> None:
        error = parsing.exception()
        if error is not None:
            self._settle(error=LuaError(f"the worker's reply could not be read: {error}"))
        else:
            self._settle(reply=parsing.result())

    def _timed_out(self) -> None:
        self._stop()
        self.pool._drop(self.slot)
        error = LuaTimeoutError(
            f"task ran past its time limit of {self.task.timeout_s:g} s; its worker was killed"
        )
        self._settle(error=error)

    def _stop(self) -> None:
        self.loop.remove_reader(self.fd)
        if self.timer is not None:
            self.timer.cancel()

    def _settle(
        self, *, reply: dict[str, Any] | None = None, error: Exception | None = None
    ) -> None:
        with self.lock:
            self.over = True
        if self.settled:
            return
        self.settled = True
        if reply is not None and reply.get("retire"):  # before another task can take the slot
            self.pool._drop(self.slot, kill=False)
        self.pool._idle.put(self.slot)
        try:
            if error is not None:
                raise error
            assert reply is not None
            results = self.pool._results(self.slot, self.task, reply, decode=False)
        except Exception as exc:  # handed to the caller's done
            self.done(None, exc)
            return
        self.done(results, None)


@dataclass
class _Task:
    name: str
    line: bytes  # the request as the worker reads it: JSON and a newline
    timeout_s: float
    output: OutputSink | None


class WorkerPool:
    """N long-lived worker processes running Lua tasks in fresh sandboxed runtimes.

    Args:
        size: the number of workers (tasks beyond it wait in a queue).
        max_memory_mb: the Lua memory cap of each task's runtime.
        address_space_mb: ``RLIMIT_AS`` of each worker (default: ``max_memory_mb`` + 768).
        default_timeout_s: the wall-clock (and CPU) limit of a task that names none.
        kill_grace_s: how long past its limit a task may run before its worker is killed (the
            runtime's own deadline normally ends it first, without losing the worker).
        env: extra environment variables for the workers (nothing of the parent's is passed
            on but ``PATH`` and ``LANG``).
        output: where tasks' ``print`` output goes (default: dropped); a task may name its own.
        start_timeout_s: how long a new worker may take to start.
        custom_metrics: where tasks' custom metrics are merged (default: the process's,
            :func:`~slothlab.metrics.custom.default_custom_metrics`).
    """

    def __init__(
        self,
        size: int = 2,
        *,
        max_memory_mb: int = 256,
        address_space_mb: int | None = None,
        default_timeout_s: float = 30.0,
        kill_grace_s: float = 0.5,
        env: Mapping[str, str] | None = None,
        output: OutputSink | None = None,
        start_timeout_s: float = 30.0,
        python: str = sys.executable,
        custom_metrics: CustomMetrics | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"a worker pool needs at least one worker, not {size}")
        self.size = size
        self.max_memory_mb = max_memory_mb
        self.default_timeout_s = default_timeout_s
        self.kill_grace_s = kill_grace_s
        self.output = output
        self.start_timeout_s = start_timeout_s
        self._custom_metrics = custom_metrics
        space = address_space_mb or max_memory_mb + 768
        self._command = [python, "-m", "slothlab.lua._worker", "--address-space-mb", str(space)]
        self._env = _worker_env(env)
        self._closed = False
        self._lock = threading.Lock()
        self.workers: list[_Worker | None] = [None] * size
        # Idle worker slots; run() borrows one and talks to its worker from the calling thread.
        self._idle: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="lua-pool")
        for slot in range(size):
            threading.Thread(target=self._first_start, args=(slot,), daemon=True).start()

    # -- public -------------------------------------------------------------------------------

    def run(
        self,
        code: str,
        name: str = "task",
        *,
        args: Sequence[Any] = (),
        globals: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
        instruction_limit: int = 0,
        modules: Iterable[str] | None = None,
        capabilities: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        output: OutputSink | None = None,
    ) -> list[Any]:
        """Run a chunk on a worker (in the calling thread) and return its results.

        Args:
            code: Lua source text.
            name: the chunk name errors show.
            args: values passed to the chunk as ``...``.
            globals: extra globals of the chunk.
            timeout_s: the task's wall-clock and CPU limit (default: ``default_timeout_s``).
            instruction_limit: a Lua instruction budget on top (0: none).
            modules: the modules to offer (default: all those its capabilities allow).
            capabilities: ``{"exec": bool, "fs": bool, "network": bool, "fs_root": str}``
                (default: nothing outside).
            context: JSON-able settings the modules read (``runtime.context``).
            output: where this task's ``print`` output goes (default: the pool's).

        Raises:
            TypeError: an argument or global cannot be sent to a worker.
            SlothlabError: the pool is closed.
        """
        return self._run(
            self._task(
                code,
                name,
                args=args,
                globals=globals,
                timeout_s=timeout_s,
                instruction_limit=instruction_limit,
                modules=modules,
                capabilities=capabilities,
                context=context,
                output=output,
            )
        )

    def submit(self, code: str, name: str = "task", **options: Any) -> Future[list[Any]]:
        """Queue a chunk; the future gives its results (a list) or raises a LuaError.

        Takes the arguments of :meth:`run`.

        Raises:
            TypeError: an argument or global cannot be sent to a worker.
            SlothlabError: the pool is closed.
        """
        task = self._task(code, name, **options)
        return self._executor.submit(self._run, task)

    def _task(
        self,
        code: str,
        name: str,
        *,
        args: Sequence[Any] = (),
        globals: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
        instruction_limit: int = 0,
        modules: Iterable[str] | None = None,
        capabilities: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        output: OutputSink | None = None,
    ) -> _Task:
        if self._closed:
            raise SlothlabError("the Lua worker pool is closed; create a new WorkerPool")
        limit = self.default_timeout_s if timeout_s is None else float(timeout_s)
        if not limit > 0:
            raise ValueError(f"timeout_s must be a positive number of seconds, not {timeout_s!r}")
        request = {
            "code": code,
            "name": name,
            "args": wire_encode(list(args)),
            "globals": wire_encode(dict(globals or {})),
            "timeout_s": limit,
            "cpu_s": math.ceil(limit),
            "instruction_limit": instruction_limit,
            "max_memory_mb": self.max_memory_mb,
            "modules": None if modules is None else list(modules),
            "capabilities": dict(capabilities or {}),
            "context": dict(context or {}),
        }
        line = _COMPACT.encode(request).encode() + b"\n"  # refused here, if at all
        return _Task(name, line, limit, output or self.output)

    def close(self) -> None:
        """Finish the queued tasks, stop the workers and wait for them."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._executor.shutdown(wait=True)
        for _ in range(self.size):
            slot = self._idle.get()
            worker, self.workers[slot] = self.workers[slot], None
            if worker is not None:
                worker.close()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- workers ------------------------------------------------------------------------------

    def _first_start(self, slot: int) -> None:
        with contextlib.suppress(LuaError):  # reported to this slot's first task, which retries
            self._start(slot)
        self._idle.put(slot)

    def _start(self, slot: int) -> _Worker:
        worker = _Worker(self._command, self._env, "/")
        self.workers[slot] = worker
        try:
            hello = worker.receive(time.monotonic() + self.start_timeout_s)
        except _WorkerDied as died:
            self.workers[slot] = None
            raise LuaError(f"a Lua worker failed to start (exit code {died.returncode})") from None
        if not (isinstance(hello, dict) and hello.get("ready")):
            worker.kill()
            worker.close()
            self.workers[slot] = None
            raise LuaError("a Lua worker did not start in time")
        return worker

    def _run(self, task: _Task) -> list[Any]:
        slot = self._idle.get()
        try:
            reply = self._exchange(slot, task)
            if reply.get("retire"):  # before another task can take the slot
                self._drop(slot, kill=False)
        finally:
            self._idle.put(slot)
        return self._results(slot, task, reply)

    def start_async(
        self,
        loop: asyncio.AbstractEventLoop,
        code: str,
        done: AsyncDone,
        name: str = "task",
        **options: Any,
    ) -> Callable[[], None] | None:
        """Send a chunk to an idle, running worker from the event loop, without a thread.

        Call it on ``loop``'s thread. The request goes out at once and the loop reads the reply
        (``add_reader``), so a task costs no thread hand-offs (each a wake-up, dearest on an
        idle machine). Takes the arguments of :meth:`run`. ``done(results, None)`` (the
        results in wire form, as :func:`wire_encode` gives them) or ``done(None, error)`` (a
        :class:`LuaError`) is called on the loop later, never from this call. Returns the
        task's kill (callable from any thread; it does nothing once the reply is in), or None
        when nothing started: no started worker is idle, the idle one was gone (killed or
        died since its last task; its slot starts a new one on the thread path) or the
        request is over 64 KiB (use :meth:`run` then, in a thread of its own).

        Raises:
            TypeError: an argument or global cannot be sent to a worker.
            SlothlabError: the pool is closed.
        """
        task = self._task(code, name, **options)
        if len(task.line) > _LOOP_REQUEST_MAX:  # the write could wait for the worker
            return None
        try:
            slot = self._idle.get_nowait()
        except queue.Empty:
            return None
        worker = self.workers[slot]
        if worker is None or worker.killed:
            if worker is not None:  # killed while idle: the thread path starts another
                self._drop(slot, kill=False)
            self._idle.put(slot)
            return None
        exchange = _AsyncExchange(self, slot, worker, task, loop, done)
        return exchange.kill if exchange.start() else None

    def drop_dead(self) -> None:
        """Forget workers that died or were killed since their last task (their slot's next
        task starts a new one instead of failing on a dead pipe)."""
        for slot, worker in enumerate(self.workers):
            if worker is not None and not worker.alive:
                self._drop(slot, kill=False)

    def _results(
        self, slot: int, task: _Task, reply: dict[str, Any], *, decode: bool = True
    ) -> list[Any]:
        """What a reply means: output and metrics handed on, the results (in wire form when
        not ``decode``) or the error."""
        if task.output is not None:
            for stream, text in reply.get("output", []):
                task.output(stream, text)
        if reply.get("custom_metrics"):
            self._merge_metrics(reply["custom_metrics"], task)
        if reply.get("retire"):
            self._drop(slot, kill=False)
        if not reply.get("ok"):
            raise _error(reply["error"])
        results = reply["results"]
        return wire_decode(results) if decode else results  # type: ignore[no-any-return]

    @property
    def custom_metrics(self) -> CustomMetrics:
        """Where tasks' custom metrics are merged."""
        if self._custom_metrics is None:
            from slothlab.metrics.custom import default_custom_metrics

            self._custom_metrics = default_custom_metrics()
        return self._custom_metrics

    def _merge_metrics(self, dumped: Any, task: _Task) -> None:
        if not isinstance(dumped, list):
            return
        for problem in self.custom_metrics.merge(dumped):
            log.warning("task %s: %s", task.name, problem)
            if task.output is not None:
                task.output("warn", problem)

    def _exchange(self, slot: int, task: _Task) -> dict[str, Any]:
        worker = self.workers[slot] or self._start(slot)
        deadline = time.monotonic() + task.timeout_s + self.kill_grace_s
        try:
            worker.send(task.line)
            reply = worker.receive(deadline)
        except _WorkerDied as died:
            self._drop(slot, kill=False)
            raise _death_error(died.returncode, task.timeout_s) from None
        if reply is None:
            self._drop(slot)
            raise LuaTimeoutError(
                f"task ran past its time limit of {task.timeout_s:g} s; its worker was killed"
            )
        return reply  # type: ignore[no-any-return]

    def _drop(self, slot: int, *, kill: bool = True) -> None:
        """Forget the slot's worker (killing it); the slot's next task starts a new one."""
        worker, self.workers[slot] = self.workers[slot], None
        if worker is not None:
            if kill:
                worker.kill()
            worker.close()


def _worker_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "C.UTF-8",
        "PYTHONPATH": _PACKAGE_ROOT,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update(extra or {})
    return env


def _error(info: Mapping[str, Any]) -> LuaError:
    cls = _ERRORS.get(str(info.get("type")), LuaError)
    return cls(
        str(info.get("message", "")),
        chunk=info.get("chunk"),
        line=info.get("line"),
        traceback=str(info.get("traceback", "")),
    )


def _death_error(returncode: int | None, timeout_s: float) -> LuaError:
    if returncode == -signal.SIGXCPU:
        return LuaTimeoutError(
            f"task used more than its CPU limit of {math.ceil(timeout_s)} s; its worker was stopped"
        )
    if returncode == -signal.SIGKILL:
        return LuaError("the Lua worker was killed (signal 9, often the out-of-memory killer)")
    how = f"signal {-returncode}" if returncode and returncode < 0 else f"exit code {returncode}"
    return LuaError(f"the Lua worker crashed ({how}); a new one replaces it")
