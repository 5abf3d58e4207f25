"""The sandboxed Lua 5.4 runtime every slothlab script runs on.

One :class:`Runtime` is one Lua state (lupa's ``lua54``) with:

* an allow-listed global environment (see ``_sandbox.lua``): no ``os.execute``, ``io``, ``load``,
  ``require``, ``debug``, ``string.dump`` or bytecode; Python objects are opaque (every attribute
  and item access is refused by the attribute handlers);
* an instruction budget, an optional wall-clock deadline and an interrupt, enforced by a count
  hook that ``pcall``, ``xpcall`` and coroutines cannot swallow;
* a memory cap (``max_memory``); hitting it raises :class:`~slothlab.errors.LuaMemoryError` and
  the runtime stays usable;
* the slothlab modules (``state``, ``log``, ``data``, ...) chosen for it; the ones that reach
  outside (``exec``, ``fs``) only when its :class:`Capabilities` switch them on.

C functions (a crafted ``string.find`` pattern) run where no hook fires: code from elsewhere runs
on the worker pool (:mod:`slothlab.lua.pool`), whose processes have rlimits and a wall-clock kill.

>>> rt = Runtime()
>>> rt.execute("return 1 + 1, 'two', {1, 2, nil, 4}")
[2, 'two', [1, 2, None, 4]]
"""

from __future__ import annotations

import functools
import json
import os
import re
import struct
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slothlab.errors import (
    LuaError,
    LuaMemoryError,
    LuaSyntaxError,
    LuaTimeoutError,
    SlothlabError,
)
from slothlab.lua.convert import to_lua, to_python

if TYPE_CHECKING:
    from slothlab.lua.modules.base import LuaModule

__all__ = ["Capabilities", "OutputSink", "Runtime", "file_chunk"]

OutputSink = Callable[[str, str], None]
"""Where a runtime's output goes: ``sink(stream, text)``; stream is ``"stdout"`` or a log level."""


def file_chunk(data: bytes) -> bytes:
    r"""A Lua file's bytes as ``lua FILE`` loads them: no UTF-8 BOM, a ``#`` first line blanked.

    The blank line keeps line numbers in error messages right.

    >>> file_chunk(b"#!/usr/bin/env -S slothlab lua\nreturn 1\n")
    b'\nreturn 1\n'
    >>> file_chunk(b"\xef\xbb\xbfreturn 2")
    b'return 2'
    """
    data = data.removeprefix(b"\xef\xbb\xbf")
    if data.startswith(b"#"):
        newline = data.find(b"\n")
        return b"" if newline < 0 else data[newline:]
    return data


_LOCATION = re.compile(r"^(?P<chunk>[^:\n]+):(?P<line>\d+): (?P<msg>.*)$", re.S)
_SANDBOX_FRAME = re.compile(r"^\s*\?:|^\s*\[C\]: in (upvalue '\?'|function 'xpcall'|\?)$")
_MEMORY = "not enough memory"


@functools.cache
def _sandbox_bytecode() -> bytes:
    """The sandbox chunk compiled once per process (loading bytecode is ~3x cheaper than text).

    Debug information is stripped (cheaper still): sandbox frames show as ``?`` and are
    dropped from tracebacks.

    The bytecode is ours and trusted; user code is only ever loaded as text (mode ``"t"``).
    """
    from lupa.lua54 import LuaRuntime

    source = resources.files("slothlab.lua").joinpath("_sandbox.lua").read_bytes()
    dump = LuaRuntime(encoding=None).eval(
        "function(s) return string.dump(assert(load(s, '=slothlab.sandbox', 't')), true) end"
    )
    return dump(source)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Capabilities:
    """What a runtime may reach outside itself; everything is off unless switched on.

    Attributes:
        exec: run shell commands (the ``exec`` module, string task commands).
        fs: read and write files (the ``fs`` module), below ``fs_root`` when it is set.
        network: open network connections (modules that talk HTTP).
        fs_root: the folder ``fs`` is confined to; ``None`` means no confinement.
    """

    exec: bool = False
    fs: bool = False
    network: bool = False
    fs_root: Path | None = None

    @classmethod
    def local(cls) -> Capabilities:
        """Everything on: for code the user typed on their own machine (notebook, CLI)."""
        return cls(exec=True, fs=True, network=True)


