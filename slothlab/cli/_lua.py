"""``slothlab lua FILE`` and ``slothlab lua -e CODE``: run a Lua chunk, print the results."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

__all__ = ["lua_command"]


@click.command("lua")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-e", "--execute", "code", help="Lua code to run instead of a file.")
@click.option("--timeout", type=float, default=None, help="Wall-clock limit in seconds.")
def lua_command(file: Path | None, code: str | None, timeout: float | None) -> None:
    """Run a Lua chunk locally and print what it returns as JSON (one value, or a list)."""
    from slothlab.errors import LuaError
    from slothlab.lua import Capabilities, Runtime

    if (file is None) == (code is None):
        raise click.UsageError("give either a FILE or -e CODE")
    if file is not None:
        try:
            code = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot read {file}: {exc.strerror}") from None
        name = file.name
    else:
        name = "-e"
    assert code is not None
    runtime = Runtime(capabilities=Capabilities.local())
    try:
        results = runtime.execute(code, name, timeout_s=timeout)
    except LuaError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    value = results[0] if len(results) == 1 else results
    click.echo(json.dumps(_jsonable(value), ensure_ascii=False))


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if callable(value):
        return "<function>"
    return value
