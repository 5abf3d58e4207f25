"""``slothlab run FILE [--workflow NAME] [--json]``: run a workflow on this machine.

Exit status: 0 when the workflow succeeded, 1 when it failed, 2 when the script or a definition
is wrong (the message says what). With ``--json`` the result is the only thing on stdout; logs
and ``print`` go to stderr.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

    from slothlab.workflow import RunResult, TaskEvent

__all__ = ["run_command"]

_MARKS = {"success": "[green]✓[/]", "failed": "[red]✗[/]", "skipped": "[yellow]–[/]"}


@click.command("run")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-w", "--workflow", "name", help="The workflow to run (when the file has several).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
@click.option(
    "-d",
    "--delegate",
    "delegate",
    multiple=True,
    metavar="AGENT",
    help="Run the tasks on this agent (name, tag:X, region:Y or any; repeat for one of several); "
    "tasks with their own delegate_to keep it. Needs a master (`slothlab up`).",
)
def run_command(file: Path, name: str | None, as_json: bool, delegate: tuple[str, ...]) -> None:
    """Run a workflow from a Lua FILE, in dependency order with parallel branches.

    Tasks run here, except those with delegate_to (or all of them with -d), which run on agents.
    """
    from rich.console import Console
    from rich.markup import escape

    from slothlab.errors import LuaError, SlothlabError
    from slothlab.workflow import run_file

    err = Console(stderr=True, highlight=False)
    out = Console(highlight=False)
    try:
        if as_json:
            result = run_file(file, name, output=_to_stderr, delegate_to=delegate)
        else:
            result = run_file(file, name, listener=_Progress(out).event, delegate_to=delegate)
    except LuaError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", markup=True, soft_wrap=True)
        if exc.traceback:
            err.print(exc.traceback, markup=False, soft_wrap=True)
        sys.exit(2)
    except SlothlabError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", markup=True, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted: no new task was started", markup=False)
        sys.exit(130)
    if as_json:
        doc = _finite(result.to_json())
        click.echo(json.dumps(doc, ensure_ascii=False, default=str, allow_nan=False))
    else:
        _summary(out, result)
    sys.exit(0 if result.success else 1)


def _finite(value: Any) -> Any:
    """NaN and infinities as null, as `slothlab lua` prints them: JSON has neither."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _to_stderr(stream: str, text: str) -> None:
    prefix = "" if stream == "stdout" else f"[{stream}] "
    print(prefix + text, file=sys.stderr, flush=True)


class _Progress:
    """Prints one line per task event."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def event(self, ev: TaskEvent) -> None:
        from rich.markup import escape

        c = self.console
        if ev.kind == "begin":
            about = f" [dim]— {escape(ev.message)}[/]" if ev.message else ""
            c.print(f"[bold]workflow {escape(ev.task)}[/]{about}")
        elif ev.kind == "start":
            extra = f" (attempt {ev.attempt})" if ev.attempt > 1 else ""
            c.print(f"  [cyan]▶[/] {escape(ev.task)}{extra}")
        elif ev.kind == "retry":
            c.print(
                f"  [yellow]↻[/] {escape(ev.task)} attempt {ev.attempt} failed: "
                f"{escape(ev.message)}; retrying in {ev.delay_s:g} s"
            )
        elif ev.kind == "finish" and ev.result is not None:
            r = ev.result
            c.print(
                f"  {_MARKS[r.status]} {escape(r.name)} [dim]{r.duration_s:.2f} s[/] "
                f"{escape(r.message)}"
            )
        elif ev.kind == "complete_error":
            c.print(f"  [red]![/] {escape(ev.message)}")


def _summary(console: Console, result: RunResult) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"workflow {result.workflow}", title_justify="left")
    for column in ("task", "status", "attempts", "time", "message"):
        table.add_column(column, overflow="fold")
    for r in result.tasks.values():
        status = f"{_MARKS[r.status]} {r.status}"
        table.add_row(
            escape(r.name), status, str(r.attempts), f"{r.duration_s:.2f} s", escape(r.message)
        )
    console.print(table)
    counts = {s: sum(r.status == s for r in result.tasks.values()) for s in _MARKS}
    tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    verdict = "[green]succeeded[/]" if result.success else "[red]failed[/]"
    aborted = f" (aborted by {escape(result.aborted_by)})" if result.aborted_by else ""
    console.print(
        f"workflow {escape(result.workflow)} {verdict}{aborted} in {result.duration_s:.2f} s: "
        f"{tally}"
    )
