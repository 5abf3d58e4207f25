"""Run a notebook cell's Lua on this machine: one function, and the executor the magic uses.

:func:`run_cell` passes Python values in as Lua globals, runs the chunk and returns what it
returned. :class:`LocalExecutor` keeps one runtime for a whole notebook session, so globals set
in one cell are there in the next, as in a REPL.

>>> from slothlab.lua import Runtime
>>> rt = Runtime()
>>> run_cell(rt, "return n * 2, label", {"n": 21, "label": "x"}).values
[42, 'x']
>>> run_cell(rt, "return n").value  # globals stay in the runtime
21
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from slothlab.errors import NotebookError
from slothlab.jupyter.base import CellRequest, CellResult

if TYPE_CHECKING:
    from slothlab.lua import Runtime
    from slothlab.workflow import RunResult, TaskEvent

__all__ = [
    "LUA_RESERVED",
    "LocalExecutor",
    "check_lua_name",
    "notebook_output",
    "run_cell",
    "run_workflow",
]

_KEYWORD_TEXT = """and break do else elseif end false for function goto if in local nil not or
repeat return then true until while"""
_STANDARD_TEXT = """_G _VERSION assert coroutine error ipairs math next os pairs pcall print
rawequal rawget rawlen select setmetatable string table tonumber tostring type unpack utf8 xpcall"""
LUA_RESERVED = frozenset(_KEYWORD_TEXT.split()) | frozenset(_STANDARD_TEXT.split())
"""Lua keywords and the sandbox's standard globals: names ``-i`` may not overwrite."""

_QUIET_LEVELS = frozenset({"stdout", "debug", "info"})


def check_lua_name(name: str, protected: frozenset[str] = frozenset()) -> str:
    """Return ``name`` if it can be a new Lua global, else raise :class:`NotebookError`.

    >>> check_lua_name("hosts")
    'hosts'
    >>> check_lua_name("end")
    Traceback (most recent call last):
    ...
    slothlab.errors.NotebookError: 'end' is a Lua keyword or standard global; rename the variable
    """
    if not (name.isascii() and name.isidentifier()):
        raise NotebookError(f"{name!r} is not a valid Lua name (letters, digits and _ only)")
    if name in LUA_RESERVED:
        raise NotebookError(f"{name!r} is a Lua keyword or standard global; rename the variable")
    if name in protected:
        raise NotebookError(f"{name!r} is a slothlab Lua module; rename the variable")
    return name


def run_cell(
    runtime: Runtime,
    code: str,
    inputs: Mapping[str, Any] | None = None,
    *,
    timeout_s: float | None = None,
    name: str = "cell",
    clock: Callable[[], float] = time.perf_counter,
) -> CellResult:
    """Set ``inputs`` as Lua globals of ``runtime``, run ``code`` and return its results.

    Args:
        runtime: the runtime to run in; its globals persist after the call.
        code: Lua source, run as one chunk called ``name`` (errors read ``cell:3: ...``).
        inputs: Python values by global name (see :mod:`slothlab.lua.convert` for the types).
        timeout_s: wall-clock limit; ``None`` or 0 means none.
        clock: where the elapsed time is read from.

    Raises:
        NotebookError: an input name is not a usable Lua name or its value cannot go to Lua.
        LuaError: the chunk failed (its subclasses: syntax, timeout, memory).
    """
    protected = frozenset(runtime.installed)
    for key, value in (inputs or {}).items():
        check_lua_name(key, protected)
        try:
            runtime.set_global(key, value)
        except TypeError as exc:
            raise NotebookError(f"-i {key}: {exc}") from None
    start = clock()
    values = runtime.execute(code, name, timeout_s=timeout_s or None)
    return CellResult(values=values, elapsed_s=clock() - start)