def _default_sink(stream: str, text: str) -> None:
    out = sys.stdout if stream == "stdout" else sys.stderr
    prefix = "" if stream == "stdout" else f"[{stream}] "
    print(prefix + text, file=out, flush=True)


class _AttributeGate:
    """The lupa attribute handlers: an allow-list of ``(type, name)`` pairs, and no set at all.

    Every index of a Python object from Lua (``obj.x``, ``obj[1]``, ``obj[{}]``) comes here;
    only exact types and string names that were allowed with :meth:`Runtime.expose` pass.
    """

    def __init__(self) -> None:
        self.allowed: set[tuple[type, str]] = set()

    def get(self, obj: Any, name: Any) -> Any:
        key = _attribute_name(name)
        if key is None or (type(obj), key) not in self.allowed:
            raise AttributeError(
                f"Python attribute {key or '?'!r} of {type(obj).__name__} is not reachable "
                "from Lua in slothlab's sandbox"
            )
        return getattr(obj, key)

    def set(self, obj: Any, name: Any, value: Any) -> None:
        raise AttributeError("Python attributes cannot be set from Lua in slothlab's sandbox")


def _attribute_name(name: Any) -> str | None:
    if isinstance(name, bytes):
        try:
            name = name.decode("ascii")
        except UnicodeDecodeError:
            return None
    return name if isinstance(name, str) and name.isidentifier() else None


@dataclass
class _Budget:
    instruction_limit: int = 0
    deadline: float | None = None
    used: int = 0
    interrupted: bool = False
    reason: str | None = None


