"""``slothlab metrics import|query|export``: the metrics history from the shell.

Every command opens the history named by ``--history`` (default: the settings'
``metrics.history_path``, else ``<SLOTHLAB_HOME>/metrics.duckdb``). Output is JSON, or a table
or CSV for ``query``. Errors are one line on stderr, exit 1; a history held by another process
says which one and what to do instead.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from slothlab.metrics import MetricsHistory

__all__ = ["attach", "export_command", "import_command", "query_command"]

_HISTORY = click.option(
    "--history",
    "history_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The history file (default: SLOTHLAB_METRICS_HISTORY_PATH, else "
    "<SLOTHLAB_HOME>/metrics.duckdb).",
)
_START = click.option("--start", default=None, help="From (ISO time, epoch seconds, -1h).")
_END = click.option("--end", default=None, help="Until, exclusive (same forms as --start).")


def attach(group: click.Group) -> None:
    """Add the history commands to the ``slothlab metrics`` group."""
    for command in (import_command, query_command, export_command):
        group.add_command(command)


def _run(
    history_path: Path | None, action: Callable[[MetricsHistory], Any], *, read: bool = False
) -> Any:
    """Open the history, run ``action`` and close; one-line errors, exit 1.

    ``read``: the command only reads, so a ``--history`` file that does not exist is a mistake
    (a typo would otherwise create an empty history and print no rows).
    """
    from slothlab.errors import SlothlabError
    from slothlab.metrics import MetricsHistory

    if read and history_path is not None and not history_path.exists():
        click.echo(
            f"error: no metrics history at {history_path}; check the path, or fill one with "
            "`slothlab metrics import FILE --history PATH`",
            err=True,
        )
        sys.exit(1)
    try:
        if history_path is None:
            history = MetricsHistory.from_settings(background=False)
        else:
            history = MetricsHistory(history_path, background=False)
        with history:
            return action(history)
    except SlothlabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def _labels(pairs: tuple[str, ...]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--label")
        labels[key] = value
    return labels


@click.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--host", required=True, help="The host the series belong to.")
@click.option("--metric", default=None, help="Metric name (default: each file's name stem).")
@click.option("--timestamp-column", default="timestamp", show_default=True)
@click.option("--value-column", default="value", show_default=True)
@click.option("--label", "label_pairs", multiple=True, help="KEY=VALUE added to every row.")
@click.option("--tz", default="UTC", show_default=True, help="Zone of times without one.")
@click.option("--origin", default=None, help="Start time for numeric times counted from it.")
@_HISTORY
def import_command(
    files: tuple[Path, ...],
    host: str,
    metric: str | None,
    timestamp_column: str,
    value_column: str,
    label_pairs: tuple[str, ...],
    tz: str,
    origin: str | None,
    history_path: Path | None,
) -> None:
    """Import series from CSV or Parquet FILES into the history, one metric per file."""
    from slothlab.metrics import import_series

    labels = _labels(label_pairs)

    def action(history: MetricsHistory) -> list[dict[str, Any]]:
        done = []
        for path in files:
            name = metric or path.name.split(".")[0]
            rows = import_series(
                history,
                path,
                metric=name,
                host=host,
                timestamp_column=timestamp_column,
                value_column=value_column,
                labels=labels,
                tz=tz,
                origin=origin,
            )
            done.append({"file": str(path), "metric": name, "host": host, "rows": rows})
        return done

    imported = _run(history_path, action)
    total = sum(item["rows"] for item in imported)
    click.echo(json.dumps({"imported": imported, "rows": total}))


@click.command("query")
@click.argument("metric", required=False)
@click.option("--host", "hosts", multiple=True, help="Only these hosts (repeatable).")
@click.option("--label", "label_pairs", multiple=True, help="Only series with KEY=VALUE.")
@_START
@_END
@click.option("--step", default=None, help="Bucket width (30s, 1m, 1h); none: raw rows.")
@click.option(
    "--agg",
    type=click.Choice(["avg", "min", "max", "sum", "count", "last"]),
    default="avg",
    show_default=True,
)
@click.option("--level", type=click.Choice(["raw", "1m", "1h"]), default=None)
@click.option("--sql", "sql", default=None, help="Run this read-only SQL instead of METRIC.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@_HISTORY
def query_command(
    metric: str | None,
    hosts: tuple[str, ...],
    label_pairs: tuple[str, ...],
    start: str | None,
    end: str | None,
    step: str | None,
    agg: str,
    level: str | None,
    sql: str | None,
    fmt: str,
    history_path: Path | None,
) -> None:
    """Print METRIC's samples or buckets, or the result of --sql (read-only)."""
    if (metric is None) == (sql is None):
        raise click.UsageError("give either METRIC or --sql QUERY")
    labels = _labels(label_pairs)

    def action(history: MetricsHistory) -> Any:
        if sql is not None:
            return history.sql(sql)
        assert metric is not None
        return history.query(
            metric,
            host=list(hosts) or None,
            labels=labels or None,
            start=_time(start),
            end=_time(end),
            step=step,
            agg=agg,
            level=level,
        )

    click.echo(_render(_run(history_path, action, read=True), fmt))


@click.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@_START
@_END
@click.option("--level", type=click.Choice(["raw", "1m", "1h"]), default="raw", show_default=True)
@_HISTORY
def export_command(
    directory: Path,
    start: str | None,
    end: str | None,
    level: str,
    history_path: Path | None,
) -> None:
    """Export the history to Parquet under DIRECTORY/day=YYYY-MM-DD/ (re-export replaces a day)."""

    def action(history: MetricsHistory) -> list[str]:
        return history.export_parquet(directory, start=_time(start), end=_time(end), level=level)

    days = _run(history_path, action, read=True)
    click.echo(json.dumps({"directory": str(directory), "level": level, "days": days}))


def _time(text: str | None) -> float | str | None:
    """Epoch seconds stay numbers; everything else goes to the library as text."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _render(frame: Any, fmt: str) -> str:
    if fmt == "json":
        return str(frame.to_json(orient="records", date_format="iso"))
    if fmt == "csv":
        return str(frame.to_csv(index=False)).rstrip("\n")
    if frame.empty:
        return "(no rows)"
    return str(frame.to_string(index=False))
