"""Run one shell command with a timeout that kills its whole process group and capped output.

>>> out = run_shell("echo hello; exit 3", timeout_s=5)
>>> out.exit_code, out.output, out.timed_out
(3, 'hello\\n', False)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

__all__ = ["DEFAULT_OUTPUT_CAP", "ShellOutcome", "run_shell"]

DEFAULT_OUTPUT_CAP = 64 * 1024
"""Bytes of output kept from a command; the rest is read and dropped."""


@dataclass(frozen=True)
class ShellOutcome:
    """How a command ended.

    Attributes:
        exit_code: the exit status (negative: killed by that signal; None: could not start).
        output: stdout and stderr together, decoded, at most the cap.
        truncated: output past the cap was dropped.
        timed_out: the timeout ran out and the process group was killed.
        elapsed_s: wall-clock time from start to end.
        error: why the command could not start, or "".
    """

    exit_code: int | None
    output: str
    truncated: bool
    timed_out: bool
    elapsed_s: float
    error: str = ""


class _Capped:
    """Reads a pipe to its end in a thread, keeping the first ``cap`` bytes."""

    def __init__(self, pipe: IO[bytes], cap: int) -> None:
        self.pipe, self.cap = pipe, cap
        self.data = bytearray()
        self.truncated = False
        self.thread = threading.Thread(target=self._read, name="slothlab-shell-output", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        fd = self.pipe.fileno()
        while chunk := os.read(fd, 65536):
            room = self.cap - len(self.data)
            if room > 0:
                self.data += chunk[:room]
            if len(chunk) > max(room, 0):
                self.truncated = True
        self.pipe.close()


def run_shell(
    command: str,
    *,
    timeout_s: float,
    output_cap: int = DEFAULT_OUTPUT_CAP,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> ShellOutcome:
    """Run ``command`` with ``/bin/sh -c`` in a new session and wait at most ``timeout_s``.

    At the timeout the whole process group gets SIGKILL, so children started by the command
    (``sleep`` in ``sh -c 'sleep 100'``) die too.
    """
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
    except OSError as exc:
        return ShellOutcome(None, "", False, False, time.monotonic() - start, str(exc))
    assert proc.stdout is not None
    reader = _Capped(proc.stdout, output_cap)
    timed_out = False
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc.pid)
        proc.wait()
    # An escaped grandchild may hold the pipe open; do not wait on it for long.
    reader.thread.join(timeout=1.0)
    text = bytes(reader.data).decode("utf-8", "replace")
    return ShellOutcome(
        proc.returncode, text, reader.truncated, timed_out, time.monotonic() - start
    )


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(pid, signal.SIGKILL)
