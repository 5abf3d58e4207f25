"""Shell commands for checks and recovery actions, on the one shell runner slothlab has.

:func:`slothlab.lua.modules.exec.run_shell` runs the command in its own process group with a
minimal environment, a timeout that kills the whole group, and capped output; this adapter gives
the checks what they judge by (one output text, whether it could start at all, the time taken).

>>> out = run_shell("echo hello; exit 3", timeout_s=5)
>>> out.exit_code, out.output, out.timed_out
(3, 'hello\\n', False)
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from slothlab.lua.modules.exec import run_shell as _run_shell

__all__ = ["DEFAULT_OUTPUT_CAP", "ShellOutcome", "run_shell"]

DEFAULT_OUTPUT_CAP = 64 * 1024
"""Bytes of output kept from each stream of a command; the rest is read and dropped."""


@dataclass(frozen=True)
class ShellOutcome:
    """How a command ended.

    Attributes:
        exit_code: the exit status (negative: killed by that signal; None: could not start).
        output: stdout then stderr, decoded, each at most the cap.
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


def run_shell(
    command: str,
    *,
    timeout_s: float,
    output_cap: int = DEFAULT_OUTPUT_CAP,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> ShellOutcome:
    """Run ``command`` with ``/bin/sh -c`` and wait at most ``timeout_s``.

    ``env`` is added to the minimal environment (PATH, HOME, LANG); at the timeout the whole
    process group gets SIGKILL, so children started by the command die too.
    """
    start = time.monotonic()
    try:
        result = _run_shell(
            command, workdir=cwd, env=env, timeout_s=timeout_s, max_output=output_cap
        )
    except (OSError, ValueError) as exc:
        return ShellOutcome(None, "", False, False, time.monotonic() - start, str(exc))
    return ShellOutcome(
        None if result.timed_out else result.exit_code,
        result.stdout + result.stderr,
        result.truncated,
        result.timed_out,
        time.monotonic() - start,
    )
