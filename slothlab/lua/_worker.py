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
    """A runtime made while the worker waits, for a next task with the same options.

    Making the sandboxed runtime is most of a short task's time here (~0.25 ms); made ahead, it
    is off the task's path. A spare serves one task only, so every task still starts in a fresh
    runtime; a task with other options gets a new one as before.
    """

    def __init__(self) -> None:
        self.key: tuple[Any, ...] | None = None
        self.ready: tuple[Any, _Capture] | None = None

    def make(self, request: dict[str, Any]) -> None:
        """Make a runtime with ``request``'s options (nothing when that fails)."""
        if self.ready is not None:
            self.ready[0].close()
        self.key, self.ready = None, None
        output = _Capture()
        try:
            runtime = _new_runtime(request, output)
        except Exception:  # the next task meets (and reports) the same problem itself
            return
        self.key, self.ready = _options_key(request), (runtime, output)

    def take(self, request: dict[str, Any]) -> tuple[Any, _Capture] | None:
        """The spare runtime and its output sink when it suits ``request`` (used up either way)."""
        ready, self.ready = self.ready, None
        if ready is not None and self.key != _options_key(request):
            ready[0].close()
            return None
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
    ready = spare.take(request) if spare is not None else None
    output = ready[1] if ready is not None else _Capture()
    context: dict[str, Any] = {}
    reply = _run(request, output, context, ready[0] if ready is not None else None)
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
    """Run the task (in ``ready``, a fresh runtime made ahead, or a new one); ``context`` gets
    the runtime's context (its custom metrics) at the end."""
    _set_cpu_limit(request["cpu_s"])
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
        reply = _error_reply(
            LuaMemoryError("not enough memory: the worker's limit was reached"), output
        )
        return {**reply, "retire": True}
    except Exception as exc:  # bad arguments, an unknown module, ...
        return _error_reply(LuaError(f"{type(exc).__name__}: {exc}"), output)
    finally:
        if runtime is not None:
            context.update(runtime.context)
            runtime.close()


def _write(out: BinaryIO, reply: dict[str, Any]) -> None:
    data = json.dumps(reply, separators=(",", ":")).encode()
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
