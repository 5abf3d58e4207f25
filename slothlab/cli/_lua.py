"""``slothlab lua FILE`` and ``slothlab lua -e CODE``: run a Lua chunk, print the results.

The results print as one JSON document: the value itself when the chunk returns one value, a
list when it returns several (or none). NaN and infinities print as ``null``; a function cannot
be printed and is an error. Any failure prints one line (``error: chunk:line: message``) on
stderr and exits with status 1; ``--traceback`` adds the Lua traceback.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

__all__ = ["lua_command"]


class _NotJson(Exception):
    """A result holds a value JSON cannot show."""


@click.command("lua")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-e", "--execute", "code", help="Lua code to run instead of a file.")
@click.option("--timeout", type=float, default=None, help="Wall-clock limit in seconds.")
@click.option("--traceback", "show_traceback", is_flag=True, help="Show the Lua traceback.")
def lua_command(
    file: Path | None, code: str | None, timeout: float | None, show_traceback: bool
) -> None:
    """Run a Lua chunk locally and print what it returns as JSON (one value, or a list).

    FILE may be - for standard input.
    """
    from slothlab.config import load_settings
    from slothlab.errors import LuaError, SlothlabError
    from slothlab.lua import Capabilities, Runtime

    if (file is None) == (code is None):
        raise click.UsageError("give either a FILE or -e CODE")
    if timeout is not None and not timeout > 0:
        raise click.UsageError("--timeout must be a positive number of seconds")
    source: str | bytes = code or ""
    name = "-e"
    if file is not None:
        source, name = _read(file), file.name if str(file) != "-" else "stdin"
    try:
        settings = load_settings()
        runtime = Runtime(
            capabilities=Capabilities.local(),
            max_memory_mb=int(settings.get("lua.max_memory_mb")),
            instruction_limit=int(settings.get("lua.instruction_limit")),
        )
        results = runtime.execute(source, name, timeout_s=timeout)
        value = results[0] if len(results) == 1 else results
        text = json.dumps(_jsonable(value, "result"), ensure_ascii=False, allow_nan=False)
    except LuaError as exc:
        _fail(str(exc), exc.traceback if show_traceback else "")
    except (SlothlabError, _NotJson) as exc:
        _fail(str(exc))
    click.echo(text)


def _read(file: Path) -> bytes:
    if str(file) == "-":  # the usual spelling of standard input: `echo 'return 1' | slothlab lua -`
        return sys.stdin.buffer.read()
    try:
        from slothlab.lua.runtime import file_chunk

        return file_chunk(file.read_bytes())  # bytes: Lua strings may hold any byte
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror or exc}")


def _fail(message: str, traceback: str = "") -> NoReturn:
    click.echo(f"error: {message.splitlines()[0] if message else 'unknown error'}", err=True)
    if traceback:
        click.echo(traceback, err=True)
    sys.exit(1)


def _jsonable(value: Any, path: str) -> Any:
    """``value`` made of JSON types only; NaN and infinities become None."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [_jsonable(v, f"{path}[{i + 1}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {_key(k): _jsonable(v, f"{path}.{_key(k)}") for k, v in value.items()}
    kind = "a function" if callable(value) else f"a {type(value).__name__}"
    raise _NotJson(
        f"{path} is {kind}, which JSON cannot show; return data (numbers, strings, booleans, "
        "tables) instead"
    )


def _key(key: Any) -> str:
    if isinstance(key, bytes):
        return key.decode("utf-8", "replace")
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)
