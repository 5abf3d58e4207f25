"""The worker process of :class:`~slothlab.lua.pool.WorkerPool`.

Run as ``python -m slothlab.lua._worker``.
 Reads one JSON request a line on stdin, runs it in a fresh sandboxed runtime under
``RLIMIT_CPU``, writes one JSON reply a line on the original stdout. Anything else that writes to
stdout (a stray ``print``) goes to stderr, so it cannot corrupt the protocol.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from pathlib import Path
from typing import Any, BinaryIO

from slothlab.errors import LuaError, LuaMemoryError
from slothlab.lua.pool import wire_decode, wire_encode

__all__ = ["main"]

_MAX_OUTPUT = 1 << 20  # bytes of print output kept per task
_MAX_REPLY = 64 << 20  # bytes of one reply
_MAX_SERIES = 10_000  # custom metric series handed back per task
_MAX_WINDOW = 256  # observations per histogram series handed back (for quantiles)
_MAX_REUSE = 1000  # tasks run in one Lua state before a new one replaces it
_COMPACT = json.JSONEncoder(separators=(",", ":"))  # made once: json.dumps makes one a call
_MAX_HEAP = 16 << 20  # bytes a Lua state may keep between tasks before a new one replaces it


class _Capture:
    """The output sink of a task: keeps (stream, text) pairs up to a size."""

    def __init__(self) -> None:
        self.lines: list[list[str]] = []
        self.room = _MAX_OUTPUT

    def __call__(self, stream: str, text: str) -> None:
        if self.room <= 0:
            return
        self.room -= len(text)
        if self.room <= 0:
            text = text[: len(text) + self.room] + " [output truncated]"
        self.lines.append([stream, text])


def _set_cpu_limit(seconds: float) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(usage.ru_utime + usage.ru_stime + seconds) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _capabilities(spec: dict[str, Any]) -> Any:
    from slothlab.lua.runtime import Capabilities

    root = spec.get("fs_root")
    return Capabilities(
        exec=bool(spec.get("exec")),
        fs=bool(spec.get("fs")),
        network=bool(spec.get("network")),
        fs_root=Path(root) if root else None,
    )


def _error_reply(exc: LuaError, output: _Capture) -> dict[str, Any]:
    error = {
        "type": type(exc).__name__,
        "message": exc.message,
        "chunk": exc.chunk,
        "line": exc.line,
        "traceback": exc.traceback,
    }
    return {"ok": False, "error": error, "output": output.lines}


class _Spare:
    """The runtime of the next task, made ready while the worker waits.

    A worker keeps one Lua state for the tasks that share its options and gives each task a
    fresh global environment of it (:meth:`Runtime.fresh_env <slothlab.lua.runtime.Runtime.
    fresh_env>`: new globals, library copies, modules, context and random seed; about a third of
    a new runtime's cost, ``bench/lua.py``). The state is replaced after ``_MAX_REUSE`` tasks,
    when its heap stays large, after a task that broke in an unexpected way, and for other
    options.
    """

    def __init__(self) -> None:
        self.key: tuple[Any, ...] | None = None
        self.ready: tuple[Any, _Capture] | None = None
        self.kept: Any = None  # the runtime the last task ran in, to reuse
        self.kept_key: tuple[Any, ...] | None = None
        self.uses = 0
        self.cpu_s: Any = None  # the CPU limit set for the ready runtime's task

    def keep(self, runtime: Any, request: dict[str, Any]) -> None:
        """Offer the runtime a task just ran in for the next one."""
        if self.kept is not None and self.kept is not runtime:
            self.kept.close()
        self.kept, self.kept_key = runtime, _options_key(request)

    def make(self, request: dict[str, Any]) -> None:
        """Make a runtime ready with ``request``'s options (nothing when that fails)."""
        if self.ready is not None and self.ready[0] is not self.kept:
            self.ready[0].close()
        self.key, self.ready, self.cpu_s = None, None, None
        output = _Capture()
        key = _options_key(request)
        runtime, self.kept = self.kept, None
        if runtime is not None and (
            self.kept_key != key
            or self.uses >= _MAX_REUSE
            or (runtime.memory_used() > _MAX_HEAP and runtime.memory_used(collect=True) > _MAX_HEAP)
        ):
            runtime.close()
            runtime = None
        try:
            if runtime is None:
                runtime, self.uses = _new_runtime(request, output), 0
            else:
                runtime.fresh_env(context=request.get("context") or {}, output=output)
        except Exception:  # the next task meets (and reports) the same problem itself
            return
        self.uses += 1
        self.key, self.ready = key, (runtime, output)
        # set now, not when the task comes: the worker uses no CPU while it waits for it
        _set_cpu_limit(request["cpu_s"])
        self.cpu_s = request["cpu_s"]

    def take(self, request: dict[str, Any]) -> tuple[Any, _Capture] | None:
        """The ready runtime and its output sink when it suits ``request`` (used up either way);
        the CPU limit is set for ``request`` in either case."""
        ready, self.ready = self.ready, None
        cpu_s, self.cpu_s = self.cpu_s, None
        if ready is not None and self.key != _options_key(request):
            ready[0].close()
            ready = None
        if ready is None or cpu_s != request["cpu_s"]:
            _set_cpu_limit(request["cpu_s"])
        return ready


def _options_key(request: dict[str, Any]) -> tuple[Any, ...]:
    """What decides how a runtime is made (compared with ``==``: dicts regardless of order)."""
    return (
        request.get("modules"),
        request.get("capabilities") or {},
        request.get("max_memory_mb"),
        request.get("instruction_limit") or 0,
        request.get("context") or {},
    )


def _new_runtime(request: dict[str, Any], output: _Capture) -> Any:
    from slothlab.lua.runtime import Runtime

    return Runtime(
        modules=request.get("modules"),
        capabilities=_capabilities(request.get("capabilities") or {}),
        max_memory_mb=request["max_memory_mb"],
        instruction_limit=request.get("instruction_limit") or 0,
        output=output,
        context=request.get("context") or {},
    )


def handle(request: dict[str, Any], spare: _Spare | None = None) -> dict[str, Any]:
    """Run one request (in ``spare``'s runtime when it suits); the reply is JSON-ready.

    The custom metrics the task set (``metrics.gauge``, ``counter``, ...) die with its runtime,
    so the reply carries them (``custom_metrics``, :meth:`CustomMetrics.dump
    <slothlab.metrics.custom.CustomMetrics.dump>`), for the pool to merge into the parent's.
    """
    if spare is not None:
        ready = spare.take(request)  # sets the CPU limit
    else:
        ready = None
        _set_cpu_limit(request["cpu_s"])
    output = ready[1] if ready is not None else _Capture()
    context: dict[str, Any] = {}
    reply = _run(request, output, context, ready[0] if ready is not None else None)
    runtime = context.pop("runtime", None)
    if runtime is not None:
        if spare is not None and not context.pop("broken", False):
            spare.keep(runtime, request)
        else:
            runtime.close()
    custom = context.get("custom_metrics")
    if custom is not None:
        dumped = _bounded(custom.dump(), output)
        if dumped:
            reply["custom_metrics"] = dumped
    return reply


def _bounded(dumped: list[dict[str, Any]], output: _Capture) -> list[dict[str, Any]]:
    """At most ``_MAX_SERIES`` series with ``_MAX_WINDOW`` observations each, so the reply
    stays far below its size cap (quantiles are then taken over fewer observations)."""
    room, kept = _MAX_SERIES, []
    for family in dumped:
        series = family["series"][:room]
        room -= len(series)
        for row in series:
            row["window"] = row["window"][-_MAX_WINDOW:]
        if series:
            kept.append({**family, "series": series})
    if sum(len(f["series"]) for f in dumped) > _MAX_SERIES:
        output("warn", f"custom metrics past {_MAX_SERIES:,} series were not handed back")
    return kept


def _run(
    request: dict[str, Any], output: _Capture, context: dict[str, Any], ready: Any = None
) -> dict[str, Any]:
    """Run the task (in ``ready``, a runtime made ready ahead, or a new one); ``context`` gets
    the runtime's context (its custom metrics), the runtime (``"runtime"``) and whether it
    broke in an unexpected way (``"broken"``) at the end. The caller set the CPU limit."""
    runtime = ready
    try:
        if runtime is None:
            runtime = _new_runtime(request, output)
        for key, value in wire_decode(request.get("globals") or {}).items():
            runtime.set_global(key, value)
        fn = runtime.load(request["code"], request.get("name") or "task")
        args = wire_decode(request.get("args") or [])
        values = runtime.call_raw(fn, *args, timeout_s=request["timeout_s"])
        results = [runtime.to_python(v, keep_functions=False) for v in values]
        return {"ok": True, "results": wire_encode(results), "output": output.lines}
    except LuaError as exc:
        return _error_reply(exc, output)
    except MemoryError:
        context["broken"] = True
        reply = _error_reply(
            LuaMemoryError("not enough memory: the worker's limit was reached"), output
        )
        return {**reply, "retire": True}
    except Exception as exc:  # bad arguments, an unknown module, ...
        context["broken"] = True
        return _error_reply(LuaError(f"{type(exc).__name__}: {exc}"), output)
    finally:
        if runtime is not None:
            context.update(runtime.context)
            context["runtime"] = runtime


def _write(out: BinaryIO, reply: dict[str, Any]) -> None:
    data = _COMPACT.encode(reply).encode()
    if len(data) > _MAX_REPLY:
        error = LuaError(f"task result too large to send back ({len(data):,} bytes)")
        data = json.dumps(_error_reply(error, _Capture())).encode()
    out.write(data + b"\n")
    out.flush()


def main(argv: list[str] | None = None) -> None:
    """Serve requests until stdin closes."""
    parser = argparse.ArgumentParser(prog="slothlab.lua._worker")
    parser.add_argument("--address-space-mb", type=int, default=0)
    options = parser.parse_args(argv)
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if options.address_space_mb:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (options.address_space_mb << 20, hard))

    from slothlab.lua.runtime import Runtime

    Runtime().execute("return 1")  # import lupa and compile the sandbox once, before any task
    _write(out, {"ready": True, "pid": os.getpid()})
    spare = _Spare()
    for line in sys.stdin.buffer:
        try:
            request = json.loads(line)
            reply = handle(request, spare)
        except MemoryError:
            reply = {
                **_error_reply(LuaMemoryError("not enough memory"), _Capture()),
                "retire": True,
            }
        _write(out, reply)
        if reply.get("retire"):
            return
        spare.make(request)  # while the parent reads the reply and sends the next task


if __name__ == "__main__":
    main()
