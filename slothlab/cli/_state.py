"""``slothlab state get|set|del|keys|ttl|locks|stats``: the state store from the shell.

Values are JSON on the command line (``slothlab state set k '{"a": 1}' --ttl 60``); text that
is not JSON is taken as a plain string. Output is JSON. Errors are one line on stderr, exit 1.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from slothlab.state import Store

__all__ = ["state_group"]


@click.group("state")
@click.option(
    "--path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The store file (default: SLOTHLAB_STATE_PATH, else <SLOTHLAB_HOME>/state.db).",
)
@click.pass_context
def state_group(ctx: click.Context, path: Path | None) -> None:
    """Read and change the persistent state store."""
    ctx.obj = path


def _run(action: Callable[[Store], Any]) -> None:
    """Open the store, run ``action``, print its result as JSON; one-line errors, exit 1."""
    from slothlab.errors import SlothlabError
    from slothlab.state import Store

    path = click.get_current_context().obj  # set by the group from --path
    try:
        with Store(path) as store:
            result = action(store)
    except (SlothlabError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps(_jsonable(result), ensure_ascii=False))


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # as `slothlab lua` prints it: JSON has no NaN or Infinity
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def parse_value(text: str) -> Any:
    """A command-line value: JSON when it parses, the text itself otherwise.

    >>> parse_value('{"a": 1}'), parse_value("42"), parse_value("hello"), parse_value('"42"')
    ({'a': 1}, 42, 'hello', '42')
    >>> parse_value("1e400")  # no JSON number: it would come back as Infinity
    '1e400'
    """
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):
        return text


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is too large for a number the store keeps")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a value the store keeps")


@state_group.command("get")
@click.argument("key")
@click.option("--default", "default", default=None, help="JSON printed when KEY is missing.")
def get_command(key: str, default: str | None) -> None:
    """Print the value of KEY (null, or --default, when missing)."""
    fallback = None if default is None else parse_value(default)
    _run(lambda s: s.get(key, fallback))


@state_group.command("set")
@click.argument("key")
@click.argument("value")
@click.option("--ttl", type=float, default=None, help="Seconds the value lives.")
def set_command(key: str, value: str, ttl: float | None) -> None:
    """Store VALUE (JSON, or plain text) under KEY."""
    parsed = parse_value(value)
    _run(lambda s: s.set(key, parsed, ttl))


@state_group.command("del")
@click.argument("keys", nargs=-1, required=True)
def del_command(keys: tuple[str, ...]) -> None:
    """Delete KEYS."""
    _run(lambda s: all([s.delete(k) for k in keys]))


@state_group.command("keys")
@click.argument("pattern", default="*")
def keys_command(pattern: str) -> None:
    """List live keys matching PATTERN (glob: * and ?)."""
    _run(lambda s: s.keys(pattern))


@state_group.command("ttl")
@click.argument("key")
@click.option("--set", "seconds", type=float, default=None, help="Give KEY this TTL.")
@click.option("--persist", is_flag=True, help="Remove the TTL of KEY.")
def ttl_command(key: str, seconds: float | None, persist: bool) -> None:
    """Print seconds left for KEY (-1: no TTL, -2: missing); or change its TTL."""
    if seconds is not None and persist:
        raise click.UsageError("give --set or --persist, not both")
    if seconds is not None:
        _run(lambda s: s.set_ttl(key, seconds))
    elif persist:
        _run(lambda s: s.persist(key))
    else:
        _run(lambda s: s.get_ttl(key))


@state_group.command("locks")
def locks_command() -> None:
    """List held locks: name, owner, fence, expiry."""
    _run(lambda s: [info.as_dict() for info in s.locks()])


@state_group.command("stats")
def stats_command() -> None:
    """Print key and lock counts, file size and path."""
    _run(lambda s: s.stats())
