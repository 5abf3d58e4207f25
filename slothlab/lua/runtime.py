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

import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from slothlab.errors import (
    LuaError,
    LuaMemoryError,
    LuaSyntaxError,
    LuaTimeoutError,
    SlothlabError,
)
from slothlab.lua.convert import to_lua, to_python

__all__ = ["Capabilities", "OutputSink", "Runtime"]

OutputSink = Callable[[str, str], None]
"""Where a runtime's output goes: ``sink(stream, text)``; stream is ``"stdout"`` or a log level."""

_SANDBOX_SOURCE = resources.files("slothlab.lua").joinpath("_sandbox.lua").read_bytes()
_LOCATION = re.compile(r"^(?P<chunk>[^:\n]+):(?P<line>\d+): (?P<msg>.*)$", re.S)


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


def _refuse_get(obj: Any, name: Any) -> Any:
    raise AttributeError("Python attributes are not reachable from Lua in slothlab's sandbox")


def _refuse_set(obj: Any, name: Any, value: Any) -> None:
    raise AttributeError("Python attributes cannot be set from Lua in slothlab's sandbox")


@dataclass
class _Budget:
    instruction_limit: int = 0
    deadline: float | None = None
    used: int = 0
    interrupted: threading.Event = field(default_factory=threading.Event)
    reason: str | None = None


class Runtime:
    """A sandboxed Lua runtime with slothlab's modules.

    Args:
        modules: names of the modules to install (default: every registered module whose
            capability is on). See :mod:`slothlab.lua.modules`.
        capabilities: what the runtime may reach (default: nothing outside).
        max_memory_mb: the memory cap of the Lua state.
        instruction_limit: instructions one :meth:`execute` / :meth:`call` may run (0: no limit).
        output: where ``print`` and ``log`` go (default: stdout and stderr).
        context: objects modules need (``state_store``, ``workdir``, ...), shared with them.
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
    ) -> None:
        from lupa.lua54 import LuaRuntime

        self.capabilities = capabilities or Capabilities()
        self.output: OutputSink = output or _default_sink
        self.context: dict[str, Any] = dict(context or {})
        self._budget = _Budget(instruction_limit=instruction_limit)
        self._lua = LuaRuntime(
            encoding=None,
            register_eval=False,
            register_builtins=False,
            unpack_returned_tuples=True,
            attribute_handlers=(_refuse_get, _refuse_set),
            max_memory=max_memory_mb << 20,
        )
        setup = self._lua.execute(_SANDBOX_SOURCE, self._check, self._emit_stdout)
        self.env, self._compile, self._run, self._wrap, self._reset, self._err = setup
        self._clear_globals()
        self.installed: list[str] = []
        self._install_modules(modules)

    # -- set-up -------------------------------------------------------------------------------

    def _clear_globals(self) -> None:
        g = self._lua.globals()
        for name in list(g.keys()):
            g[name] = None

    def _install_modules(self, names: Iterable[str] | None) -> None:
        from slothlab.lua.modules import registry

        for module in registry.select(names, self.capabilities):
            module.install(self)
            self.installed.append(module.name)

    # -- budget -------------------------------------------------------------------------------

    def _check(self, step: int) -> bytes | None:
        b = self._budget
        b.used += step
        if b.interrupted.is_set():
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
        self._budget.interrupted.set()

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
        Lua error at the caller's line; a :class:`SlothlabError`, ``ValueError`` or
        ``TypeError`` keeps its message, anything else is reported as an internal error.
        """
        label = name or getattr(fn, "__name__", "function")
        err = self._err

        def call(*args: Any) -> Any:
            try:
                result = fn(*(to_python(a) for a in args))
            except (SlothlabError, ValueError, TypeError, KeyError) as exc:
                return err, f"{label}: {exc}".encode()
            except Exception as exc:  # a bug of ours must not kill the script's host
                return err, f"{label}: internal error: {type(exc).__name__}: {exc}".encode()
            if isinstance(result, tuple):
                return tuple(self.to_lua(r) for r in result)
            return self.to_lua(result)

        return self._wrap(call)

    def module_table(self, functions: Mapping[str, Callable[..., Any]], prefix: str = "") -> Any:
        """A Lua table of Lua faces of the given Python functions (see :meth:`python_function`)."""
        table = self._lua.table()
        for fname, fn in functions.items():
            table[fname.encode()] = self.python_function(fn, f"{prefix}{fname}")
        return table

    # -- running ------------------------------------------------------------------------------

    def load(self, code: str | bytes, name: str = "cell") -> Any:
        """Compile ``code`` (text only, never bytecode) into a Lua function in the sandbox."""
        source = code.encode() if isinstance(code, str) else code
        fn, message = self._compile(source, name.encode())
        if fn is None:
            text = to_python(message)
            raise _located(LuaSyntaxError, str(text))
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
        """Like :meth:`call`, but the results stay Lua values."""
        from lupa.lua54 import LuaError as _LupaError
        from lupa.lua54 import LuaMemoryError as _LupaMemoryError

        b = self._budget
        b.used, b.reason = 0, None
        b.interrupted.clear()
        b.deadline = time.monotonic() + timeout_s if timeout_s else None
        self._reset()
        lua_args = [self.to_lua(a) for a in args]
        try:
            result = self._run(fn, *lua_args)
        except _LupaMemoryError:
            raise LuaMemoryError("not enough memory: the Lua memory cap was reached") from None
        except _LupaError as exc:  # an error outside xpcall's reach (e.g. in the handler)
            raise _located(LuaError, str(exc)) from None
        finally:
            b.deadline = None
        if result[0]:
            return list(result[2 : 2 + result[1]])
        raise self._error_from(result[1])

    def _error_from(self, info: Any) -> LuaError:
        from slothlab.lua.convert import is_lua_table

        if not is_lua_table(info):  # the handler itself failed, which only memory exhaustion does
            text = str(to_python(info, keep_functions=False))
            if self._budget.reason:
                return LuaTimeoutError(self._budget.reason)
            return LuaMemoryError(f"not enough memory: the Lua memory cap was reached ({text})")
        kind = to_python(info[b"kind"])
        message = info[b"message"]
        if kind == "budget":
            return LuaTimeoutError(self._budget.reason or str(to_python(message)))
        text = str(to_python(message, keep_functions=False))
        if text.endswith("not enough memory"):
            return LuaMemoryError("not enough memory: the Lua memory cap was reached")
        traceback = str(to_python(info[b"traceback"]) or "")
        return _located(LuaError, text, traceback)


def _located(cls: type[LuaError], text: str, traceback: str = "") -> LuaError:
    """Build a LuaError from ``chunk:line: message`` text."""
    first, _, rest = text.partition("\nstack traceback:")
    match = _LOCATION.match(first)
    if match:
        chunk, line, msg = match["chunk"], int(match["line"]), match["msg"]
        message = f"{chunk}:{line}: {msg}"
        return cls(message, chunk=chunk, line=line, traceback=traceback or rest.strip())
    return cls(first, traceback=traceback or rest.strip())
