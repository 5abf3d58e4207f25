"""Cluster commands: ``up``, ``down``, ``status``, ``agents list``, ``exec``, ``tasks``, ``logs``.

Thin over :mod:`slothlab.cluster` and :mod:`slothlab.client`. Every error is one line on stderr
and exit status 1; ``exec`` exits with the command's own status.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from rich.console import Console

    from slothlab.client import Controller
    from slothlab.cluster import ClusterState
    from slothlab.protocol import AgentInfo, TaskInfo

__all__ = ["COMMANDS", "agents_group", "agents_table", "cpu_percent", "down_command",
           "exec_command", "frame_table", "logs_command", "query_command", "status_command",
           "tasks_group", "up_command"]  # fmt: skip

_MASTER = click.option(
    "--master", "master_url", metavar="URL", help="The master (default: the local cluster's)."
)


def _fail(message: str) -> NoReturn:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]error:[/] {escape(message)}")
    sys.exit(1)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn slothlab errors into one line and exit 1; Ctrl-C into exit 130."""
    from slothlab.errors import SlothlabError

    try:
        yield
    except SlothlabError as exc:
        _fail(" ".join(str(exc).split("\n")))
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


def _controller(master_url: str | None) -> Controller:
    from slothlab.client import Controller

    return Controller(master_url)


# -- up / down / status -------------------------------------------------------------------------


@click.command("up")
@click.option("-n", "--agents", default=2, show_default=True, help="How many agents to start.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for them.")
def up_command(agents: int, timeout: float) -> None:
    """Start a local cluster: a master and N agents on loopback ports (stop it with `down`)."""
    from rich.console import Console

    from slothlab import cluster

    console = Console(highlight=False)
    with _errors(), console.status("starting the local cluster") as spinner:
        state = cluster.up(agents, timeout_s=timeout, progress=spinner.update)
    _print_up(console, state)


def _print_up(console: Console, state: ClusterState) -> None:
    from rich.markup import escape

    console.print(f"[green]✓[/] master at [bold]{state.master_url}[/]")
    for agent in state.agents:
        console.print(f"  agent {agent.name} at {agent.url} (pid {agent.pid})")
    where = state.token_file or "$SLOTHLAB_TOKEN"
    console.print(f"token: {escape(where)}")
    console.print(f"logs: {escape(str(Path(state.home) / 'cluster'))}/*.log")
    console.print("next: slothlab agents list · slothlab exec agent-1 -- uname -a · slothlab down")


@click.command("down")
@click.option("--grace", default=10.0, show_default=True, help="Seconds before SIGKILL.")
def down_command(grace: float) -> None:
    """Stop the local cluster started by `slothlab up` (every process it started)."""
    from rich.console import Console

    from slothlab import cluster

    console = Console(highlight=False)
    with _errors(), console.status("stopping the local cluster") as spinner:
        stopped = cluster.down(grace_s=grace, progress=spinner.update)
    if stopped:
        console.print(f"[green]✓[/] stopped {', '.join(m.name for m in stopped)}")
    else:
        console.print("no local cluster is running")


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def status_command(as_json: bool) -> None:
    """Show the local cluster's processes (alive or not) and where its master is."""
    from rich.console import Console
    from rich.table import Table

    from slothlab import cluster

    with _errors():
        state = cluster.read_state()
        members = cluster.status()
    if as_json:
        doc = {
            "master_url": state.master_url if state else None,
            "members": [
                {"name": m.name, "pid": m.pid, "url": m.url, "alive": a} for m, a in members
            ],
        }
        click.echo(json.dumps(doc))
        return
    console = Console(highlight=False)
    if state is None:
        console.print("no local cluster (start one with `slothlab up`)")
        return
    table = Table(title=f"local cluster, master at {state.master_url}", title_justify="left")
    for column in ("name", "pid", "url", "process"):
        table.add_column(column)
    for member, alive in members:
        mark = "[green]alive[/]" if alive else "[red]gone[/]"
        table.add_row(member.name, str(member.pid), member.url, mark)
    console.print(table)


# -- agents -------------------------------------------------------------------------------------


@click.group("agents")
def agents_group() -> None:
    """The agents the master knows."""


@agents_group.command("list")
@_MASTER
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def agents_list(master_url: str | None, as_json: bool) -> None:
    """List agents: name, status, URL, tags, region, running/queued tasks, CPU %."""
    from rich.console import Console

    with _errors():
        agents = _controller(master_url).agents()
    if as_json:
        click.echo(json.dumps([a.model_dump() for a in agents]))
        return
    Console(highlight=False).print(agents_table(agents))


_STATUS_STYLE = {"active": "green", "unknown": "yellow", "dead": "red"}


