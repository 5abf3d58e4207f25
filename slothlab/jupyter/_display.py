"""How the magic shows results and errors: plain text always, an HTML table when interactive."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from slothlab.errors import LuaError, LuaMemoryError, LuaSyntaxError, LuaTimeoutError
from slothlab.jupyter.tables import columns

if TYPE_CHECKING:
    from slothlab.workflow import RunResult, TaskEvent

MARKS = {"success": "✓", "failed": "✗", "skipped": "–"}

MAX_HTML_ROWS = 50


class Rows(list[dict[str, Any]]):
    """A list of row tables that notebooks show as an HTML table (and pretty-print as a list).

    >>> Rows([{"a": 1}]) == [{"a": 1}]
    True
    >>> "<td>1</td>" in Rows([{"a": 1}])._repr_html_()
    True
    """

    def _repr_html_(self) -> str:
        return html_table(self)


def html_table(rows: list[dict[str, Any]], limit: int = MAX_HTML_ROWS) -> str:
    """An HTML table of ``rows`` (columns sorted, cells escaped), at most ``limit`` rows shown.

    >>> html_table([{"x": "<b>"}])
    '<table><thead><tr><th>x</th></tr></thead><tbody><tr><td>&lt;b&gt;</td></tr></tbody></table>'
    """
    names = columns(rows)
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(row.get(n))}</td>" for n in names) + "</tr>"
        for row in rows[:limit]
    )
    more = f"<p>{len(rows) - limit} more rows</p>" if len(rows) > limit else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return html.escape(value if isinstance(value, str) else repr(value))


def error_text(exc: Exception, *, traceback: bool = False) -> str:
    """One line saying what went wrong; the Lua traceback under it when ``traceback`` is on.

    >>> error_text(LuaError("cell:2: boom", traceback="cell:2: boom\\nstack traceback:\\n\\tx"))
    'Lua error: cell:2: boom'
    >>> print(error_text(LuaError("cell:2: boom", traceback="stack traceback:\\n\\tx"),
    ...                  traceback=True))
    Lua error: cell:2: boom
    stack traceback:
        x
    """
    line = _headline(exc)
    trace = getattr(exc, "traceback", "")
    if not (traceback and trace):
        return line
    lines = trace.expandtabs(4).splitlines()
    if lines and isinstance(exc, LuaError) and lines[0] == exc.message:
        lines = lines[1:]  # Lua's traceback repeats the message
    return "\n".join([line, *lines])


def _headline(exc: Exception) -> str:
    if isinstance(exc, LuaSyntaxError):
        return f"Lua syntax error: {exc}"
    if isinstance(exc, LuaTimeoutError):
        if str(exc) == "interrupted":
            return "Lua interrupted (Ctrl-C); the runtime and its globals are kept"
        return f"Lua stopped: {exc}; raise --timeout or %config SlothMagics.timeout"
    if isinstance(exc, LuaMemoryError):
        return f"Lua stopped: {exc}; raise %config SlothMagics.max_memory_mb, then %sloth reset"
    if isinstance(exc, LuaError):
        return f"Lua error: {exc}"
    return str(exc)


def event_line(event: TaskEvent) -> str | None:
    """One progress line for a finished or retried task (``None`` for the other events).

    >>> from slothlab.workflow import TaskEvent, TaskResult
    >>> event_line(TaskEvent("finish", "build", result=TaskResult("build", "success", "ok")))
    '✓ build (0.00 s) ok'
    """
    if event.kind == "finish" and event.result is not None:
        r = event.result
        return f"{MARKS[r.status]} {r.name} ({r.duration_s:.2f} s) {r.message}".rstrip()
    if event.kind == "retry":
        return (
            f"↻ {event.task} attempt {event.attempt} failed: {event.message}; "
            f"retrying in {event.delay_s:g} s"
        )
    if event.kind == "complete_error":
        return f"! {event.message}"
    return None


def workflow_summary(result: RunResult) -> str:
    """One line: the verdict, the time and how many tasks ended each way.

    >>> from slothlab.workflow import RunResult, TaskResult
    >>> workflow_summary(RunResult("ci", True, {"a": TaskResult("a", "success")}, duration_s=1))
    'workflow ci succeeded in 1.00 s: 1 success'
    """
    counts = {s: sum(r.status == s for r in result.tasks.values()) for s in MARKS}
    tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no tasks"
    verdict = "succeeded" if result.success else "failed"
    aborted = f" (aborted by {result.aborted_by})" if result.aborted_by else ""
    return f"workflow {result.workflow} {verdict}{aborted} in {result.duration_s:.2f} s: {tally}"


def workflow_failure(result: RunResult) -> str:
    """One line naming the failed tasks and their messages.

    >>> from slothlab.workflow import RunResult, TaskResult
    >>> workflow_failure(RunResult("ci", False, {"a": TaskResult("a", "failed", "exit 1")}))
    'workflow ci failed: a: exit 1'
    """
    failed = [f"{r.name}: {r.message}" for r in result.tasks.values() if r.status == "failed"]
    reason = "; ".join(failed) or (f"aborted by {result.aborted_by}" if result.aborted_by else "")
    return f"workflow {result.workflow} failed: {reason}".rstrip(": ")
