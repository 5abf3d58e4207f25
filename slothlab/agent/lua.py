"""Lua tasks on the sandboxed worker pool, one worker per running task so a cancel can kill it.

:class:`LuaRunner` keeps up to ``size`` one-worker :class:`~slothlab.lua.pool.WorkerPool`\\ s,
made on first need and reused, the most recently used first (its process and caches are warm:
a no-op task takes ~25 % less than on a worker idle the longest). A task borrows one for its
run; :meth:`LuaRun.kill` kills that pool's worker (the pool starts a new one for its next task) —
with one shared pool there would be no telling which worker runs which task. Task arguments
arrive as ``...``; the results come back as a JSON-ready list (bytes and non-string keys tagged
as on the pool's wire).

>>> runner = LuaRunner(size=1)
>>> run = runner.start("local a, b = ... print('sum') return a + b", args=[2, 3])
>>> run.wait(lambda stream, text: None)
[5]
>>> runner.close()
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from slothlab.lua.pool import WorkerPool, wire_encode

__all__ = ["LuaRun", "LuaRunner"]

OutputSink = Callable[[str, str], None]


class LuaRun:
    """One Lua task on a borrowed one-worker pool."""

    def __init__(
        self, runner: LuaRunner, pool: WorkerPool, code: str, options: dict[str, Any]
    ) -> None:
        self._runner, self._pool = runner, pool
        self._code, self._options = code, options
        self.killed = False
        self._over = False
        self._lock = threading.Lock()

    def wait(self, output: OutputSink) -> list[Any]:
        """Run the chunk in the calling thread; its results as a JSON-ready list.

        Raises:
            LuaError: the chunk failed, timed out or its worker was killed.
        """
        try:
            results = self._pool.run(self._code, output=output, **self._options)
        finally:
            with self._lock:  # after this a kill must not reach the pool's next task
                self._over = True
            self._runner.give_back(self._pool)
        return wire_encode(results)  # type: ignore[no-any-return]

    def kill(self) -> None:
        """Stop the task now: SIGKILL its worker (the task fails; the pool starts a new one)."""
        with self._lock:
            if self._over:
                return
            self.killed = True
            worker = self._pool.workers[0]
            if worker is not None:
                worker.kill()


class LuaRunner:
    """Up to ``size`` one-worker pools, lent to running Lua tasks.

    Args:
        size: how many Lua tasks may run at once (the agent's capacity).
        max_memory_mb: the memory cap of each task's runtime.
        capabilities: what task code may reach (``{"exec": bool, "fs": bool, ...}``; default
            nothing outside the sandbox).
        env: extra environment of the workers.
    """

    def __init__(
        self,
        size: int = 4,
        *,
        max_memory_mb: int = 256,
        capabilities: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError(f"a Lua runner needs room for at least one task, not {size}")
        self.size = size
        self.max_memory_mb = max_memory_mb
        self.capabilities = dict(capabilities or {})
        self._env = dict(env or {})
        self._idle: list[WorkerPool] = []  # a stack: the last one given back goes out first
        self._all: list[WorkerPool] = []
        self._lock = threading.Condition()
        self._closed = False

    def warm(self) -> None:
        """Start one worker now, so the first task does not wait for it."""
        self.give_back(self._borrow())

    def start(
        self,
        code: str,
        *,
        name: str = "task",
        args: Sequence[Any] = (),
        timeout_s: float = 60.0,
        workdir: str | None = None,
    ) -> LuaRun:
        """Borrow a worker for one task; :meth:`LuaRun.wait` runs it.

        Raises:
            TypeError: an argument cannot be sent to a worker.
        """
        options = self._options(name, args, timeout_s, workdir)
        return LuaRun(self, self._borrow(), code, options)

    def start_async(
        self,
        loop: asyncio.AbstractEventLoop,
        code: str,
        done: Callable[[list[Any] | None, BaseException | None], None],
        *,
        name: str = "task",
        args: Sequence[Any] = (),
        timeout_s: float = 60.0,
        workdir: str | None = None,
        output: OutputSink | None = None,
    ) -> Callable[[], None] | None:
        """Run a task from the event loop on an idle, warm worker, without a thread.

        Call it on ``loop``'s thread; ``done(results, None)`` or ``done(None, error)`` is
        called there at the end, never from this call (results as :meth:`LuaRun.wait` gives
        them). Returns the task's kill (callable from any thread), or None when nothing
        started (no started worker is idle, or the idle one was gone): then use
        :meth:`start`, which waits for or starts one in its own thread.

        Raises:
            TypeError: an argument cannot be sent to a worker.
        """
        pool = self._borrow_warm()
        if pool is None:
            return None

        def finished(results: Any, error: BaseException | None) -> None:
            self.give_back(pool)
            done(results, error)  # results in wire form already, as LuaRun.wait gives them

        options = self._options(name, args, timeout_s, workdir)
        try:
            kill = pool.start_async(loop, code, finished, output=output, **options)
        except BaseException:
            self.give_back(pool)
            raise
        if kill is None:
            self.give_back(pool)
        return kill

    def _options(
        self, name: str, args: Sequence[Any], timeout_s: float, workdir: str | None
    ) -> dict[str, Any]:
        return {
            "name": name,
            "args": list(args),
            "timeout_s": timeout_s,
            "capabilities": self.capabilities,
            "context": {"workdir": workdir} if workdir else {},
        }

    def _borrow_warm(self) -> WorkerPool | None:
        """The most recently used idle pool when its worker is running, else None."""
        with self._lock:
            if self._closed or not self._idle:
                return None
            pool = self._idle[-1]
            if pool.workers[0] is None:  # starting one would hold up the loop
                return None
            return self._idle.pop()  # dead since its last task: start_async notices (EPIPE)

    def _borrow(self) -> WorkerPool:
        with self._lock:
            while True:
                if self._closed:
                    raise RuntimeError("the Lua runner is closed")
                if self._idle:
                    pool = self._idle.pop()
                    pool.drop_dead()  # a kill that came after its last reply, or a crash
                    return pool
                if len(self._all) < self.size:
                    pool = WorkerPool(1, max_memory_mb=self.max_memory_mb, env=self._env)
                    self._all.append(pool)
                    return pool
                self._lock.wait()

    def give_back(self, pool: WorkerPool) -> None:
        """Return a borrowed pool."""
        with self._lock:
            self._idle.append(pool)
            self._lock.notify()

    def close(self) -> None:
        """Stop every worker (tasks still running finish first)."""
        with self._lock:
            self._closed = True
            pools, self._all = self._all, []
            self._lock.notify_all()
        for pool in pools:
            pool.close()
