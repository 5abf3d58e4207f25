"""The ``sloth-runner`` alias: sloth-runner's command words and flags, mapped onto slothlab's.

slothlab's own words work under the alias too; on top of them, sloth-runner's are translated
where slothlab has the same thing, for example::

    sloth-runner run -f deploy.lua -g release      ->  slothlab run deploy.lua --workflow release
    sloth-runner run prod -f deploy.lua --yes      ->  slothlab run deploy.lua   (no stacks here)
    sloth-runner agent list --master m:50053       ->  slothlab agents list --master http://m:50053
    sloth-runner agent exec web-1 "df -h"          ->  slothlab exec web-1 -- "df -h"
    sloth-runner master -p 8700 --debug            ->  slothlab master --port 8700
    sloth-runner version                           ->  slothlab --version

A sloth-runner word or flag with no slothlab counterpart gets one line saying so and what to use
instead, never a guess. Which slothlab commands and options exist is read from the click group,
so a command added later is picked up as it is.

>>> import click
>>> @click.group()
... def cli() -> None: ...
>>> @cli.command("run")
... @click.argument("file")
... @click.option("-w", "--workflow")
... @click.option("--json", is_flag=True)
... def run(file: str, workflow: str | None, json: bool) -> None: ...
>>> translate(["run", "-f", "ci.lua", "-o", "json", "--yes"], cli)
['run', 'ci.lua', '--json']
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import click

__all__ = ["EPILOG", "run_alias", "translate"]

EPILOG = """\b
sloth-runner words accepted here (with slothlab's own):
  run [STACK] -f FILE [-g GROUP] [-o json] [--values F] [--delegate-to A] [--yes]
  agent start ... | agent list | agent exec AGENT "CMD" | master [-p PORT] | server
  version | config get|set|list (feature flags: config set features.NAME=true)
"""

_NOT_HERE = {
    "stack": "state lives in one store (`state keys`, `state get`) and `run -f FILE` runs a "
    "workflow file directly",
    "ui": "the web dashboard is served by the master: `master --dashboard-port 3000`",
    "scheduler": "scheduled runs are not in slothlab yet; run workflows with `run -f FILE`",
    "repl": "use `lua -e CODE` (or `lua FILE`), or %%sloth cells in Jupyter after "
    "%load_ext slothlab",
    "list": "`run -f FILE` checks every definition before it starts a task",
    "validate": "`run -f FILE` checks every definition before it starts a task",
    "new": "write the workflow in Lua (see docs/workflows.md) and run it with `run -f FILE`",
    "template": "write the workflow in Lua (see docs/workflows.md) and run it with `run -f FILE`",
    "workflow": "write the workflow in Lua (see docs/workflows.md) and run it with `run -f FILE`",
    "test": "test workflows with pytest and slothlab.workflow.run_file (see docs/workflows.md)",
    "check": "every slothlab command reports a missing dependency with the pip command to run",
    "hook": "event hooks are not in slothlab yet",
    "events": "the event stream is not in slothlab yet; see `tasks get` and `logs`",
    "db": "the state store is SQLite: `state stats` shows where it is",
    "ssh": "slothlab does not manage SSH connections; start an agent on each host instead",
    "modules": "the Lua modules are listed in docs/lua.md",
    "sloth": "slothlab keeps no workflow repository; keep workflow files in git and `run -f FILE`",
}

_DAEMON = (
    "slothlab runs in the foreground; for a local cluster use `up --agents N`, and keep an "
    "agent or master running with a service manager (systemd)"
)


class _Refused(Exception):
    """A sloth-runner word or flag with no slothlab counterpart; the message says what to do."""


Emit = Callable[[str | None, click.Command], list[str]]


@dataclass(frozen=True)
class _Flag:
    """A sloth-runner option and what the alias makes of it."""

    takes_value: bool
    emit: Emit


def _rename(*ours: str, hint: str = "") -> Emit:
    """Our first option among ``ours`` that the command has, with the value; else refuse."""

    def emit(value: str | None, command: click.Command) -> list[str]:
        for name in ours:
            if _has_option(command, name):
                return [name] if value is None else [name, value]
        raise _Refused(hint or f"slothlab {command.name} has no {ours[0]} option")

    return emit


def _drop(value: str | None, command: click.Command) -> list[str]:
    return []


def _refuse(hint: str) -> Emit:
    def emit(value: str | None, command: click.Command) -> list[str]:
        raise _Refused(hint)

    return emit


def _master_url(value: str | None, command: click.Command) -> list[str]:
    # sloth-runner takes host:port; slothlab wants a URL
    if value is not None and "://" not in value:
        value = f"http://{value}"
    return _rename("--master")(value, command)


def _output(value: str | None, command: click.Command) -> list[str]:
    if value == "json":
        return _rename("--json", hint=f"slothlab {command.name} has no JSON output")(None, command)
    return []  # basic, enhanced, rich, modern, table, text: slothlab has one terminal style


_TEMPLATE = "slothlab does not render Go templates in workflow files; read values in Lua instead"

_COMMON = {
    "--debug": _Flag(False, _drop),
    "--master": _Flag(True, _master_url),
}

_RUN = {
    **_COMMON,
    "-o": _Flag(True, _output),
    "--output": _Flag(True, _output),
    "--return": _Flag(False, _rename("--json")),
    "-g": _Flag(True, _rename("--workflow")),
    "--group": _Flag(True, _rename("--workflow")),
    "-y": _Flag(False, _drop),
    "--yes": _Flag(False, _drop),
    "--interactive": _Flag(False, _drop),
    "-v": _Flag(True, _rename("--values", hint="slothlab run takes no values file (--values)")),
    "--values": _Flag(True, _rename("--values", hint="slothlab run takes no values file")),
    "--delegate-to": _Flag(
        True,
        _rename("--delegate-to", "-d", "--agent", hint="this slothlab run cannot delegate"),
    ),
    "-t": _Flag(True, _refuse("slothlab runs whole workflows; choose one with -g/--workflow")),
    "--tasks": _Flag(True, _refuse("slothlab runs whole workflows; choose one with --workflow")),
    "-d": _Flag(False, _refuse("there is no dry run (sloth-runner's -d) in slothlab")),
    "--dry-run": _Flag(False, _refuse("there is no dry run in slothlab")),
    "-e": _Flag(True, _refuse(_TEMPLATE)),
    "--env": _Flag(True, _refuse(_TEMPLATE)),
    "-p": _Flag(False, _refuse(_TEMPLATE)),
    "--prod": _Flag(False, _refuse(_TEMPLATE)),
    "--shards": _Flag(True, _refuse(_TEMPLATE)),
}

_SERVE = {
    **_COMMON,
    "--daemon": _Flag(False, _refuse(_DAEMON)),
    "--foreground": _Flag(False, _drop),
    "--telemetry": _Flag(False, _drop),
    "--bind": _Flag(True, _rename("--host", "--bind")),
    "-p": _Flag(True, _rename("--port")),
}

_AGENTS = {
    **_COMMON,
    "--format": _Flag(True, _output),
    "-o": _Flag(True, _output),
    "--output": _Flag(True, _output),
}


@dataclass
class _Parsed:
    """Tokens of one command after the flags were translated."""

    positionals: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    rest: list[str] = field(default_factory=list)  # after "--", untouched


def translate(argv: Sequence[str], group: click.Group, notes: list[str] | None = None) -> list[str]:
    """slothlab arguments for sloth-runner's ``argv``; slothlab's own words pass unchanged.

    ``notes`` receives a line for each sloth-runner word that was accepted but means nothing
    here (a stack name).

    Raises:
        click.UsageError: a sloth-runner command or flag that slothlab does not have; the
            message says what slothlab offers instead.
    """
    try:
        return _translate(list(argv), group, [] if notes is None else notes)
    except _Refused as exc:
        raise click.UsageError(str(exc)) from None


def run_alias(group: click.Group, argv: Sequence[str] | None = None) -> None:
    """Run ``group`` as ``sloth-runner`` on translated ``argv`` (default: ``sys.argv[1:]``)."""
    import copy
    import sys

    notes: list[str] = []
    try:
        args = translate(sys.argv[1:] if argv is None else argv, group, notes)
    except click.UsageError as exc:
        click.echo(f"sloth-runner: error: {exc.format_message()}", err=True)
        sys.exit(2)
    for note in notes:
        click.echo(f"sloth-runner: {note}", err=True)
    alias = copy.copy(group)  # the help gains the accepted sloth-runner words
    alias.epilog = EPILOG
    alias(args=args, prog_name="sloth-runner")


def _translate(argv: list[str], group: click.Group, notes: list[str]) -> list[str]:
    argv = _globals(argv)
    if not argv or argv[0].startswith("-"):
        return argv
    word, tail = argv[0], argv[1:]
    if word == "version":
        return ["--version"]
    if word == "server":
        word = "master"
    if word == "run":
        return _run(tail, _command(group, ["run"]), notes)
    if word == "agent":
        return _agent(tail, group)
    if word == "master":
        return ["master", *_flat(_parse(tail, _command(group, ["master"]), _SERVE))]
    if word in _NOT_HERE and word not in group.commands:
        raise _Refused(_not_here(f"`{word}`", _NOT_HERE[word], group))
    return argv


def _globals(argv: list[str]) -> list[str]:
    """Apply sloth-runner's global ``--config FILE`` (sets SLOTHLAB_CONFIG) and remove it."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            return out + argv[i:]
        if token == "--config" and i + 1 < len(argv):
            os.environ["SLOTHLAB_CONFIG"] = argv[i + 1]
            i += 2
            continue
        if token.startswith("--config="):
            os.environ["SLOTHLAB_CONFIG"] = token.split("=", 1)[1]
        else:
            out.append(token)
        i += 1
    return out


def _run(tail: list[str], command: click.Command, notes: list[str]) -> list[str]:
    flags = {**_RUN, "-f": _Flag(True, _file), "--file": _Flag(True, _file)}
    parsed = _parse(tail, command, flags)
    files = [o[len(_FILE) :] for o in parsed.options if o.startswith(_FILE)]
    options = [o for o in parsed.options if not o.startswith(_FILE)]
    if files:
        # run STACK -f FILE: slothlab has no stacks, the file is what runs
        notes.extend(
            f"note: stack {name!r} ignored (slothlab has no stacks; state lives in one store)"
            for name in parsed.positionals
        )
        return ["run", files[-1], *options, *parsed.rest]
    if parsed.positionals and not _looks_like_file(parsed.positionals[0]):
        raise _Refused(
            f"no workflow file {parsed.positionals[0]!r}: slothlab has no stacks; give the file "
            "with -f FILE (sloth-runner run -f deploy.lua)"
        )
    return ["run", *parsed.positionals, *options, *parsed.rest]


_FILE = "\0file:"  # marks run's -f value among the translated options


def _file(value: str | None, command: click.Command) -> list[str]:
    return [_FILE + (value or "")]


def _looks_like_file(name: str) -> bool:
    return os.path.exists(name) or name.endswith((".lua", ".sloth"))


def _agent(tail: list[str], group: click.Group) -> list[str]:
    if not tail or tail[0].startswith("-"):
        return ["agent", *tail] if "agent" in group.commands else ["agents", *tail]
    sub, rest = tail[0], tail[1:]
    if sub == "list":
        target = ["agents", "list"]
        return [*target, *_flat(_parse(rest, _command(group, target), _AGENTS))]
    if sub == "exec":
        return _agent_exec(rest, group)
    own = group.commands.get("agent")
    if isinstance(own, click.Group) and sub in own.commands:
        return ["agent", sub, *_flat(_parse(rest, own.commands[sub], _SERVE))]
    if own is None and sub == "start":
        raise _Refused(
            _not_here("`agent start`", "this slothlab has no `agent start` command", group)
        )
    hint = "slothlab has `agents list`, `exec AGENT -- CMD` and `agent start`"
    raise _Refused(_not_here(f"`agent {sub}`", hint, group))


def _agent_exec(rest: list[str], group: click.Group) -> list[str]:
    command = _command(group, ["exec"])
    parsed = _parse(rest, command, _AGENTS)
    if len(parsed.positionals) < 1 or len(parsed.positionals) + len(parsed.rest) < 2:
        raise _Refused('give the agent and the command: sloth-runner agent exec AGENT "CMD"')
    agent, *words = parsed.positionals
    return ["exec", agent, *parsed.options, "--", *words, *parsed.rest]


def _command(group: click.Group, path: list[str]) -> click.Command:
    node: click.Command = group
    for word in path:
        found = node.commands.get(word) if isinstance(node, click.Group) else None
        if found is None:
            hint = f"this slothlab has no `{' '.join(path)}` command"
            raise _Refused(_not_here(f"`{' '.join(path)}`", hint, group))
        node = found
    return node


def _not_here(what: str, hint: str, group: click.Group) -> str:
    offers = ", ".join(sorted(group.commands))
    return f"sloth-runner's {what} has no slothlab counterpart: {hint}. slothlab offers: {offers}"


def _parse(tokens: list[str], command: click.Command, flags: dict[str, _Flag]) -> _Parsed:
    """Split ``tokens`` into positionals and translated options (``--`` and after kept)."""
    parsed = _Parsed()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "--":
            parsed.rest = tokens[i + 1 :]
            break
        name, inline = _split_inline(token)
        flag = flags.get(name) if not _has_option(command, name) or name in _ALWAYS else None
        if flag is not None:
            value = inline
            if flag.takes_value and value is None:
                if i + 1 >= len(tokens):
                    raise _Refused(f"{name} needs a value")
                value, i = tokens[i + 1], i + 1
            parsed.options += flag.emit(value, command)
        elif token.startswith("-") and token != "-":
            parsed.options.append(token)
            if inline is None and _takes_value(command, name) and i + 1 < len(tokens):
                parsed.options.append(tokens[i + 1])
                i += 1
        else:
            parsed.positionals.append(token)
        i += 1
    return parsed


def _split_inline(token: str) -> tuple[str, str | None]:
    if token.startswith("--") and "=" in token:
        name, value = token.split("=", 1)
        return name, value
    return token, None


# sloth-runner flags translated even where slothlab has the same spelling (other meaning)
_ALWAYS = frozenset({"--master", "-d", "-o", "--output", "-v"})


def _flat(parsed: _Parsed) -> list[str]:
    tail = ["--", *parsed.rest] if parsed.rest else []
    return [*parsed.positionals, *parsed.options, *tail]


def _has_option(command: click.Command, name: str) -> bool:
    return any(
        name in p.opts or name in p.secondary_opts
        for p in command.params
        if isinstance(p, click.Option)
    )


def _takes_value(command: click.Command, name: str) -> bool:
    for p in command.params:
        if isinstance(p, click.Option) and (name in p.opts or name in p.secondary_opts):
            return not p.is_flag and not p.count
    return False
