"""Shell tasks with live output: own process group, minimal environment, timeout, rlimits.

:class:`ShellRun` starts ``/bin/sh -c COMMAND 'arg'...`` in a new session (its own process
group) with :func:`~slothlab.lua.modules.exec.minimal_env` plus the task's variables, and reads
stdout, stderr and a pidfd in one ``select`` loop in the calling thread (:meth:`ShellRun.wait`)
or from an event loop (:meth:`ShellRun.start_async`), so every chunk reaches the sink as it comes
(the agent streams it over SSE). When the shell exits, what is left of its
group is killed (a task's processes end with it) and the pipes are drained. The timeout kills the
whole group; :meth:`ShellRun.terminate` sends SIGTERM and, ``kill_grace_s`` later, SIGKILL.

Forking the agent costs about as much as the rest of a no-op task, so :class:`ShellSpares` keeps
a shell or two started ahead (its own session, minimal environment, blocked reading a pipe). A
task takes one and writes it a short script: ``ulimit -S`` for its limits, ``cd -P`` to its
working directory, ``export`` of its environment and ``set --`` of its command, which the spare
then runs with ``eval``; a thread starts the replacement once the task is over (at once when
none is left). Whenever the spare could behave differently (no spare ready, a dead spare, a
missing working directory, an environment variable that is no shell identifier or that the shell
owns, a hard limit below the asked one, a script past 16 KiB) the task forks its shell as
before. What differs on a spare: messages of the shell itself say ``eval:`` (``/bin/sh: 1:
eval: nosuch: not found``), its command line reads ``/bin/sh -c . /dev/fd/0; ...``, and it
started earlier: its umask, nice value, cgroup and hard limits are those of the agent then.

>>> chunks = []
>>> run = ShellRun("echo out; echo err >&2; exit 3", lambda s, b: chunks.append((s, b)))
>>> outcome = run.wait()
>>> outcome.exit_code, outcome.timed_out, sorted(chunks)
(3, False, [('stderr', b'err\\n'), ('stdout', b'out\\n')])
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import logging
import os
import re
import resource
import select
import shlex
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slothlab.lua.modules.exec import minimal_env

__all__ = [
    "ShellLimits",
    "ShellOutcome",
    "ShellRun",
    "ShellSpares",
    "command_line",
    "default_spares",
]

log = logging.getLogger("slothlab.agent")

Sink = Callable[[str, bytes], None]

_TICK_S = 0.2  # the longest the loop sleeps, so a cancel's SIGKILL escalation is on time
_DRAIN_S = 1.0  # how long to read pipes held open by an escaped grandchild once the shell is gone
_REAP_AFTER_S = 0.002  # a loop-followed shell is reaped this long after its task answered
_SPARE_MAX_SCRIPT = 16 << 10  # fits an empty pipe, so handing a script over never waits
_QUIET_S = 0.005  # how long no task took a spare before the next spare is started
_SPARE_DEATHS = 5  # spares found dead in a row, after which a pool stops starting them
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z", re.ASCII)
# dash sets these at start whatever the environment says; an ``export`` would not match that
_SHELL_OWNED = frozenset({"IFS", "OPTIND", "PPID", "PWD"})


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

    def ulimit_commands(self) -> list[str] | None:
        """``ulimit -S`` commands setting the same soft limits in a running shell.

        None when a hard limit is below the asked value (:meth:`apply` then sets the hard one).

        >>> ShellLimits(max_memory_mb=512, max_cpu_s=7).ulimit_commands()
        ['ulimit -S -v 524288 || exit', 'ulimit -S -t 7 || exit']
        """
        commands = []
        for flag, which, value, unit in (
            ("-v", resource.RLIMIT_AS, self.max_memory_mb, 1 << 20),
            ("-t", resource.RLIMIT_CPU, self.max_cpu_s, 1),
            ("-n", resource.RLIMIT_NOFILE, self.max_files, 1),
        ):
            if value:
                _, hard = resource.getrlimit(which)
                if hard != resource.RLIM_INFINITY and value * unit > hard:
                    return None
                shown = value * unit // 1024 if flag == "-v" else value  # dash's -v is in KiB
                commands.append(f"ulimit -S {flag} {shown} || exit")
        return commands


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
        sink: receives ``("stdout"|"stderr", bytes)`` from the thread that calls :meth:`wait`
            (or the loop that follows the run).
        workdir: the working directory (default: the current one).
        env: variables added to the minimal environment.
        timeout_s: kill the process group after this many seconds (None: never).
        limits: rlimits of the processes.
        kill_grace_s: after :meth:`terminate`, how long until SIGKILL.
        spares: where a shell started ahead comes from (default: :func:`default_spares`;
            ``ShellSpares(0)`` forks every shell).

    Attributes:
        from_spare: True when the command runs in a spare shell, False when it was forked.

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
        spares: ShellSpares | None = None,
        fork: bool = True,
    ) -> None:
        if "\0" in command:
            raise ValueError("the command contains a NUL byte")
        self.sink = sink
        self.kill_grace_s = kill_grace_s
        self._monotonic = monotonic
        full_env = minimal_env(env)
        script = _spare_script(command, full_env, workdir, limits)
        pool = (default_spares() if spares is None else spares)._pool
        proc = _start_in_spare(pool, script)
        if proc is None and not fork:
            raise _NeedsFork
        self.from_spare = proc is not None
        self._pool = pool if self.from_spare else None  # told when the run is over
        self.proc = proc or subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=workdir,
            env=full_env,
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
        self._follow: _Follow | None = None  # set while the run is followed from a loop
        self._reaped = False

    @classmethod
    def in_spare(cls, command: str, sink: Sink, **options: Any) -> ShellRun | None:
        """The run in a spare shell, or None (nothing started) where it would need a fork:
        no spare ready, or one of the cases the module names. Takes :class:`ShellRun`'s
        arguments; starting costs no fork, so an event loop may call it.

        Raises:
            ValueError, OSError: as :class:`ShellRun` does.
        """
        try:
            return cls(command, sink, fork=False, **options)
        except _NeedsFork:
            return None

    def start_async(
        self,
        loop: asyncio.AbstractEventLoop,
        done: Callable[[ShellOutcome | None, BaseException | None], None],
        *,
        busy: Callable[[], bool] = lambda: False,
    ) -> None:
        """Follow the run from ``loop`` instead of :meth:`wait` (call it on the loop's thread).

        The loop reads the output (to the sink, from the loop's thread), the exit (a pidfd)
        and keeps the timeout, as :meth:`wait` would; at the end ``done(outcome, None)`` is
        called there, or ``done(None, error)`` when the sink failed (the group is killed
        then). A task so followed needs no thread, so no hand-off between threads. The shell
        is reaped a moment after the answer, unless ``busy()`` says more work waits (then the
        reap would only meet that work later).
        """
        follow = _Follow(self, loop, done, busy)  # raises (no fd for the pidfd...): see abandon()
        with self._lock:
            self._follow, kill_at = follow, self._kill_at
        if kill_at is not None:  # cancelled before it was followed
            follow.kill_later(max(0.0, kill_at - self._monotonic()))

    def abandon(self) -> None:
        """Stop a run nobody will follow (:meth:`start_async` failed): kill its group, reap the
        shell, close its pipes. Blocks only until the SIGKILL took effect."""
        self._reap(kill_group=True)

    def _reap(self, *, kill_group: bool = False) -> int | None:
        """Reap the shell (it exited or was killed: no long wait) and close its pipes, killing
        what is left of its group first when asked; from now on its pid is not ours to signal.
        Its exit code, or None when another caller reaps it (a pool closing reaps the runs
        whose reap a loop still holds)."""
        with self._lock:
            if self._reaped:
                return None
            self._reaped = True
            if kill_group:  # before the reap: until then its pid, the group's id, is ours
                _signal_group(self.pid, signal.SIGKILL)
        code = self.proc.wait()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()
        self.proc.stderr.close()
        if self._pool is not None:
            self._pool.kick(self)
        return code

    def _kill_group(self) -> None:
        """SIGKILL what is left of the group, unless the shell was reaped (its pid freed)."""
        with self._lock:
            if not self._reaped:
                _signal_group(self.pid, signal.SIGKILL)

    def terminate(self) -> None:
        """Cancel: SIGTERM to the group now, SIGKILL ``kill_grace_s`` later (from :meth:`wait`,
        or the loop that follows the run). Callable from any thread."""
        with self._lock:  # the signal too: a reap (which takes the lock first) cannot come between
            if self._cancelled or self._reaped:  # reaped: its pid may be another's by now
                return
            self._cancelled = True
            self._kill_at = self._monotonic() + self.kill_grace_s
            follow = self._follow
            _signal_group(self.pid, signal.SIGTERM)
        if follow is not None:
            follow.kill_later(self.kill_grace_s)

    def wait(self) -> ShellOutcome:
        """Pump output until the shell exits (or is killed); then reap it."""
        assert self.proc.stdout is not None and self.proc.stderr is not None
        fds = {self.proc.stdout.fileno(): "stdout", self.proc.stderr.fileno(): "stderr"}
        try:
            pidfd = os.pidfd_open(self.pid)
        except OSError:  # no fd left, ...: nobody would follow the shell; stop it
            self.abandon()
            raise
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
            code = self._reap()
        assert code is not None  # no pool holds a run followed here: nobody else reaps it
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


class _NeedsFork(Exception):
    """No spare shell could run the command (:meth:`ShellRun.in_spare`)."""


class _Follow:
    """A :class:`ShellRun` followed from an event loop (:meth:`ShellRun.start_async`)."""

    def __init__(
        self,
        run: ShellRun,
        loop: asyncio.AbstractEventLoop,
        done: Callable[[ShellOutcome | None, BaseException | None], None],
        busy: Callable[[], bool],
    ) -> None:
        proc = run.proc
        assert proc.stdout is not None and proc.stderr is not None
        self.run, self.loop, self.done, self.busy = run, loop, done, busy
        self.fds = {proc.stdout.fileno(): "stdout", proc.stderr.fileno(): "stderr"}
        self.pidfd = os.pidfd_open(run.pid)
        self.timed_out = self.exited = self.over = self.held = False
        self.timers: list[asyncio.TimerHandle] = []
        try:
            for fd in self.fds:
                loop.add_reader(fd, self._readable, fd)
            loop.add_reader(self.pidfd, self._exited)
        except BaseException:
            for fd in (*self.fds, self.pidfd):
                loop.remove_reader(fd)
            os.close(self.pidfd)
            raise
        if run._deadline is not None:
            left = max(0.0, run._deadline - run._monotonic())
            self.timers.append(loop.call_later(left, self._timeout))

    def kill_later(self, grace_s: float) -> None:
        """SIGKILL the group ``grace_s`` from now unless it ended (callable from any thread)."""

        def arm() -> None:
            if not self.over:
                self.timers.append(self.loop.call_later(grace_s, self._kill))

        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing left to kill
            self.loop.call_soon_threadsafe(arm)

    def _kill(self) -> None:
        if not self.exited:
            _signal_group(self.run.pid, signal.SIGKILL)

    def _timeout(self) -> None:
        if not self.exited:
            self.timed_out = True
            _signal_group(self.run.pid, signal.SIGKILL)

    def _readable(self, fd: int) -> None:
        try:
            chunk = os.read(fd, 1 << 16)
            if chunk:
                self.run.sink(self.fds[fd], chunk)
                return
        except Exception as exc:  # a failing sink: never leave the group running
            self._finish(exc)
            return
        self.loop.remove_reader(fd)
        del self.fds[fd]
        if self.exited and not self.fds:
            self._finish()

    def _exited(self) -> None:
        self.exited = True
        self.loop.remove_reader(self.pidfd)
        if not self.fds:  # the usual end: the pipes closed before the exit was seen
            self._finish()
            return
        # pipes held open by what is left of the group: kill it (the shell is gone but not
        # reaped, so its pid, the group's id, cannot be reused yet) and read them a while
        _signal_group(self.run.pid, signal.SIGKILL)
        self.timers.append(self.loop.call_later(_DRAIN_S, self._finish))

    def _finish(self, error: BaseException | None = None) -> None:
        """Hand the outcome on; the group's leftovers are killed on the loop's next turn, after
        whoever waits for the task answered, and a spare's shell is reaped ``_REAP_AFTER_S``
        later, so the client usually reads its answer first (a forked one at once; until the
        reap the shell's pid, the group's id, is not reused). From here on the pool keeps the
        run: if the loop stops before that, the pool's close kills the group and reaps."""
        if self.over:
            return
        self.over = True
        for timer in self.timers:
            timer.cancel()
        for fd in self.fds:
            self.loop.remove_reader(fd)
        if not self.exited:
            self.loop.remove_reader(self.pidfd)
        outcome = None
        try:
            if error is None:
                try:
                    code = _exit_status(self.pidfd)
                except OSError as exc:
                    error = exc
                else:
                    cancelled = self.run._cancelled
                    outcome = ShellOutcome(code, timed_out=self.timed_out, cancelled=cancelled)
        finally:
            os.close(self.pidfd)  # the exit status was its last use
            pool = self.run._pool
            self.held = pool is not None and pool.hold(self.run)
        try:
            self.done(outcome, error)
        finally:  # scheduled after what done() woke
            self.loop.call_soon(self._end)

    def _end(self) -> None:
        # no pool (a forked shell) or it closed: nobody reaps it later; or work waits
        if not self.held or self.busy():
            self.run._reap(kill_group=True)
            return
        self.run._kill_group()
        self.loop.call_later(_REAP_AFTER_S, self.run._reap)


def _exit_status(pidfd: int) -> int:
    """The exit status of an exited child, as ``Popen.returncode`` gives it (``-N``: killed by
    signal N), without reaping it (``WNOWAIT``).

    >>> proc = subprocess.Popen(["sh", "-c", "exit 7"])
    >>> fd = os.pidfd_open(proc.pid)
    >>> _ = select.select([fd], [], [])
    >>> _exit_status(fd), _exit_status(fd), proc.wait()
    (7, 7, 7)
    >>> os.close(fd)
    """
    info = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOWAIT)
    assert info is not None  # without WNOHANG it waits (it exited: it does not)
    if info.si_code == os.CLD_EXITED:
        return info.si_status
    return -info.si_status  # CLD_KILLED, CLD_DUMPED


def _spare_script(
    command: str, env: Mapping[str, str], workdir: str | None, limits: ShellLimits
) -> bytes | None:
    """What a spare shell is told to run; None where it could differ from a forked shell."""
    ulimits = limits.ulimit_commands()
    if ulimits is None:
        return None
    try:
        # chdir() would fail (a clear OSError from Popen), or a relative path needs our cwd
        if workdir is not None and not (os.path.isdir(workdir) and os.access(workdir, os.X_OK)):
            return None
        where = os.path.join(os.getcwd(), workdir or "")
        # kept only for the environment every task without variables of its own shares
        # (a task's own values, secrets maybe, are not kept past the task)
        build = _shared_setup if env == minimal_env() else _spare_setup
        setup = build(tuple(env.items()), where, tuple(ulimits))
        if setup is None:
            return None
        script = setup + os.fsencode(f"set -- {shlex.quote(command)}\n")  # as Popen encodes argv
    except (OSError, UnicodeEncodeError):
        return None  # let Popen raise its own error
    return script if len(script) <= _SPARE_MAX_SCRIPT else None


def _spare_setup(
    env: tuple[tuple[str, str], ...], where: str, ulimits: tuple[str, ...]
) -> bytes | None:
    """The part of a spare's script before its command (tasks mostly share it, so it is kept:
    building it costs more than the rest of a no-op task's start); None where a spare could
    differ from a forked shell. Raises UnicodeEncodeError where Popen would."""
    exports = []
    for name, value in env:
        if not _IDENTIFIER.match(name) or name in _SHELL_OWNED:
            return None
        exports.append(f"{name}={shlex.quote(value)}")
    lines = [
        *ulimits,
        f"cd -P -- {shlex.quote(where)} || exit",
        "unset OLDPWD",  # cd exported it; a forked shell has none
        "export " + " ".join(exports),
    ]
    return os.fsencode("\n".join(lines) + "\n")  # as Popen encodes argv and env


_shared_setup = functools.lru_cache(maxsize=16)(_spare_setup)


# dash reads the script from stdin (the pipe), then puts /dev/null there as
# subprocess.DEVNULL does (read-write); it names no fd past 9 in a redirection
_SPARE_SHELL = '. /dev/fd/0; exec 0<>/dev/null; [ "$#" = 1 ] || exit; eval "shift; $1"'


def _start_in_spare(pool: _Pool, script: bytes | None) -> subprocess.Popen[bytes] | None:
    if script is None:
        return None
    spare = pool.take()
    if spare is None:
        return None
    proc = spare.start(script)
    if proc is None:
        pool.died()
    elif pool.deaths:
        pool.lived()
    return proc


class _Spare:
    """A shell started ahead, blocked in ``. /dev/fd/0`` until its script arrives.

    The script sets the task up and ``set --`` its command, which the shell then ``eval``s (so
    line numbers, ``$0``, ``$#`` and ``return`` are those of ``sh -c``). Reading the end of the
    pipe without a command (the agent died or closed it) makes the shell exit.
    """

    def __init__(self) -> None:
        read, self.write = os.pipe()
        try:
            self.proc = subprocess.Popen(
                ["/bin/sh", "-c", _SPARE_SHELL],
                cwd="/",
                env=minimal_env(None),
                stdin=read,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except BaseException:
            os.close(self.write)
            raise
        finally:
            os.close(read)

    def start(self, script: bytes) -> subprocess.Popen[bytes] | None:
        """Hand over the script: the running shell, or None if it is gone (fork instead)."""
        try:
            view = memoryview(script)
            while view:
                view = view[os.write(self.write, view) :]
        except BrokenPipeError:
            self.discard()
            return None
        self._close_write()
        return self.proc

    def discard(self) -> None:
        """Stop the spare and reap it."""
        self._close_write()
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()

    def _close_write(self) -> None:
        if self.write >= 0:
            os.close(self.write)
            self.write = -1


class _Pool:
    """The state of :class:`ShellSpares`, shared by its refill thread and its finalizer."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.cond = threading.Condition()
        self.idle: collections.deque[_Spare] = collections.deque()
        self.closed = False
        self.deaths = 0
        self.thread: threading.Thread | None = None
        self.pid = os.getpid()  # a forked child must not hand its parent's spares a second task
        self.last_take = float("-inf")
        self.resting = False  # the refill thread waits: a take or a task's end wakes it
        self.held: set[ShellRun] = set()  # exited shells a loop reaps soon (see hold())

    def take(self) -> _Spare | None:
        """A spare, or None. A dead one is found when its script is handed over (its pipe is
        broken: :meth:`died`), not here: a check per take costs a syscall. The refill thread
        is woken when none is left; else :meth:`kick` wakes it once the task is over, so its
        fork does not land on the task."""
        if not self.size or os.getpid() != self.pid:
            return None
        with self.cond:
            self.last_take = time.monotonic()
            if self.idle:
                spare = self.idle.popleft()
                if not self.idle or self.thread is None:
                    self._wake()
                return spare
            self._wake()
        return None

    def hold(self, run: ShellRun) -> bool:
        """Keep ``run`` (its shell exited, a loop reaps it soon) until its :meth:`kick` or the
        pool's close, which kills its group and reaps it; False when the pool is closed."""
        with self.cond:
            if self.closed:
                return False
            self.held.add(run)
            return True

    def kick(self, run: ShellRun) -> None:
        """``run``, which took a spare, is over and reaped: let the refill thread top up."""
        with self.cond:
            self.held.discard(run)
            if self.resting and self._wanted():
                self.cond.notify_all()

    def lived(self) -> None:
        """A spare ran its task: the count of deaths in a row starts again."""
        with self.cond:
            self.deaths = 0

    def died(self) -> None:
        """A spare was found dead when a task took it (it is discarded); many in a row stop
        the pool."""
        with self.cond:
            self.deaths += 1
            if self.deaths == _SPARE_DEATHS:
                log.warning("%d spare shells died unused; starting no more", self.deaths)
            self._wake()

    def fill(self, wait_s: float) -> int:
        if not self.size or os.getpid() != self.pid:
            return 0
        with self.cond:
            self._wake()
            self.cond.wait_for(lambda: self.closed or len(self.idle) >= self.size, wait_s)
            return len(self.idle)

    def _wake(self) -> None:
        """Let the refill thread run (start it the first time); with ``cond`` held."""
        if self.thread is None and not self.closed:
            self.thread = threading.Thread(target=self._refill, name="shell-spares", daemon=True)
            self.thread.start()
        self.cond.notify_all()

    def _wanted(self) -> bool:
        return self.closed or (len(self.idle) < self.size and self.deaths < _SPARE_DEATHS)

    def _refill(self) -> None:
        while True:
            with self.cond:
                self.resting = True
                self.cond.wait_for(self._wanted)
                self.resting = False
                self._wait_for_quiet()
                if self.closed:
                    return
            try:
                spare = _Spare()
            except (OSError, subprocess.SubprocessError):
                log.exception("cannot start a spare shell; retrying in 1 s")
                with self.cond:
                    self.cond.wait_for(lambda: self.closed, 1.0)
                continue
            with self.cond:
                if not self.closed:
                    self.idle.append(spare)
                    self.cond.notify_all()
                    continue
            spare.discard()
            return

    def _wait_for_quiet(self) -> None:
        """While a spare is left, start the next one only once no task took one for
        ``_QUIET_S``: starting a shell costs the agent ~1 ms of CPU, which would otherwise land
        on the task that just took a spare and on its answer. With none left, start at once."""
        while self.idle and not self.closed:
            left = self.last_take + _QUIET_S - time.monotonic()
            if left <= 0:
                return
            self.cond.wait(left)

    def close(self) -> None:
        if os.getpid() != self.pid:
            return
        with self.cond:
            self.closed = True
            idle = list(self.idle)
            self.idle.clear()
            held = list(self.held)
            self.cond.notify_all()
        for spare in idle:
            spare.discard()
        for run in held:  # their loop may have stopped before the reap it had planned
            run._reap(kill_group=True)
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(10.0)  # it may be starting one spare more, which it then discards


class ShellSpares:
    """Shells started ahead of their tasks, so a shell task skips the agent's fork and exec.

    Args:
        size: spares kept ready; 0 turns them off (every task forks its shell).

    A thread, started by the first :meth:`fill` or take, keeps ``size`` spares ready. Each is
    ``/bin/sh`` in a session of its own with the minimal environment, blocked reading its
    script from a pipe. :meth:`close` stops them, and so do garbage collection and the
    interpreter's exit; a spare whose agent dies reads the end of its pipe and exits.

    >>> spares = ShellSpares(1)
    >>> spares.fill(wait_s=10)
    1
    >>> run = ShellRun("echo $0 in $PWD", lambda s, b: print(b.decode(), end=""),
    ...                workdir="/tmp", spares=spares)
    >>> outcome = run.wait()
    /bin/sh in /tmp
    >>> run.from_spare, outcome.exit_code
    (True, 0)
    >>> spares.close()
    >>> spares.pids
    []
    """

    def __init__(self, size: int = 2) -> None:
        if size < 0:
            raise ValueError(f"size must be 0 or more, not {size}")
        self.size = size
        self._pool = _Pool(size)
        self._finalizer = weakref.finalize(self, self._pool.close)

    def fill(self, wait_s: float = 0.0) -> int:
        """Start the refill thread if needed; wait up to ``wait_s`` for ``size`` ready spares.

        Returns the number ready.
        """
        return self._pool.fill(wait_s)

    @property
    def pids(self) -> list[int]:
        """Process ids of the spares ready now."""
        with self._pool.cond:
            return [spare.proc.pid for spare in self._pool.idle]

    def close(self) -> None:
        """Stop the spares and the refill thread; later tasks fork their shells. Idempotent."""
        self._finalizer()


_default: ShellSpares | None = None
_default_lock = threading.Lock()


def default_spares() -> ShellSpares:
    """The spares of every :class:`ShellRun` that names none (two, started at first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ShellSpares()
        return _default


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
