"""The ``exec`` Lua module: run a shell command, get its output and exit code.

``exec.run(cmd, {workdir=, env={}, timeout=})`` → ``{stdout, stderr, exit_code, success}``.
The command runs under ``/bin/sh -c`` in its own process group with a minimal environment
(``PATH``, ``HOME`` and what ``env`` names); a timeout kills the whole group; each stream is
capped. Needs the ``exec`` capability. A command that cannot start returns ``nil, "message"``.

>>> r = run_shell("echo hi; echo oops >&2; exit 3")
>>> (r.stdout, r.stderr, r.exit_code, r.success)
('hi\\n', 'oops\\n', 3, False)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from slothlab.lua.modules.base import LuaModule

if TYPE_CHECKING:
    from slothlab.lua.runtime import Runtime

__all__ = ["MAX_OUTPUT_BYTES", "ExecModule", "ShellResult", "minimal_env", "run_shell"]

MAX_OUTPUT_BYTES = 1 << 20
"""Bytes kept of each of stdout and stderr; the rest is counted and dropped."""

_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_READER_GRACE_S = 2.0  # how long to wait for the pipes once the shell is gone


@dataclass(frozen=True)
class ShellResult:
    """What a shell command produced.

    Attributes:
        stdout: its standard output (capped), decoded as UTF-8 with replacement.
        stderr: its standard error (capped).
        exit_code: the shell's exit status; ``-9`` style negatives for a signal, 124 on timeout.
        timed_out: True when the timeout killed it.
        truncated: True when either stream passed the output cap.
    """

    stdout: str
    stderr: str
    exit_code: int
    timed_out: bool = False
    truncated: bool = False

    @property
    def success(self) -> bool:
        """True for exit status 0."""
        return self.exit_code == 0 and not self.timed_out

    def to_lua(self) -> dict[str, Any]:
        """The table ``exec.run`` returns."""
        return {
            "stdout": self.stdout,
            "stderr": self.stderr,
            "exit_code": self.exit_code,
            "success": self.success,
            "timed_out": self.timed_out,
        }


def minimal_env(extra: Mapping[str, Any] | None = None) -> dict[str, str]:
    """``PATH`` and ``HOME`` of this process plus ``extra``: nothing else leaks to commands.

    >>> sorted(minimal_env({"STAGE": "ci"}))
    ['HOME', 'PATH', 'STAGE']
    """
    env = {
        "PATH": os.environ.get("PATH") or _DEFAULT_PATH,
        "HOME": os.environ.get("HOME") or str(Path.home()),
    }
    for key, value in (extra or {}).items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise ValueError(f"bad environment variable name {key!r}")
        text = _env_text(value)
        if "\0" in text:
            raise ValueError(f"environment variable {key} contains a NUL byte")
        env[key] = text
    return env


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class _Capped:
    """Reads a pipe in a thread, keeping the first ``limit`` bytes and counting the rest."""

    def __init__(self, pipe: IO[bytes], limit: int) -> None:
        self.pipe, self.limit = pipe, limit
        self.kept = bytearray()
        self.dropped = 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while chunk := self.pipe.read1(65536):  # type: ignore[attr-defined]
                room = self.limit - len(self.kept)
                self.kept += chunk[: max(room, 0)]
                self.dropped += max(len(chunk) - max(room, 0), 0)
        except (OSError, ValueError):
            return

    def text(self) -> str:
        self.thread.join(_READER_GRACE_S)
        text = bytes(self.kept).decode("utf-8", "replace")
        if self.dropped:
            text += f"\n[output truncated: {self.dropped} more bytes]"
        return text


def run_shell(
    command: str,
    *,
    workdir: str | Path | None = None,
    env: Mapping[str, Any] | None = None,
    timeout_s: float | None = None,
    max_output: int = MAX_OUTPUT_BYTES,
    popen: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen,
) -> ShellResult:
    """Run ``command`` with ``/bin/sh -c`` in its own process group and wait for it.

    Args:
        command: the shell command line.
        workdir: its working directory (default: the current one).
        env: variables added to the minimal environment.
        timeout_s: kill the whole process group after this many seconds.
        max_output: bytes kept of each stream.
        popen: the process factory (tests may wrap it).

    Raises:
        ValueError: the command or an environment variable contains a NUL byte.
        OSError: the shell could not be started (e.g. the working directory is missing).
    """
    if "\0" in command:
        raise ValueError("the command contains a NUL byte")
    proc = popen(
        ["/bin/sh", "-c", command],
        cwd=str(workdir) if workdir is not None else None,
        env=minimal_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    out, err = _Capped(proc.stdout, max_output), _Capped(proc.stderr, max_output)
    timed_out = False
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc.pid)
        code = proc.wait()
    except BaseException:  # KeyboardInterrupt: do not leave the group running
        _kill_group(proc.pid)
        proc.wait()
        raise
    result = ShellResult(
        out.text(),
        err.text(),
        124 if timed_out else code,
        timed_out,
        truncated=bool(out.dropped or err.dropped),
    )
    proc.stdout.close()
    proc.stderr.close()
    return result


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class ExecModule(LuaModule):
    """``exec.run(cmd, opts)``: shell commands from Lua (capability ``exec``)."""

    name = "exec"
    capability = "exec"

    def functions(self, runtime: Runtime) -> Mapping[str, Callable[..., Any]]:
        """``run``."""
        default_dir = runtime.context.get("workdir")

        def run(cmd: Any = None, opts: Any = None) -> Any:
            if not isinstance(cmd, str) or not cmd.strip():
                return None, "exec.run: the command must be a non-empty string"
            if opts is not None and not isinstance(opts, dict):
                return None, "exec.run: options must be a table {workdir=, env=, timeout=}"
            return _run_with(cmd, opts or {}, default_dir)

        return {"run": run}


def _run_with(cmd: str, opts: dict[str, Any], default_dir: Any) -> Any:
    from slothlab.errors import WorkflowError
    from slothlab.workflow.durations import parse_duration

    env = opts.get("env") or {}
    if not isinstance(env, dict):
        return None, "exec.run: env must be a table of NAME = value"
    try:
        timeout = parse_duration(opts["timeout"], "timeout") if opts.get("timeout") else None
        result = run_shell(
            cmd, workdir=opts.get("workdir") or default_dir, env=env, timeout_s=timeout
        )
    except (ValueError, WorkflowError) as exc:
        return None, f"exec.run: {exc}"
    except OSError as exc:
        return None, f"exec.run: cannot start the command: {exc.strerror or exc}"
    return result.to_lua()
