"""Open the history file as its one writer, and say who holds it when DuckDB refuses.

DuckDB lets one process open a file (even a read-only opener fails while a writer holds it):
``IOException: Could not set lock on file "...": Conflicting lock is held in <exe> (PID N)``.
Inside one process a second open of the same file would share the first one's database, so
the history refuses that too: one owner per file, in and across processes.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from slothlab.errors import HistoryError, HistoryLockedError

if TYPE_CHECKING:
    import duckdb

__all__ = ["ProcessDescriber", "claim", "connect", "describe_process", "release"]

ProcessDescriber = Callable[[int], str]
"""Turns a pid into its command line ("" when unknown); psutil by default."""

_PID = re.compile(r"\(PID (\d+)\)")
_open_here: set[Path] = set()
_open_lock = threading.Lock()


def describe_process(pid: int) -> str:
    """The command line of ``pid`` through psutil, or "" when it cannot be read."""
    try:
        import psutil

        return " ".join(psutil.Process(pid).cmdline())
    except Exception:  # psutil missing, process gone, or access denied: the pid alone must do
        return ""


def claim(path: Path) -> None:
    """Mark ``path`` as open in this process; refuse a second owner here."""
    with _open_lock:
        if path in _open_here:
            raise HistoryLockedError(
                f"the metrics history {path} is already open in this process (PID "
                f"{os.getpid()}); use that MetricsHistory object, or close() it first",
                path=str(path),
                pid=os.getpid(),
            )
        _open_here.add(path)


def release(path: Path) -> None:
    """Forget that ``path`` is open in this process."""
    with _open_lock:
        _open_here.discard(path)


def connect(path: Path, describe: ProcessDescriber = describe_process) -> duckdb.DuckDBPyConnection:
    """Open ``path`` read-write, translating DuckDB's lock and corruption errors."""
    import duckdb

    try:
        return duckdb.connect(str(path))
    except duckdb.IOException as exc:
        text = str(exc)
        if "Could not set lock" in text:
            raise _locked(path, text, describe) from None
        hint = ""
        if "not a valid DuckDB database" in text:
            hint = "; it was left untouched: move it away (or open another path) and try again"
        raise HistoryError(f"cannot open the metrics history {path}: {text}{hint}") from None
    except duckdb.Error as exc:
        raise HistoryError(f"cannot open the metrics history {path}: {exc}") from None


def _locked(path: Path, text: str, describe: ProcessDescriber) -> HistoryLockedError:
    match = _PID.search(text)
    pid = int(match.group(1)) if match else None
    command = describe(pid) if pid is not None else ""
    holder = f"PID {pid}" if pid is not None else "an unknown process"
    if command:
        holder += f": {command}"
    message = (
        f"the metrics history {path} is held by another process ({holder}); DuckDB lets one "
        "process open the file. Send samples to that process over HTTP, read the Parquet it "
        "exports (slothlab.metrics.read_export), or stop it and try again"
    )
    return HistoryLockedError(message, path=str(path), pid=pid, command=command)
