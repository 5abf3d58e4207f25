"""Run a workflow on this machine: dependency order, parallel branches, retries, timeouts.

Threads and Lua: one Lua state must not be entered by two threads at once, so every call into
the runtime (Lua commands, hooks, conditions, ``on_complete``) holds one lock, and Lua function
tasks run one at a time. Shell-string commands and shell conditions run outside that lock, so
independent shell tasks really overlap (up to ``max_parallel``, default 4, or the workflow's
``config.max_parallel``). Retries wait 1 s, 2 s, 4 s, ... through the injected ``sleep``.

>>> from slothlab.workflow.model import TaskSpec, WorkflowSpec
>>> spec = WorkflowSpec("w", [TaskSpec("c", depends_on=("b",)), TaskSpec("b"), TaskSpec("a")])
>>> topological_order(spec)
['b', 'a', 'c']
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from slothlab.errors import LuaError, LuaTimeoutError, SlothlabError, WorkflowError
from slothlab.workflow.durations import parse_duration
from slothlab.workflow.model import RunResult, TaskResult, TaskSpec, TaskStatus, WorkflowSpec

if TYPE_CHECKING:
    from slothlab.lua.runtime import Runtime
    from slothlab.protocol import TaskInfo
    from slothlab.workflow.remote import RemoteRunner

__all__ = ["Engine", "TaskEvent", "topological_order", "validate"]

EventKind = Literal["begin", "start", "retry", "finish", "complete_error"]


@dataclass(frozen=True)
class TaskEvent:
    """Progress of a run, for a listener (the CLI prints these).

    Attributes:
        kind: ``"begin"`` (the run starts; ``message`` is the workflow's description),
            ``"start"`` (an attempt begins), ``"retry"`` (an attempt failed, waiting),
            ``"finish"`` (the task ended, see ``result``), ``"complete_error"`` (on_complete
            raised; ``message`` says what).
        task: the task's name (the workflow's name for ``"begin"``, "" for on_complete).
        attempt: the attempt number (1-based; 0 when not applicable).
        message: what happened.
        result: the task's result, on ``"finish"``.
        delay_s: the wait before the next attempt, on ``"retry"``.
    """

    kind: EventKind
    task: str
    attempt: int = 0
    message: str = ""
    result: TaskResult | None = None
    delay_s: float = 0.0


Listener = Callable[[TaskEvent], None]


def validate(spec: WorkflowSpec) -> None:
    """Check that every dependency exists and that there is no cycle.

    Raises:
        WorkflowError: naming the unknown dependency, or the cycle (``a -> b -> a``).
    """
    names = {t.name for t in spec.tasks}
    for task in spec.tasks:
        for dep in task.depends_on:
            if dep not in names:
                raise WorkflowError(
                    f"workflow {spec.name!r}: task {task.name!r} depends on {dep!r}, which is not "
                    f"a task of this workflow (tasks: {', '.join(sorted(names))})"
                )
    cycle = _find_cycle(spec)
    if cycle:
        raise WorkflowError(
            f"workflow {spec.name!r}: dependency cycle {' -> '.join(cycle)} (each depends on "
            "the next); remove one of these depends_on entries"
        )


def _find_cycle(spec: WorkflowSpec) -> list[str]:
    deps = {t.name: t.depends_on for t in spec.tasks}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str]:
        state[name] = 1
        path.append(name)
        for dep in deps[name]:
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[name] = 2
        return []

    for task in spec.tasks:
        if task.name not in state and (found := visit(task.name)):
            return found
    return []


def topological_order(spec: WorkflowSpec) -> list[str]:
    """Task names in an order where each comes after its dependencies (stable: script order)."""
    validate(spec)
    done: list[str] = []
    left = [t for t in spec.tasks]
    while left:
        ready = [t for t in left if all(d in done for d in t.depends_on)]
        done.extend(t.name for t in ready)
        left = [t for t in left if t not in ready]
    return done


class Engine:
    """Runs workflows locally through the runtime that defined them.

    Args:
        runtime: the Lua runtime whose functions the workflow's tasks are.
        workdir: default working directory of shell commands and ``params.workdir``.
        sleep: waits between retries (inject a fake to test without waiting).
        clock: monotonic seconds (durations, the workflow deadline).
        listener: receives :class:`TaskEvent` objects, from worker threads.
        max_parallel: tasks running at once (the workflow's ``config.max_parallel`` wins).
        backoff_s: the first retry's wait; each next one doubles it.
        remote: sends tasks with ``delegate_to`` to agents (default: one made on first use,
            talking to the local cluster's master or ``master.url``).
        delegate_to: where tasks without their own ``delegate_to`` run (``slothlab run -d``);
            empty: here.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        workdir: str | Path | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        listener: Listener | None = None,
        max_parallel: int = 4,
        backoff_s: float = 1.0,
        remote: RemoteRunner | None = None,
        delegate_to: tuple[str, ...] = (),
    ) -> None:
        self.runtime = runtime
        self.workdir = str(workdir or runtime.context.get("workdir") or Path.cwd())
        self.sleep = sleep
        self.clock = clock
        self.listener = listener
        self.max_parallel = max_parallel
        self.backoff_s = backoff_s
        self._remote = remote
        self.delegate_to = delegate_to
        self._lua_lock = threading.RLock()

    @property
    def remote(self) -> RemoteRunner:
        """What sends delegated tasks to agents (made on first use)."""
        with self._lua_lock:
            if self._remote is None:
                from slothlab.workflow.remote import RemoteRunner

                self._remote = RemoteRunner()
            return self._remote

    # -- the run ------------------------------------------------------------------------------

    def run(self, spec: WorkflowSpec) -> RunResult:
        """Run ``spec`` and return every task's result; ``on_complete`` is called at the end.

        Raises:
            WorkflowError: the workflow is malformed (unknown dependency, cycle, bad config).
        """
        validate(spec)
        run = _Run(self, spec)
        self._emit(TaskEvent("begin", spec.name, message=spec.description))
        result = run.execute()
        self._on_complete(spec, result)
        return result

    def _on_complete(self, spec: WorkflowSpec, result: RunResult) -> None:
        if spec.on_complete is None:
            return
        results = {n: {**r.to_json(), "success": r.ok} for n, r in result.tasks.items()}
        try:
            self.call_lua(spec.on_complete, result.success, results)
        except LuaError as exc:
            self._emit(TaskEvent("complete_error", "", message=f"on_complete failed: {exc}"))

    def _emit(self, event: TaskEvent) -> None:
        if self.listener is not None:
            self.listener(event)

    # -- calls into Lua and the shell ---------------------------------------------------------

    def call_lua(self, fn: Any, *args: Any, timeout_s: float | None = None) -> list[Any]:
        """Call a Lua function under the runtime lock; results stay Lua values."""
        with self._lua_lock:
            return self.runtime.call_raw(fn, *args, timeout_s=timeout_s)

    def to_python(self, value: Any) -> Any:
        """A Lua value as plain data (functions become ``"<function>"``), under the lock."""
        with self._lua_lock:
            return self.runtime.to_python(value, keep_functions=False)

    def shell(self, command: str, workdir: str, timeout_s: float | None) -> Any:
        """Run a shell command (needs the runtime's ``exec`` capability)."""
        from slothlab.lua.modules.exec import run_shell

        if not self.runtime.capabilities.exec:
            raise WorkflowError(
                "shell commands need the exec capability (local runs have it; this runtime "
                "was created without it)"
            )
        return run_shell(command, workdir=workdir, timeout_s=timeout_s)


class _Run:
    """The state of one run: results so far, what is running, whether it was aborted."""

    def __init__(self, engine: Engine, spec: WorkflowSpec) -> None:
        self.engine, self.spec = engine, spec
        self.results: dict[str, TaskResult] = {}
        self.blocked: set[str] = set()  # skipped because something failed: not a success
        self.aborted_by: str | None = None
        self.started = engine.clock()
        timeout = spec.config.get("timeout")
        where = f"workflow {spec.name!r}: config.timeout"
        self.deadline = self.started + parse_duration(timeout, where) if timeout else None
        self.max_parallel = _max_parallel(spec, engine.max_parallel)

    def execute(self) -> RunResult:
        pending = [t.name for t in self.spec.tasks]
        running: dict[Future[tuple[TaskResult, bool]], str] = {}
        with ThreadPoolExecutor(self.max_parallel, thread_name_prefix="slothlab-task") as pool:
            while pending or running:
                for name in self._ready(pending, len(running)):
                    pending.remove(name)
                    running[pool.submit(self._task, self.spec.task(name))] = name
                if not running:
                    break
                try:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                except KeyboardInterrupt:  # stop the Lua task now; shell tasks end on their own
                    self.engine.runtime.interrupt()
                    if self.engine._remote is not None:  # and cancel what runs on agents
                        self.engine._remote.cancel_all()
                    raise
                for future in done:
                    del running[future]
                    result, abort = future.result()
                    self.results[result.name] = result
                    if abort and self.aborted_by is None:
                        self.aborted_by = result.name
        return self._result()

    def _ready(self, pending: list[str], n_running: int) -> list[str]:
        """Skip what cannot run any more; return what may start now (within max_parallel)."""
        ready: list[str] = []
        changed = True
        while changed:
            changed = False
            for name in list(pending):
                why = self._why_not(self.spec.task(name))
                if why is not None:
                    self._skip(name, why)
                    pending.remove(name)
                    changed = True
        for name in pending:
            task = self.spec.task(name)
            if all(d in self.results for d in task.depends_on):
                ready.append(name)
        return ready[: max(self.max_parallel - n_running, 0)]

    def _why_not(self, task: TaskSpec) -> str | None:
        if self.aborted_by is not None:
            return f"not run: the workflow was aborted by task {self.aborted_by!r}"
        if self.deadline is not None and self.engine.clock() >= self.deadline:
            return "not run: the workflow's timeout (config.timeout) was reached"
        for dep in task.depends_on:
            if dep in self.blocked or (dep in self.results and not self.results[dep].ok):
                return f"skipped: dependency {dep!r} did not succeed"
        return None

    def _skip(self, name: str, why: str) -> None:
        self.blocked.add(name)
        result = TaskResult(name=name, status="skipped", message=why)
        self.results[name] = result
        self.engine._emit(TaskEvent("finish", name, message=why, result=result))

    def _task(self, task: TaskSpec) -> tuple[TaskResult, bool]:
        inputs = {d: self.results[d].outputs for d in task.depends_on}
        return _TaskRunner(self.engine, task, self).run(inputs)

    def remaining(self) -> float | None:
        if self.deadline is None:
            return None
        return max(self.deadline - self.engine.clock(), 0.0)

    def _result(self) -> RunResult:
        ordered = {t.name: self.results[t.name] for t in self.spec.tasks}
        success = self.aborted_by is None and all(
            r.ok and r.name not in self.blocked for r in ordered.values()
        )
        return RunResult(
            workflow=self.spec.name,
            success=success,
            tasks=ordered,
            aborted_by=self.aborted_by,
            duration_s=self.engine.clock() - self.started,
        )


def _max_parallel(spec: WorkflowSpec, default: int) -> int:
    value = spec.config.get("max_parallel", default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WorkflowError(
            f"workflow {spec.name!r}: config.max_parallel must be a whole number of at least 1"
        )
    return value


class _HookFailed(Exception):
    """A hook or condition failed; the message names it."""


class _TaskRunner:
    """Runs one task: conditions, hooks, attempts with retries."""

    def __init__(self, engine: Engine, task: TaskSpec, run: _Run) -> None:
        self.engine, self.task, self.run_state = engine, task, run
        self.workdir = task.workdir or engine.workdir
        self.this = task.describe()
        self.params = {**task.params, "task_name": task.name, "workdir": self.workdir}
        self.attempts = 0

    def run(self, inputs: dict[str, Any]) -> tuple[TaskResult, bool]:
        start = self.engine.clock()
        self.engine._emit(TaskEvent("start", self.task.name, attempt=1))
        abort = False
        try:
            status, message, outputs, abort = self._body(inputs)
        except _HookFailed as exc:
            status, message, outputs = "failed", str(exc), {}
        result = TaskResult(
            name=self.task.name,
            status=status,
            message=message,
            outputs=outputs,
            attempts=self.attempts,
            duration_s=self.engine.clock() - start,
            started_at=start,
        )
        self.engine._emit(TaskEvent("finish", self.task.name, self.attempts, message, result))
        return result, abort

    def _body(self, inputs: dict[str, Any]) -> tuple[TaskStatus, str, dict[str, Any], bool]:
        task = self.task
        if task.abort_if is not None and self._condition(task.abort_if, "abort_if"):
            return "failed", "aborted: abort_if is true, the workflow stops", {}, True
        if task.run_if is not None and not self._condition(task.run_if, "run_if"):
            return "skipped", "skipped: run_if is false", {}, False
        if task.pre_exec is not None:
            self._hook(task.pre_exec, "pre_exec", self.this, self.params)
        ok, message, outputs = self._attempts(inputs)
        if task.post_exec is not None:
            self._hook(task.post_exec, "post_exec", self.this, self.params, outputs)
        if ok and task.on_success is not None:
            self._hook(task.on_success, "on_success", self.this, self.params, outputs)
        if not ok and task.on_failure is not None:
            err = {"error": message, "task": task.name, "attempts": self.attempts}
            self._hook(task.on_failure, "on_failure", self.this, self.params, err)
        return ("success" if ok else "failed"), message, outputs, False

    # -- attempts -------------------------------------------------------------------------------

    def _attempts(self, inputs: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
        ok, message, outputs = True, "nothing to do", dict[str, Any]()
        for attempt in range(1, self.task.retries + 2):
            self.attempts = attempt
            if attempt > 1:
                self.engine._emit(TaskEvent("start", self.task.name, attempt=attempt))
            ok, message, outputs = self._attempt(inputs)
            if ok or attempt > self.task.retries:
                break
            delay = self.engine.backoff_s * 2 ** (attempt - 1)
            event = TaskEvent("retry", self.task.name, attempt, message, delay_s=delay)
            self.engine._emit(event)
            self.engine.sleep(delay)
        return ok, message, outputs

    def _timeout(self) -> float | None:
        left = self.run_state.remaining()
        if left is None:
            return self.task.timeout_s
        return left if self.task.timeout_s is None else min(left, self.task.timeout_s)

    def _attempt(self, inputs: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
        command, timeout = self.task.command, self._timeout()
        if timeout is not None and timeout <= 0:
            return False, "not run: the workflow's timeout (config.timeout) was reached", {}
        if command is None:
            return True, "nothing to do", {}
        targets = self.task.delegate_to or self.engine.delegate_to
        if targets:
            return self._remote_attempt(command, inputs, timeout, targets)
        if isinstance(command, str):
            return self._shell_attempt(command, timeout)
        try:
            raw = self.engine.call_lua(command, self.this, self.params, inputs, timeout_s=timeout)
        except LuaTimeoutError as exc:
            if "interrupted" in str(exc):
                return False, "interrupted", {}
            return False, f"timed out after {_secs(timeout)}", {}
        except LuaError as exc:
            return False, str(exc), {}
        return self._interpret(raw)

    def _shell_attempt(
        self, command: str, timeout: float | None
    ) -> tuple[bool, str, dict[str, Any]]:
        try:
            res = self.engine.shell(command, self.workdir, timeout)
        except (OSError, ValueError, SlothlabError) as exc:
            return False, f"cannot run the command: {getattr(exc, 'strerror', None) or exc}", {}
        outputs = {"stdout": res.stdout, "stderr": res.stderr, "exit_code": res.exit_code}
        if res.timed_out:
            return False, f"timed out after {_secs(timeout)}", outputs
        return _shell_outcome(res.success, res.exit_code, res.stdout, res.stderr, outputs)

    def _remote_attempt(
        self, command: Any, inputs: dict[str, Any], timeout: float | None, entries: tuple[str, ...]
    ) -> tuple[bool, str, dict[str, Any]]:
        """Run the command on an agent (see :mod:`slothlab.workflow.remote`)."""
        from slothlab.workflow.remote import parse_targets

        remote, targets = self.engine.remote, parse_targets(entries)
        try:
            if isinstance(command, str):
                info = remote.shell(self.task, targets, command, timeout, self.attempts)
            else:
                args = [self.this, self.params, inputs]
                info = remote.lua(self.task, targets, args, timeout, self.attempts)
        except SlothlabError as exc:
            return False, str(exc), {}
        return _remote_outcome(info, timeout)

    def _interpret(self, raw: list[Any]) -> tuple[bool, str, dict[str, Any]]:
        values = [self.engine.to_python(v) for v in raw[:3]]
        first = values[0] if values else None
        if not isinstance(first, bool):
            got = "nothing" if not values else f"a {_lua_type(first)}"
            return False, f"the command must return true or false first (it returned {got})", {}
        message = values[1] if len(values) > 1 and values[1] is not None else ""
        outputs = values[2] if len(values) > 2 and values[2] is not None else {}
        if not isinstance(outputs, dict):
            return False, "the command's outputs (third value) must be a table of name = value", {}
        default = "ok" if first else "failed"
        return first, str(message) if message != "" else default, outputs

    # -- hooks and conditions -------------------------------------------------------------------

    def _hook(self, fn: Any, what: str, *args: Any) -> list[Any]:
        try:
            return self.engine.call_lua(fn, *args, timeout_s=self.task.timeout_s)
        except LuaError as exc:
            raise _HookFailed(f"{what} failed: {exc}") from None

    def _condition(self, cond: Any, what: str) -> bool:
        if isinstance(cond, str):
            try:
                return bool(self.engine.shell(cond, self.workdir, self.task.timeout_s).success)
            except (OSError, ValueError, SlothlabError) as exc:
                raise _HookFailed(f"{what} failed: {exc}") from None
        raw = self._hook(cond, what, self.this, self.params)
        first = self.engine.to_python(raw[0]) if raw else None
        return first is not None and first is not False


def _shell_outcome(
    success: bool, exit_code: int | None, stdout: str, stderr: str, outputs: dict[str, Any]
) -> tuple[bool, str, dict[str, Any]]:
    if success:  # the last line printed says more than "exit 0"
        last = stdout.strip().splitlines()[-1:]
        return True, last[0][:200] if last else "exit 0", outputs
    tail = stderr.strip().splitlines()[-1:] or stdout.strip().splitlines()[-1:]
    return False, f"exit {exit_code}" + (f": {tail[0]}" if tail else ""), outputs


def _remote_outcome(info: TaskInfo, timeout: float | None) -> tuple[bool, str, dict[str, Any]]:
    """A finished agent task as ``ok, message, outputs`` (the message names the agent)."""
    on = f" (on {info.agent})"
    if info.state == "timeout":
        return False, f"timed out after {_secs(timeout)}{on}", {}
    if info.kind == "shell" and info.exit_code is not None:
        outputs = {"stdout": info.stdout, "stderr": info.stderr, "exit_code": info.exit_code}
        ok, message, outputs = _shell_outcome(
            info.state == "succeeded", info.exit_code, info.stdout, info.stderr, outputs
        )
        return ok, message + on, {**outputs, "agent": info.agent}
    if info.state != "succeeded":
        return False, f"{info.state}{on}: {info.error or 'no reason given'}", {}
    return _lua_outcome(info.result or [], on)


def _lua_outcome(values: list[Any], on: str) -> tuple[bool, str, dict[str, Any]]:
    first = values[0] if values else None
    if not isinstance(first, bool):
        got = "nothing" if not values else f"a {_lua_type(first)}"
        return False, f"the command must return true or false first (it returned {got}){on}", {}
    message = values[1] if len(values) > 1 and values[1] is not None else ""
    outputs = values[2] if len(values) > 2 and values[2] is not None else {}
    if outputs == []:  # an empty Lua table comes back as a JSON array
        outputs = {}
    if not isinstance(outputs, dict):
        return False, f"the command's outputs (third value) must be a table{on}", {}
    text = str(message) if message != "" else ("ok" if first else "failed")
    return first, text + on, outputs


def _secs(value: float | None) -> str:
    return f"{round(value, 2):g} s" if value is not None else "?"


def _lua_type(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str | bytes):
        return "string"
    if isinstance(value, dict | list):
        return "table"
    return "function"