class Runtime:
    """A sandboxed Lua runtime with slothlab's modules.

    A runtime is cheap (well under a millisecond): make one per cell, task or request. It is
    not thread-safe; use it from one thread at a time (:meth:`interrupt` excepted).

    Args:
        modules: names of the modules to offer (default: every registered module whose
            capability is on). See :mod:`slothlab.lua.modules`.
        capabilities: what the runtime may reach (default: nothing outside).
        max_memory_mb: the memory cap of the Lua state (0: no cap).
        instruction_limit: instructions one :meth:`execute` / :meth:`call` may run (0: no limit).
        output: where ``print`` and ``log`` go (default: stdout and stderr).
        context: objects modules need (``state_store``, ``workdir``, ...), shared with them.
        lazy_modules: install each module the first time a script names it (default), rather
            than all of them up front.

    >>> rt = Runtime(instruction_limit=100_000)
    >>> rt.execute("while true do end")
    Traceback (most recent call last):
    ...
    slothlab.errors.LuaTimeoutError: cell:1: CPU budget of 100,000 Lua instructions exceeded
    """

    def __init__(
        self,
        *,
        modules: Iterable[str] | None = None,
        capabilities: Capabilities | None = None,
        max_memory_mb: int = 256,
        instruction_limit: int = 0,
        output: OutputSink | None = None,
        context: Mapping[str, Any] | None = None,
        lazy_modules: bool = True,
    ) -> None:
        from lupa.lua54 import LuaRuntime

        self.capabilities = capabilities or Capabilities()
        self.output: OutputSink = output or _default_sink
        self.context: dict[str, Any] = dict(context or {})
        self._budget = _Budget(instruction_limit=instruction_limit)
        self._depth = 0
        self._gate = _AttributeGate()
        self._lua = LuaRuntime(
            encoding=None,
            register_eval=False,
            register_builtins=False,
            unpack_returned_tuples=True,
            attribute_handlers=(self._gate.get, self._gate.set),
            max_memory=(max_memory_mb << 20) or None,
        )
        setup = self._lua.execute(
            _sandbox_bytecode(),
            self._check,
            self._emit_stdout,
            self._install_pending,
            _python_error_text,
            mode="b",
        )
        self.env: Any = setup[0]
        self._compile, self._run, self._add_lazy, self._err, self._new_env, self._reset = setup[1:]
        self.installed: list[str] = []
        self._pending: dict[str, LuaModule] = {}
        self._modules = None if modules is None else list(modules)
        self._lazy_modules = lazy_modules
        self._install_modules(self._modules, lazy_modules)

    def fresh_env(
        self, *, context: Mapping[str, Any] | None = None, output: OutputSink | None = None
    ) -> None:
        """Start over in a new global environment of the same Lua state (about a third of what a
        new runtime costs: ``bench/lua.py``, ``ratio_fresh_env_vs_new_runtime``).

        Globals, library tables (fresh copies), modules (installed again on first use), the
        context and the random generator's seed all start anew: nothing the code run so far
        did is reachable from code run next. A worker runs each task this way. ``output``
        replaces where ``print`` goes.
        """
        seeds = struct.unpack("<qq", os.urandom(16))
        self.env = self._new_env(*seeds)
        self.context = dict(context or {})
        if output is not None:
            self.output = output
        self._budget = _Budget(instruction_limit=self._budget.instruction_limit)
        self._install_modules(self._modules, self._lazy_modules)

    def memory_used(self, *, collect: bool = False) -> int:
        """Bytes the Lua state holds (0 without a memory cap); ``collect``: after a full
        garbage collection, else garbage included."""
        if collect:
            self._lua.gccollect()
        return int(self._lua.get_memory_used() or 0)

    def close(self) -> None:
        """Free the Lua state now; the runtime cannot be used afterwards.

        The Lua state holds this runtime's callbacks and the runtime holds the state, so
        without ``close`` both wait for Python's cycle collector (a runtime whose modules were
        installed still does: their functions hold the state). The worker pool closes each Lua
        state it replaces.
        """
        self._pending.clear()
        self.env = self._compile = self._run = self._add_lazy = self._err = None
        self._new_env = self._reset = None
        self._lua = None

    # -- set-up -------------------------------------------------------------------------------

    def _install_modules(self, names: Iterable[str] | None, lazy: bool) -> None:
        from slothlab.lua.modules import registry

        chosen = registry.select(names, self.capabilities)
        self.installed = [m.name for m in chosen]
        if lazy:
            self._pending = {m.name: m for m in chosen}
            self._add_lazy(self._lua.table_from([m.name.encode() for m in chosen]))
            return
        for module in chosen:
            module.install(self)

    def _install_pending(self, name: bytes) -> Any:
        module = self._pending.pop(name.decode("utf-8", "replace"), None)
        if module is None:
            return None
        try:
            module.install(self)
        except Exception as exc:  # reported as a Lua error where the script named the module
            return self._err, _error_text(module.name, exc).encode()
        return None

    def expose(self, obj: Any, *attributes: str) -> Any:
        """Let Lua read the named attributes of ``obj`` (and of every object of its exact type).

        Returns ``obj`` itself, to be handed to Lua (e.g. ``rt.env[b"handle"] = rt.expose(h,
        "name")``). Python objects are otherwise opaque to Lua; nothing can ever be set.

        >>> from types import SimpleNamespace
        >>> rt = Runtime()
        >>> rt.env[b"p"] = rt.expose(SimpleNamespace(name="web-1", secret="x"), "name")
        >>> rt.execute("return p.name, pcall(function() return p.secret end)")[:2]
        ['web-1', False]
        """
        for name in attributes:
            if not name.isidentifier() or name.startswith("_"):
                raise ValueError(f"cannot expose attribute {name!r}: use a public identifier")
            self._gate.allowed.add((type(obj), name))
        return obj

    # -- budget -------------------------------------------------------------------------------

    def _check(self, step: int) -> bytes | None:
        b = self._budget
        b.used += step
        if b.interrupted:
            b.reason = "interrupted"
            return b"interrupted"
        if b.instruction_limit and b.used > b.instruction_limit:
            b.reason = f"CPU budget of {b.instruction_limit:,} Lua instructions exceeded"
            return b.reason.encode()
        if b.deadline is not None and time.monotonic() > b.deadline:
            b.reason = "time limit exceeded"
            return b.reason.encode()
        return None

    def interrupt(self) -> None:
        """Stop the code running now (from another thread); it fails with LuaTimeoutError."""
        self._budget.interrupted = True

    def _emit_stdout(self, text: bytes) -> None:
        self.output("stdout", text.decode("utf-8", "replace"))

    # -- values -------------------------------------------------------------------------------

    def to_lua(self, value: Any) -> Any:
        """Convert Python data into Lua values (see :mod:`slothlab.lua.convert`)."""
        return to_lua(self._lua, value)

    def to_python(self, value: Any, *, keep_functions: bool = True) -> Any:
        """Convert a Lua value into Python data (see :mod:`slothlab.lua.convert`)."""
        return to_python(value, keep_functions=keep_functions)

    def table(self, value: Mapping[str, Any] | None = None) -> Any:
        """A new Lua table, filled from ``value``."""
        return self.to_lua(dict(value or {}))

    def set_global(self, name: str, value: Any) -> None:
        """Make ``value`` (converted) a global of the scripts run here."""
        self.env[name.encode()] = self.to_lua(value)

    def get_global(self, name: str) -> Any:
        """A global of the scripts run here, converted to Python."""
        return self.to_python(self.env[name.encode()])

    def python_function(self, fn: Callable[..., Any], name: str = "") -> Any:
        """A Lua function calling ``fn`` with converted arguments, returning converted results.

        ``fn`` returning a tuple gives several Lua results. An exception it raises becomes a
        Lua error at the caller's line; a :class:`SlothlabError`, ``ValueError``, ``TypeError``
        or ``KeyError`` keeps its message, anything else is reported as an internal error.

        >>> rt = Runtime()
        >>> rt.env[b"half"] = rt.python_function(lambda n: n / 2, "half")
        >>> rt.execute("return half(3)")
        [1.5]
        """
        return self._python_call(fn, name or getattr(fn, "__name__", "function"))

    def _python_call(self, fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        # Lua calls this Python callable directly (a C function to Lua, so the caller's line
        # survives a tail call); the sandbox turns a _ModuleError into "chunk:line: message".
        lua = self._lua

        def call(*args: Any) -> Any:
            try:
                result = fn(*(to_python(a) for a in args))
                if isinstance(result, tuple):
                    return tuple(to_lua(lua, r) for r in result)
                return to_lua(lua, result)
            except Exception as exc:  # a bug of ours must not kill the script's host
                raise _ModuleError(_error_text(label, exc)) from None

        return call

    def module_table(self, functions: Mapping[str, Callable[..., Any]], prefix: str = "") -> Any:
        """A Lua table of Lua faces of the given Python functions (see :meth:`python_function`).

        >>> rt = Runtime()
        >>> rt.env[b"m"] = rt.module_table({"add": lambda a, b: a + b}, prefix="m.")
        >>> rt.execute("return m.add(2, 3)")
        [5]
        """
        calls = {n.encode(): self._python_call(f, f"{prefix}{n}") for n, f in functions.items()}
        return self._lua.table_from(calls)

    # -- running ------------------------------------------------------------------------------

    def load(self, code: str | bytes, name: str = "cell", env: Any = None) -> Any:
        """Compile ``code`` (text only, never bytecode) into a Lua function in the sandbox.

        Args:
            code: the Lua source.
            name: the chunk name errors and tracebacks show.
            env: a Lua table to use as the chunk's globals instead of the sandbox env.

        Raises:
            LuaSyntaxError: the chunk does not compile (or is bytecode).
        """
        source = code.encode() if isinstance(code, str) else code
        fn, message = self._compile(source, name.encode(), env)
        if fn is None:
            raise _located(LuaSyntaxError, _text(message))
        return fn

    def execute(
        self,
        code: str | bytes,
        name: str = "cell",
        *,
        timeout_s: float | None = None,
    ) -> list[Any]:
        """Run a chunk and return its results as Python values.

        Raises:
            LuaSyntaxError: the chunk does not compile.
            LuaError: it raised an error (message, chunk, line and traceback attached).
            LuaTimeoutError: it ran past the instruction budget, ``timeout_s`` or an interrupt.
            LuaMemoryError: it reached the memory cap.
        """
        return self.call(self.load(code, name), timeout_s=timeout_s)

    def call(self, fn: Any, *args: Any, timeout_s: float | None = None) -> list[Any]:
        """Call a Lua function under the budget; arguments and results are converted."""
        return [to_python(v) for v in self.call_raw(fn, *args, timeout_s=timeout_s)]

    def call_raw(self, fn: Any, *args: Any, timeout_s: float | None = None) -> list[Any]:
        """Like :meth:`call`, but the results stay Lua values.

        A call made while Lua code runs (a module function calling back into Lua) shares the
        running call's budget; ``timeout_s`` can only shorten it.
        """
        from lupa.lua54 import LuaError as _LupaError
        from lupa.lua54 import LuaMemoryError as _LupaMemoryError

        b = self._budget
        outer_deadline = b.deadline
        if self._depth == 0:
            b.used, b.reason, outer_deadline = 0, None, None
            b.interrupted = False
        if timeout_s:
            limit = time.monotonic() + timeout_s
            b.deadline = limit if outer_deadline is None else min(outer_deadline, limit)
        else:
            b.deadline = outer_deadline
        self._depth += 1
        try:
            result = self._run(fn, *[self.to_lua(a) for a in args])
        except _LupaMemoryError:
            self._after_escape()
            raise LuaMemoryError(f"{_MEMORY}: the Lua memory cap was reached") from None
        except _LupaError as exc:  # an error outside xpcall's reach
            self._after_escape()
            if b.reason:
                raise LuaTimeoutError(b.reason) from None
            raise _located(LuaError, str(exc)) from None
        finally:
            self._depth -= 1
            b.deadline = outer_deadline
        if result[0]:
            return list(result[2 : 2 + result[1]])
        raise self._error_from(result[1])

    def _after_escape(self) -> None:
        """An error left the sandbox's run() itself: at the outermost call, clear what that
        run left set (its nesting count, the budget message, the hook), or every later call
        of this runtime would fail at its first hook."""
        if self._depth == 1:
            self._reset()

    def _error_from(self, info: Any) -> LuaError:
        from slothlab.lua.convert import is_lua_table

        if not is_lua_table(info):  # the handler did not run: memory, or an error in it
            text = _text(info)
            if self._budget.reason:
                return LuaTimeoutError(self._budget.reason)
            if text.endswith(_MEMORY):
                return LuaMemoryError(f"{_MEMORY}: the Lua memory cap was reached")
            return _located(LuaError, text)
        traceback = _clean_traceback(_text(info[b"traceback"]))
        chunk, line = info[b"chunk"], info[b"line"]
        where = (_text(chunk), int(line)) if chunk is not None and line is not None else None
        if info[b"kind"] == b"budget" or self._budget.reason:  # (it may run out in a handler)
            reason = self._budget.reason or _text(info[b"message"])
            return _located(LuaTimeoutError, reason, traceback, where)
        text = _message_text(info[b"message"])
        if text.endswith(_MEMORY):
            return LuaMemoryError(f"{_MEMORY}: the Lua memory cap was reached")
        return _located(LuaError, text, traceback, where)


class _ModuleError(Exception):
    """Raised into Lua by a module function; its text is the Lua error message."""


def _python_error_text(exc: Any) -> bytes | None:
    """The Lua message of a Python exception seen in Lua (None for any other value)."""
    if isinstance(exc, _ModuleError):
        return str(exc).encode()
    if isinstance(exc, BaseException):
        return f"{type(exc).__name__}: {exc}".encode()
    return None


def _error_text(label: str, exc: BaseException) -> str:
    """The Lua error message for an exception raised by a module function."""
    if isinstance(exc, MemoryError | LuaMemoryError):
        return f"{label}: {_MEMORY}"
    if isinstance(exc, SlothlabError | ValueError | TypeError | KeyError):
        return f"{label}: {exc}"
    return f"{label}: internal error: {type(exc).__name__}: {exc}"


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _message_text(message: Any) -> str:
    """A readable one-line text for any error value (``error({code = 2})`` included)."""
    from slothlab.lua.convert import is_lua_table

    if not is_lua_table(message):
        return _text(message)
    try:
        value = to_python(message, keep_functions=False)
        shown = json.dumps(value, ensure_ascii=False, default=_text, sort_keys=True)
    except (SlothlabError, TypeError, ValueError):
        shown = "<a table>"
    return f"error object is a table: {shown}"


def _clean_traceback(text: str) -> str:
    """The Lua traceback without its first line (the message) and the sandbox's own frames."""
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith("stack traceback:")), None)
    if start is None:
        return ""
    frames = [ln for ln in lines[start + 1 :] if not _SANDBOX_FRAME.search(ln)]
    return "\n".join(["stack traceback:", *frames]) if frames else ""


def _located(
    cls: type[LuaError],
    text: str,
    traceback: str = "",
    where: tuple[str, int] | None = None,
) -> LuaError:
    """Build a LuaError from ``chunk:line: message`` text (or from ``where`` when it has none)."""
    first, _, rest = text.partition("\nstack traceback:")
    traceback = traceback or (f"stack traceback:{rest}" if rest else "")
    match = _LOCATION.match(first)
    if match:
        chunk, line = match["chunk"], int(match["line"])
        return cls(first, chunk=chunk, line=line, traceback=traceback)
    if where is not None:
        chunk, line = where
        return cls(f"{chunk}:{line}: {first}", chunk=chunk, line=line, traceback=traceback)
    return cls(first, traceback=traceback)
