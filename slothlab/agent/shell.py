"""Shell tasks with live output: own process group, minimal environment, timeout, rlimits.

:class:`ShellRun` starts ``/bin/sh -c COMMAND 'arg'...`` in a new session (its own process
group) with :func:`~slothlab.lua.modules.exec.minimal_env` plus the task's variables, and reads
stdout, stderr and a pidfd in one ``select`` loop in the calling thread, so every chunk reaches
the sink as it comes (the agent streams it over SSE). When the shell exits, what is left of its
group is killed (a task's processes end with it) and the pipes are drained. The timeout kills the
whole group; :meth:`ShellRun.terminate` sends SIGTERM and, ``kill_grace_s`` later, SIGKILL.

>>> chunks = []
>>> run = ShellRun("echo out; echo err >&2; exit 3", lambda s, b: chunks.append((s, b)))
>>> outcome = run.wait()
>>> outcome.exit_code, outcome.timed_out, sorted(chunks)
(3, False, [('stderr', b'err\\n'), ('stdout', b'out\\n')])
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slothlab.lua.modules.exec import minimal_env

__all__ = ["ShellLimits", "ShellOutcome", "ShellRun", "command_line"]

Sink = Callable[[str, bytes], None]

_TICK_S = 0.2  # the longest the loop sleeps, so a cancel's SIGKILL escalation is on time
_DRAIN_S = 1.0  # how long to read pipes held open by an escaped grandchild once the shell is gone


@dataclass(frozen=True)
class ShellLimits:
    """Resource limits (``setrlimit``) of a shell task's processes; 0 means none.

    Attributes:
        max_memory_mb: ``RLIMIT_AS`` of each process.
        max_cpu_s: ``RLIMIT_CPU`` of each process (SIGXCPU past it).
        max_files: ``RLIMIT_NOFILE``.
    """

    max_memory_mb: int = 0
    max_cpu_s: int = 0
    max_files: int = 0

    @property
    def active(self) -> bool:
        """True when any limit is set."""
        return bool(self.max_memory_mb or self.max_cpu_s or self.max_files)

    def apply(self) -> None:
        """Set the limits on the calling process (runs in the child before ``exec``)."""
        for which, value in (
            (resource.RLIMIT_AS, self.max_memory_mb << 20),
            (resource.RLIMIT_CPU, self.max_cpu_s),
            (resource.RLIMIT_NOFILE, self.max_files),
        ):
            if value:
                _, hard = resource.getrlimit(which)
                soft = value if hard == resource.RLIM_INFINITY else min(value, hard)
                resource.setrlimit(which, (soft, hard))


@dataclass(frozen=True)
class ShellOutcome:
    """How a shell task ended: exit status (negative: killed by that signal), timeout, cancel."""

    exit_code: int
    timed_out: bool = False
    cancelled: bool = False


def command_line(source: str, args: Sequence[Any] = ()) -> str:
    """The command with ``args`` appended, each quoted (lists and dicts as JSON).

    >>> command_line("echo", ["a b", 3, {"k": 1}])
    'echo \\'a b\\' 3 \\'{"k": 1}\\''
    """
    parts = [source]
    for arg in args:
        text = arg if isinstance(arg, str) else json.dumps(arg)
        parts.append(shlex.quote(text))
    return " ".join(parts)


class ShellRun:
    """A running shell command whose output goes to ``sink(stream, chunk)`` as it comes.

    Args:
        command: the shell command line.
        sink: receives ``("stdout"|"stderr", bytes)`` from the thread that calls :meth:`wait`.
        workdir: the working directory (default: the current one).
        env: variables added to the minimal environment.
        timeout_s: kill the process group after this many seconds (None: never).
        limits: rlimits of the processes.
        kill_grace_s: after :meth:`terminate`, how long until SIGKILL.

    Raises:
        ValueError: the command or an environment variable holds a NUL byte.
        OSError: the shell could not start (e.g. a missing working directory).
    """

    def __init__(
        self,
        command: str,
        sink: Sink,
        *,
        workdir: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        limits: ShellLimits = ShellLimits(),  # frozen, so sharing it is safe
        kill_grace_s: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if "\0" in command:
            raise ValueError("the command contains a NUL byte")
        self.sink = sink
        self.kill_grace_s = kill_grace_s
        self._monotonic = monotonic
        self.proc = subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=workdir,
            env=minimal_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=limits.apply if limits.active else None,
        )
        self.pid = self.proc.pid
        self._deadline = None if timeout_s is None else monotonic() + timeout_s
        self._kill_at: float | None = None
        self._cancelled = False
        self._lock = threading.Lock()

    def terminate(self) -> None:
        """Cancel: SIGTERM to the group now, SIGKILL ``kill_grace_s`` later (from :meth:`wait`)."""
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            self._kill_at = self._monotonic() + self.kill_grace_s
        _signal_group(self.pid, signal.SIGTERM)

    def wait(self) -> ShellOutcome:
        """Pump output until the shell exits (or is killed); then reap it."""
        assert self.proc.stdout is not None and self.proc.stderr is not None
        fds = {self.proc.stdout.fileno(): "stdout", self.proc.stderr.fileno(): "stderr"}
        pidfd = os.pidfd_open(self.pid)
        timed_out = False
        try:
            exited = False
            while not exited:
                exited = self._pump(fds, pidfd, self._sleep_for())
                if not exited and self._past(self._deadline):
                    timed_out = True
                    _signal_group(self.pid, signal.SIGKILL)
                elif not exited and self._past(self._kill_at):
                    _signal_group(self.pid, signal.SIGKILL)
            # the shell is gone but not reaped, so its pid (= the group id) cannot be reused yet
            _signal_group(self.pid, signal.SIGKILL)
            self._drain(fds)
        except BaseException:  # a failing sink or Ctrl-C: never leave the group running
            _signal_group(self.pid, signal.SIGKILL)
            raise
        finally:
            os.close(pidfd)
            code = self.proc.wait()
            self.proc.stdout.close()
            self.proc.stderr.close()
        return ShellOutcome(code, timed_out=timed_out, cancelled=self._cancelled)

    def _sleep_for(self) -> float:
        now = self._monotonic()
        ends = [t for t in (self._deadline, self._kill_at) if t is not None]
        return max(0.0, min([_TICK_S, *(t - now for t in ends)]))

    def _past(self, moment: float | None) -> bool:
        return moment is not None and self._monotonic() >= moment

    def _pump(self, fds: dict[int, str], pidfd: int, timeout_s: float) -> bool:
        """Read what is ready; True once the shell has exited."""
        ready, _, _ = select.select([*fds, pidfd], [], [], timeout_s)
        for fd in ready:
            if fd != pidfd:
                self._read(fds, fd)
        return pidfd in ready

    def _read(self, fds: dict[int, str], fd: int) -> None:
        chunk = os.read(fd, 1 << 16)
        if chunk:
            self.sink(fds[fd], chunk)
        else:
            del fds[fd]

    def _drain(self, fds: dict[int, str]) -> None:
        until = self._monotonic() + _DRAIN_S
        while fds and self._monotonic() < until:
            ready, _, _ = select.select(list(fds), [], [], max(0.0, until - self._monotonic()))
            for fd in ready:
                self._read(fds, fd)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
