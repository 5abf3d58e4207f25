"""``slothlab config get|set|unset|list|path|features``: the settings file and feature flags.

``set`` takes ``KEY=VALUE`` or ``KEY VALUE``; values are TOML (``true``, ``8080``, ``0.5``,
``["web", "eu"]``, ``"quoted"``) or plain text, and a known key's value must have its default's
type. Unknown keys are allowed (plugins read their own), but a ``features.*`` key must name a
feature. Exit status: 0 done, 1 ``get`` of a key that has no value, 2 bad input.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from slothlab.config import (
    DEFAULTS,
    Settings,
    check_key,
    config_path,
    env_name,
    format_value,
    load_settings,
    parse_value,
    set_value,
    unset_value,
)
from slothlab.errors import ConfigError, SlothlabError

__all__ = ["config_group", "known_defaults"]

F = TypeVar("F", bound=Callable[..., Any])


def known_defaults() -> dict[str, Any]:
    """Every known setting and its default: :data:`~slothlab.config.DEFAULTS` and the flags."""
    from slothlab.features import feature_defaults

    return {**DEFAULTS, **feature_defaults()}


def _errors_to_exit(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SlothlabError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


@click.group("config")
def config_group() -> None:
    """Read and change settings (the TOML settings file) and feature flags."""


@config_group.command("path")
def path_command() -> None:
    """Print where the settings file is (it is created by the first `config set`)."""
    path = config_path()
    click.echo(str(path))
    if not path.exists():
        click.echo("(not created yet: `slothlab config set KEY=VALUE` creates it)", err=True)


@config_group.command("get")
@click.argument("key")
@click.option("--source", "show_source", is_flag=True, help="Also say where the value comes from.")
@_errors_to_exit
def get_command(key: str, show_source: bool) -> None:
    """Print the value of KEY (section.name): environment, settings file or default."""
    check_key(key)
    settings = load_settings()
    defaults = known_defaults()
    value = settings.get(key, defaults.get(key))
    source = settings.source(key, defaults.get(key))
    if source == "unset":
        click.echo(
            f"{key} is not set and has no default; `slothlab config list` shows the known keys",
            err=True,
        )
        sys.exit(1)
    text = value if isinstance(value, str) else format_value(value)
    click.echo(f"{text}\t({source})" if show_source else text)


@config_group.command("set")
@click.argument("key")
@click.argument("value", required=False)
@click.option("--string", "as_string", is_flag=True, help="Store VALUE as text, never as TOML.")
@_errors_to_exit
def set_command(key: str, value: str | None, as_string: bool) -> None:
    """Set KEY=VALUE (or KEY VALUE) in the settings file, keeping every other key.

    \b
    Examples:
      slothlab config set features.ai_optimization=true
      slothlab config set agent.tags '["web", "eu"]'
      slothlab config set master.url http://10.0.0.5:8700
    """
    key, text = _split(key, value)
    check_key(key)
    defaults = known_defaults()
    like = defaults.get(key)
    if as_string and like is not None and not isinstance(like, str):
        raise ConfigError(f"{key} takes a value like {format_value(like)}, not text; drop --string")
    typed = text if as_string else parse_value(text, like, key=key)
    if key.startswith("features."):
        from slothlab.features import check_feature_setting

        check_feature_setting(key, typed)
    path = config_path()
    set_value(path, key, typed)
    click.echo(f"{key} = {format_value(typed)}  ({path})")
    if load_settings().source(key) == "env":
        click.echo(f"note: {env_name(key)} in the environment overrides this value", err=True)


def _split(key: str, value: str | None) -> tuple[str, str]:
    if value is not None:
        return key, value
    if "=" not in key:
        raise click.UsageError(
            f"give a value: `config set {key}=VALUE` or `config set {key} VALUE`"
        )
    name, _, text = key.partition("=")
    return name.strip(), text


@config_group.command("unset")
@click.argument("key")
@_errors_to_exit
def unset_command(key: str) -> None:
    """Remove KEY from the settings file (its default applies again)."""
    path = config_path()
    if unset_value(path, key):
        click.echo(f"{key} removed from {path}")
    else:
        click.echo(f"{key} was not set in {path}", err=True)


@config_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
@_errors_to_exit
def list_command(as_json: bool) -> None:
    """List known settings (with defaults) and every key of the settings file.

    The source column says where each value comes from: env, file or default; keys the
    settings file has that slothlab does not know are marked unknown.
    """
    rows = settings_rows(load_settings())
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    _print_table(
        ["key", "value", "source", "default"],
        [[r["key"], format_value(r["value"]), r["source"], _default_text(r)] for r in rows],
        title=f"settings ({config_path()})",
    )


def _default_text(row: dict[str, Any]) -> str:
    return format_value(row["default"]) if row["known"] else "(unknown key)"


def settings_rows(settings: Settings) -> list[dict[str, Any]]:
    """One row per known or file key: key, value, source, known, default (sorted by key)."""
    defaults = known_defaults()
    keys = sorted(set(defaults) | set(settings.file_values()))
    return [
        {
            "key": k,
            "value": settings.get(k, defaults.get(k)),
            "source": settings.source(k, defaults.get(k)),
            "known": k in defaults,
            "default": defaults.get(k),
        }
        for k in keys
    ]


@config_group.command("features")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
@_errors_to_exit
def features_command(as_json: bool) -> None:
    """List feature flags: state (enabled, disabled, beta), why, and what each covers."""
    from slothlab.features import process_flags

    infos = process_flags().describe()
    if as_json:
        click.echo(json.dumps({i.name: i.state for i in infos}, indent=2))
        return
    _print_table(
        ["feature", "state", "why", "covers"],
        [[i.name, i.state, i.reason, i.description] for i in infos],
        title="features (turn one on: slothlab config set features.NAME=true)",
    )


def _print_table(columns: list[str], rows: list[list[str]], *, title: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title), title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    Console(highlight=False).print(table)