def run_workflow(
    runtime: Runtime,
    name: str | None = None,
    *,
    listener: Callable[[TaskEvent], None] | None = None,
) -> RunResult:
    """Run a workflow that code run in ``runtime`` defined with ``workflow.define``.

    The engine is :class:`slothlab.workflow.Engine`, so tasks run as they do for
    ``slothlab run``: dependency order, parallel branches, retries, timeouts.

    Raises:
        NotebookError: no workflow is defined, or several and ``name`` is None.
        WorkflowError: ``name`` is unknown or the workflow is malformed.

    >>> from slothlab.lua import Runtime
    >>> rt = Runtime()
    >>> _ = rt.execute('''workflow.define("hi", {tasks = {
    ...     {name = "one", command = function() return true, "done" end}}})''')
    >>> run_workflow(rt).tasks["one"].message
    'done'
    """
    from slothlab.workflow import Engine, collect, select_workflow

    specs = collect(runtime)
    names = ", ".join(spec.name for spec in specs)
    if not specs:
        raise NotebookError(
            'no workflow is defined; define one in a %%sloth cell with workflow.define("name", ...)'
        )
    if name is None and len(specs) > 1:
        raise NotebookError(
            f"several workflows are defined ({names}); run one with %sloth run NAME"
        )
    spec = select_workflow(specs, name, "the notebook")
    return Engine(runtime, listener=listener).run(spec)


def notebook_output(stream: str, text: str) -> None:
    """Output sink for notebooks: ``print`` and info logs to stdout, warnings and errors to stderr.

    The streams are looked up at each call, so IPython's capture of the running cell sees them.
    """
    out = sys.stdout if stream in _QUIET_LEVELS else sys.stderr
    prefix = "" if stream == "stdout" else f"[{stream}] "
    print(prefix + text, file=out, flush=True)


def _local_runtime() -> Runtime:
    from slothlab.lua import Capabilities, Runtime

    return Runtime(capabilities=Capabilities.local(), output=notebook_output)


class LocalExecutor:
    """Runs cells in a Lua runtime in this process, one runtime shared by every cell.

    Args:
        runtime_factory: makes a runtime (default: every module, local capabilities, output to
            the notebook). Called on first use, after :meth:`reset`, and for each fresh cell.

    >>> ex = LocalExecutor()
    >>> ex.run(CellRequest("counter = (counter or 0) + 1 return counter")).value
    1
    >>> ex.run(CellRequest("counter = (counter or 0) + 1 return counter")).value
    2
    >>> ex.run(CellRequest("return counter", fresh=True)).value is None
    True
    >>> ex.reset()
    >>> ex.run(CellRequest("return counter")).value is None
    True
    """

    def __init__(self, runtime_factory: Callable[[], Runtime] | None = None) -> None:
        self.runtime_factory = runtime_factory or _local_runtime
        self._runtime: Runtime | None = None

    @property
    def runtime(self) -> Runtime:
        """The shared runtime, made on first use."""
        if self._runtime is None:
            self._runtime = self.runtime_factory()
        return self._runtime

    def run(self, request: CellRequest) -> CellResult:
        """Run ``request`` in the shared runtime (or a new one when ``request.fresh``).

        Ctrl-C (SIGINT) while the chunk runs stops it with ``LuaTimeoutError("interrupted")``.
        """
        runtime = self.runtime_factory() if request.fresh else self.runtime
        with _interrupt_on_sigint(runtime):
            return run_cell(runtime, request.code, request.inputs, timeout_s=request.timeout_s)

    def run_workflow(
        self, name: str | None, listener: Callable[[TaskEvent], None] | None = None
    ) -> RunResult:
        """Run a workflow the shared runtime's cells defined (see :func:`run_workflow`)."""
        runtime = self.runtime
        with _interrupt_on_sigint(runtime):
            return run_workflow(runtime, name, listener=listener)

    def reset(self) -> None:
        """Drop the shared runtime; the next cell gets a new one (no globals)."""
        self._runtime = None


@contextmanager
def _interrupt_on_sigint(runtime: Runtime) -> Iterator[None]:
    # Python's own KeyboardInterrupt would surface inside a Lua hook; asking the runtime to stop
    # makes Ctrl-C end the chunk cleanly and leaves the runtime usable.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: runtime.interrupt())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