def agents_table(agents: list[AgentInfo]) -> Any:
    """A rich Table of agents (also used by the demo)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="agents", title_justify="left")
    for column in ("name", "status", "url", "tags", "region", "run/queue", "cpu %"):
        table.add_column(column, justify="right" if column in ("run/queue", "cpu %") else "left")
    for a in agents:
        style = _STATUS_STYLE.get(a.status, "white")
        cpu = cpu_percent(a.metrics)
        table.add_row(
            escape(a.name),
            f"[{style}]{a.status}[/]",
            escape(a.url),
            escape(", ".join(a.tags)),
            escape(a.region or ""),
            f"{a.running}/{a.queued}",
            "" if cpu is None else f"{cpu:.1f}",
        )
    return table


def cpu_percent(metrics: dict[str, float]) -> float | None:
    """The CPU use in percent from an agent's metrics snapshot, whatever its key's spelling.

    >>> cpu_percent({"cpu_percent": 12.5}), cpu_percent({"cpu_usage_ratio": 0.25})
    (12.5, 25.0)
    >>> cpu_percent({}) is None
    True
    """
    for key, value in metrics.items():
        low = key.lower()
        if "cpu" in low and ("percent" in low or low.endswith("_pct")):
            return float(value)
    for key, value in metrics.items():
        if "cpu" in key.lower() and "ratio" in key.lower():
            return float(value) * 100.0
    return None


# -- exec / tasks / logs ------------------------------------------------------------------------


@click.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("agent")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--timeout", default=600.0, show_default=True, help="Seconds before it is killed.")
@click.option("--workdir", help="Working directory on the agent.")
@_MASTER
def exec_command(
    agent: str,
    command: tuple[str, ...],
    timeout: float,
    workdir: str | None,
    master_url: str | None,
) -> None:
    """Run a shell COMMAND on AGENT, print its output as it comes, exit with its status.

    Example: slothlab exec agent-1 -- df -h /
    """
    line = command[0] if len(command) == 1 else shlex.join(command)
    with _errors():
        ctl = _controller(master_url)
        task = ctl.submit("shell", line, agent=agent, timeout_s=timeout, workdir=workdir)
        try:
            final = _stream(ctl, task)
        except KeyboardInterrupt:
            ctl.cancel(task.id)
            raise
    sys.exit(_exit_status(final))


def _stream(ctl: Controller, task: TaskInfo) -> TaskInfo:
    from slothlab.errors import ClientError

    printed = False
    try:
        for stream, text in ctl.logs(task.id):
            click.echo(text, err=stream == "stderr")
            printed = True
    except ClientError:
        if printed:
            raise
    final = ctl.wait(task.id)
    if not printed:  # no live stream: print what the task kept
        _echo_block(final.stdout, err=False)
        _echo_block(final.stderr, err=True)
    return final


def _echo_block(text: str, *, err: bool) -> None:
    if text:
        click.echo(text.rstrip("\n"), err=err)


def _exit_status(info: TaskInfo) -> int:
    from slothlab.client import task_failure

    if info.exit_code is not None and info.state in ("succeeded", "failed"):
        return info.exit_code
    if info.state == "succeeded":
        return 0
    click.echo(f"error: {task_failure(info)}", err=True)
    return 124 if info.state == "timeout" else 1


@click.group("tasks")
def tasks_group() -> None:
    """Tasks known to the master."""


@tasks_group.command("get")
@click.argument("task_id")
@_MASTER
@click.option("--wait", "wait_s", type=float, help="Wait up to this many seconds for the end.")
def tasks_get(task_id: str, master_url: str | None, wait_s: float | None) -> None:
    """Print a task (state, exit code, output, result) as JSON."""
    with _errors():
        ctl = _controller(master_url)
        info = ctl.wait(task_id, wait_s) if wait_s else ctl.task(task_id)
    click.echo(json.dumps(info.model_dump(), indent=2, ensure_ascii=False))


@click.command("logs")
@click.argument("task_id")
@_MASTER
def logs_command(task_id: str, master_url: str | None) -> None:
    """Print a task's output (stdout and stderr), following it live until it ends."""
    with _errors():
        ctl = _controller(master_url)
        for stream, text in ctl.logs(task_id):
            click.echo(text, err=stream == "stderr")


@click.command("query")
@click.argument("sql")
@_MASTER
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON records.")
def query_command(sql: str, master_url: str | None, as_json: bool) -> None:
    """Run read-only SQL over the master's metrics history (table ``samples``).

    Example: slothlab query "select host, avg(value) from samples
    where metric = 'slothlab_cpu_usage_ratio' group by host"
    """
    from rich.console import Console

    with _errors():
        frame = _controller(master_url).query(sql)
    if as_json:
        click.echo(frame.to_json(orient="records", date_format="iso"))
        return
    Console(highlight=False).print(frame_table(frame))


def frame_table(frame: Any, title: str = "") -> Any:
    """A rich Table of a DataFrame (numbers right-aligned, floats to 2 places)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title or None, title_justify="left")
    for column in frame.columns:
        numeric = frame[column].dtype.kind in "iuf"
        table.add_column(escape(str(column)), justify="right" if numeric else "left")
    for row in frame.itertuples(index=False):
        cells = [f"{v:.2f}" if isinstance(v, float) else escape(str(v)) for v in row]
        table.add_row(*cells)
    return table


COMMANDS = (up_command, down_command, status_command, agents_group, exec_command, tasks_group,
            logs_command, query_command)  # fmt: skip
"""Every command of this module, for the group to add."""
