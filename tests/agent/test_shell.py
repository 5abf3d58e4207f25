"""The streaming shell runner: environment, working directory, timeout, cancel, rlimits, spares.

Most tests run twice: in a spare shell started ahead (``spare``) and in a forked one (``fork``);
each checks that it ran on the path it names.
"""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from slothlab.agent import Executor, shell
from slothlab.agent.shell import (
    ShellLimits,
    ShellOutcome,
    ShellRun,
    ShellSpares,
    command_line,
    default_spares,
)
from slothlab.protocol import TaskRequest

from .conftest import gone, wait_until


class Sink:
    def __init__(self) -> None:
        self.chunks: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()

    def __call__(self, stream: str, chunk: bytes) -> None:
        with self.lock:
            self.chunks.append((stream, chunk))

    def text(self, stream: str = "stdout") -> str:
        with self.lock:
            return b"".join(c for s, c in self.chunks if s == stream).decode()


@pytest.fixture(params=["spare", "fork"])
def spares(request: pytest.FixtureRequest) -> Iterator[ShellSpares]:
    pool = ShellSpares(1 if request.param == "spare" else 0)
    yield pool
    pool.close()


def start(command: str, sink: Sink, spares: ShellSpares, **options: Any) -> ShellRun:
    """A run on the path ``spares`` stands for (a ready spare, or a fork), checked."""
    assert spares.fill(wait_s=10) == spares.size
    run = ShellRun(command, sink, spares=spares, **options)
    assert run.from_spare == bool(spares.size)
    return run


def children() -> set[int]:
    return {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)}


# -- what a shell task gets, on both paths --------------------------------------------------------


def test_minimal_environment_and_workdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spares: ShellSpares
) -> None:
    monkeypatch.setenv("AGENT_SECRET", "do-not-leak")
    sink = Sink()
    run = start("env; pwd", sink, spares, workdir=str(tmp_path), env={"STAGE": "ci"})
    assert run.wait().exit_code == 0
    out = sink.text()
    assert "STAGE=ci" in out and "AGENT_SECRET" not in out and "OLDPWD" not in out
    assert out.strip().splitlines()[-1] == str(tmp_path)


def test_args_are_appended_quoted(spares: ShellSpares) -> None:
    sink = Sink()
    run = start(command_line("printf '%s|'", ["a b", "$HOME", 3, [1, 2]]), sink, spares)
    run.wait()
    assert sink.text() == "a b|$HOME|3|[1, 2]|"


def test_nul_byte_is_refused(spares: ShellSpares) -> None:
    with pytest.raises(ValueError, match="NUL"):
        ShellRun("echo \0", Sink(), spares=spares)
    with pytest.raises(ValueError, match="NUL"):
        ShellRun("true", Sink(), env={"A": "x\0y"}, spares=spares)


def test_output_arrives_while_the_command_runs(tmp_path: Path, spares: ShellSpares) -> None:
    gate = tmp_path / "gate"
    sink = Sink()
    run = start(
        f"echo first; while [ ! -e {gate} ]; do sleep 0.01; done; echo second", sink, spares
    )
    waiter = threading.Thread(target=run.wait)
    waiter.start()
    wait_until(lambda: sink.text() == "first\n", what="the first line")
    gate.touch()
    waiter.join(10)
    assert sink.text() == "first\nsecond\n"


@pytest.mark.parametrize(
    ("command", "code"),
    [("exit 3", 3), ("true", 0), ("false", 1), ("kill -TERM $$", -signal.SIGTERM), ("nosuch", 127)],
)
def test_exit_codes(command: str, code: int, spares: ShellSpares) -> None:
    assert start(command, Sink(), spares).wait() == ShellOutcome(code)


def test_timeout_kills_the_whole_group(tmp_path: Path, spares: ShellSpares) -> None:
    pidfile = tmp_path / "child.pid"
    run = start(f"sleep 30 & echo $! > {pidfile}; wait", Sink(), spares, timeout_s=0.5)
    outcome = run.wait()
    assert outcome.timed_out and outcome.exit_code == -signal.SIGKILL
    child = int(pidfile.read_text())  # SIGKILL was sent; it may take a moment to land
    wait_until(lambda: gone(child), what="the background child to die")


def test_the_shell_leads_its_own_process_group(spares: ShellSpares) -> None:
    sink = Sink()
    run = start("ps -o pgid= -o sid= -p $$", sink, spares)
    run.wait()
    assert sink.text().split() == [str(run.pid), str(run.pid)]


def test_leftover_background_processes_end_with_the_task(
    tmp_path: Path, spares: ShellSpares
) -> None:
    pidfile = tmp_path / "child.pid"
    run = start(f"sleep 30 > /dev/null 2>&1 & echo $! > {pidfile}", Sink(), spares)
    assert run.wait().exit_code == 0
    child = int(pidfile.read_text())
    wait_until(lambda: gone(child), what="the background child to die")


def test_terminate_escalates_to_sigkill(tmp_path: Path, spares: ShellSpares) -> None:
    ready = tmp_path / "ready"
    run = start(
        f"trap '' TERM; touch {ready}; while true; do sleep 0.05; done",
        Sink(),
        spares,
        kill_grace_s=0.3,
    )
    result: list[ShellOutcome] = []
    waiter = threading.Thread(target=lambda: result.append(run.wait()))
    waiter.start()
    wait_until(ready.exists, what="the trap to be set")
    run.terminate()
    waiter.join(10)
    assert result[0].cancelled and result[0].exit_code == -signal.SIGKILL


def test_terminate_ends_a_polite_command_with_sigterm(spares: ShellSpares) -> None:
    sink = Sink()
    run = start("echo up; exec sleep 30", sink, spares)
    result: list[ShellOutcome] = []
    waiter = threading.Thread(target=lambda: result.append(run.wait()))
    waiter.start()
    wait_until(lambda: sink.text() == "up\n", what="the command to start")
    run.terminate()
    waiter.join(10)
    assert result[0].exit_code == -signal.SIGTERM


def test_rlimits_apply_to_the_command(spares: ShellSpares) -> None:
    sink = Sink()
    limits = ShellLimits(max_memory_mb=512, max_cpu_s=7, max_files=64)
    run = start("ulimit -v; ulimit -t; ulimit -n; ulimit -H -v", sink, spares, limits=limits)
    assert run.wait().exit_code == 0
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    hard_text = "unlimited" if hard == resource.RLIM_INFINITY else str(hard // 1024)
    assert sink.text().split() == [str(512 * 1024), "7", "64", hard_text]


def test_memory_limit_stops_a_hungry_command(spares: ShellSpares) -> None:
    sink = Sink()
    hungry = "python3 -c 'x = bytearray(400 * 1024 * 1024)'"
    run = start(hungry, sink, spares, limits=ShellLimits(max_memory_mb=200))
    assert run.wait().exit_code != 0
    assert "MemoryError" in sink.text("stderr")


def test_no_process_is_left_behind(spares: ShellSpares) -> None:
    before = children()
    start("true", Sink(), spares).wait()
    spares.fill(wait_s=10)
    assert children() - set(spares.pids) <= before


@pytest.mark.parametrize(
    "command",
    [
        "env | sort",
        "set",
        "export -p",
        "pwd; echo $PWD",
        'echo "$0|$#|$-|$?|${1-none}|${OLDPWD-none}"',
        "ls /proc/$$/fd; ls /proc/self/fd; grep flags /proc/$$/fdinfo/0",
        "echo to-stdin >&0; echo $?",
        "umask; ulimit -a; trap",
        "return 4; echo not-here",
        "echo a; exit 5",
        "trap 'echo bye $?' EXIT; (exit 7)",
        "for i in 1 2; do\n  echo $i\ndone\nf() { return 6; }; f",
        "cat <<EOF\n$STAGE 'q' \\$x\nEOF",
        'printf \'%s\\n\' "$QUOTED" "$UNICODE"',
        "echo 'ā ł ˆ ʼ 中'",
        "set -e; false; echo not-here",
        "sleep 0 & wait $!; echo $?",
    ],
)
def test_both_paths_run_a_command_alike(command: str, tmp_path: Path) -> None:
    env = {"STAGE": "ci", "QUOTED": 'it\'s "$x" `y`\nline 2\\', "UNICODE": "ā 中", "OLDPWD": "/x"}
    seen = []
    for size in (1, 0):
        spares = ShellSpares(size)
        try:
            sink = Sink()
            run = start(command, sink, spares, workdir=str(tmp_path), env=env)
            outcome = run.wait()
            pid = str(run.pid)
            texts = (sink.text().replace(pid, "PID"), sink.text("stderr").replace(pid, "PID"))
            seen.append((outcome, texts))
        finally:
            spares.close()
    assert seen[0] == seen[1]


def test_shell_errors_name_eval_on_a_spare(spares: ShellSpares) -> None:
    """The one documented difference: messages of the shell itself (not of a builtin)."""
    sink = Sink()
    assert start("echo a\nnosuch; cd /no-such-dir", sink, spares).wait().exit_code == 2
    where = "eval: " if spares.size else ""
    assert sink.text("stderr") == (
        f"/bin/sh: 2: {where}nosuch: not found\n/bin/sh: 2: cd: can't cd to /no-such-dir\n"
    )


def test_relative_and_symlinked_workdirs_resolve_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spares: ShellSpares
) -> None:
    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.chdir(tmp_path)
    for workdir, expected in [("link/sub", "real/sub"), ("link/..", ""), (None, "")]:
        sink = Sink()
        start("pwd; echo $PWD", sink, spares, workdir=workdir).wait()
        physical = str((tmp_path / expected).resolve())
        assert sink.text().split() == [physical, physical]


@pytest.mark.parametrize(
    ("name", "error"),
    [("missing", FileNotFoundError), ("file", NotADirectoryError), ("", FileNotFoundError)],
)
def test_a_bad_workdir_raises_the_same_oserror(
    name: str, error: type[OSError], tmp_path: Path, spares: ShellSpares
) -> None:
    (tmp_path / "file").touch()
    workdir = str(tmp_path / name) if name else ""
    spares.fill(wait_s=10)
    ready = spares.pids
    with pytest.raises(error):
        ShellRun("true", Sink(), workdir=workdir, spares=spares)
    assert spares.pids == ready  # the spare was not spent on it


# -- the spare path -------------------------------------------------------------------------------


def test_a_task_runs_in_a_shell_started_before_it() -> None:
    with_spares = ShellSpares(2)
    try:
        assert with_spares.fill(wait_s=10) == 2
        ready = with_spares.pids
        run = ShellRun("echo $$", Sink(), spares=with_spares)
        assert run.from_spare and run.pid == ready[0]
        assert run.wait().exit_code == 0
        wait_until(lambda: len(with_spares.pids) == 2, what="the replacement spare")
        assert run.pid not in with_spares.pids and ready[1] in with_spares.pids
    finally:
        with_spares.close()


def test_spares_are_replaced_in_a_quiet_moment_or_at_once_when_none_is_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shell, "_QUIET_S", 3600.0)  # tasks never pause long enough here
    with_spares = ShellSpares(2)
    try:
        assert with_spares.fill(wait_s=10) == 2
        first = ShellRun("true", Sink(), spares=with_spares)
        assert first.from_spare and first.wait().exit_code == 0
        # one left: its replacement waits for a quiet moment (half a second shows none starts)
        assert with_spares.fill(wait_s=0.5) == 1
        second = ShellRun("true", Sink(), spares=with_spares)
        assert second.from_spare and second.wait().exit_code == 0
        wait_until(lambda: len(with_spares.pids) == 1, what="a spare started at once")
    finally:
        with_spares.close()


def test_a_spare_is_replaced_once_its_task_is_over_while_another_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shell, "_QUIET_S", 0.0)  # no wait for quiet: only the task's end counts
    gate = tmp_path / "gate"
    with_spares = ShellSpares(2)
    try:
        assert with_spares.fill(wait_s=10) == 2
        # taken while the refill thread rests (not while it still loops after the last spare)
        wait_until(lambda: with_spares._pool.resting, what="the refill thread to rest")
        run = ShellRun(f"while [ ! -e {gate} ]; do sleep 0.01; done", Sink(), spares=with_spares)
        try:
            assert run.from_spare
            # the fork of a replacement would land on the running task: it waits for its end
            # (watched for half a second; fill() would wake the refill itself)
            until = time.monotonic() + 0.5
            while time.monotonic() < until:
                assert len(with_spares.pids) == 1
                time.sleep(0.01)
        finally:
            gate.touch()  # the task ends whatever happened above
            assert run.wait().exit_code == 0
        wait_until(lambda: len(with_spares.pids) == 2, what="the replacement after the task")
    finally:
        with_spares.close()


def test_shell_run_uses_the_default_spares() -> None:
    assert default_spares().fill(wait_s=10) == default_spares().size
    ready = default_spares().pids
    run = ShellRun("true", Sink())
    assert run.from_spare and run.pid in ready
    assert run.wait().exit_code == 0


def test_the_task_shell_holds_no_script_pipe() -> None:
    with_spares = ShellSpares(1)
    try:
        sink = Sink()
        start("ls /proc/$$/fd; sh -c 'ls /proc/$$/fd'", sink, with_spares).wait()
        assert sink.text().split() == ["0", "1", "2"] * 2
    finally:
        with_spares.close()


def test_no_spare_ready_forks() -> None:
    cold = ShellSpares(1)
    try:
        run = ShellRun("true", Sink(), spares=cold)  # the first take starts the refill
        assert not run.from_spare and run.wait().exit_code == 0
        assert cold.fill(wait_s=10) == 1
    finally:
        cold.close()


@pytest.mark.parametrize(
    "env",
    [
        {"A-B": "1"},
        {"1X": "1"},
        {"PWD": "/elsewhere"},
        {"IFS": ":"},
        {"PPID": "1"},
        {"OPTIND": "3"},
    ],
)
def test_variables_a_spare_cannot_set_alike_fork(env: dict[str, str]) -> None:
    with_spares = ShellSpares(1)
    try:
        with_spares.fill(wait_s=10)
        ready = with_spares.pids
        sink = Sink()
        run = ShellRun("echo $PWD $PPID $OPTIND", sink, env=env, spares=with_spares)
        assert not run.from_spare and run.wait().exit_code == 0
        assert sink.text().split() == [os.getcwd(), str(os.getpid()), "1"]
        assert with_spares.pids == ready
    finally:
        with_spares.close()


def test_a_script_past_16_kib_forks() -> None:
    with_spares = ShellSpares(1)
    try:
        with_spares.fill(wait_s=10)
        sink = Sink()
        run = ShellRun(f": '{'x' * (16 << 10)}'; echo ok", sink, spares=with_spares)
        assert not run.from_spare and run.wait().exit_code == 0 and sink.text() == "ok\n"
        small = start(f": '{'x' * (15 << 10)}'; echo ok", Sink(), with_spares)
        assert small.wait().exit_code == 0
    finally:
        with_spares.close()


def test_a_dead_spare_is_replaced_and_the_task_forks() -> None:
    with_spares = ShellSpares(1)
    try:
        with_spares.fill(wait_s=10)
        (dead,) = with_spares.pids
        os.kill(dead, signal.SIGKILL)
        wait_until(lambda: gone(dead), what="the spare to die")
        run = ShellRun("echo $$", Sink(), spares=with_spares)
        assert not run.from_spare and run.pid != dead and run.wait().exit_code == 0
        assert with_spares.fill(wait_s=10) == 1 and with_spares.pids != [dead]
        assert start("true", Sink(), with_spares).wait().exit_code == 0
    finally:
        with_spares.close()


def test_sizes() -> None:
    with pytest.raises(ValueError, match="0 or more"):
        ShellSpares(-1)
    off = ShellSpares(0)
    assert off.fill(wait_s=10) == 0 and off.pids == []


# -- spares never outlive their owner -------------------------------------------------------------


def test_close_stops_every_spare() -> None:
    with_spares = ShellSpares(2)
    assert with_spares.fill(wait_s=10) == 2
    pids = with_spares.pids
    with_spares.close()
    with_spares.close()
    assert with_spares.pids == [] and not (set(pids) & children())
    run = ShellRun("true", Sink(), spares=with_spares)
    assert not run.from_spare and run.wait().exit_code == 0


def test_garbage_collection_stops_the_spares() -> None:
    with_spares = ShellSpares(1)
    with_spares.fill(wait_s=10)
    pids = set(with_spares.pids)
    del with_spares
    gc.collect()
    assert pids and not (pids & children())


def test_executor_shutdown_stops_its_spares() -> None:
    executor = Executor("spares", capacity=1, shell_spares=2).start()
    assert executor.spares.fill(wait_s=10) == 2
    ready = executor.spares.pids
    record = executor.submit(TaskRequest(kind="shell", source="echo $$"))
    assert record.wait(10) and record.info().stdout == f"{ready[0]}\n"
    assert executor.spares.fill(wait_s=10) == 2
    started = set(ready) | set(executor.spares.pids)  # with the replacement
    executor.shutdown()
    assert len(started) == 3 and not started & children()


def test_executor_without_spares_forks() -> None:
    with Executor("forks", capacity=1, shell_spares=0) as executor:
        record = executor.submit(TaskRequest(kind="shell", source="echo $$"))
        assert record.wait(10) and record.info().state == "succeeded"
        assert executor.spares.pids == []


AGENT = """
import os, sys
from slothlab.agent.shell import ShellRun, ShellSpares, default_spares
spares = default_spares() if sys.argv[1] == "exit" else ShellSpares(2)
spares.fill(wait_s=10)
print(*spares.pids, flush=True)
if sys.argv[1] == "fork":
    pid = os.fork()
    if pid == 0:
        run = ShellRun("true", lambda s, b: None, spares=spares)
        print(run.from_spare, run.wait().exit_code, flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
    print(*spares.pids, flush=True)
elif sys.argv[1] == "die":
    sys.stdin.read()
"""


def agent(mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", AGENT, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_spares_die_with_their_agent() -> None:
    proc = agent("die")
    assert proc.stdout is not None and proc.stdin is not None
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert len(pids) == 2 and not any(gone(p) for p in pids)
    proc.kill()
    proc.wait()
    proc.stdin.close()
    proc.stdout.close()
    for pid in pids:
        wait_until(lambda pid=pid: gone(pid), what=f"spare {pid} to exit")  # type: ignore[misc]


def test_interpreter_exit_stops_the_default_spares() -> None:
    proc = agent("exit")
    out, _ = proc.communicate(timeout=60)
    pids = [int(p) for p in out.split()]
    assert proc.returncode == 0 and pids
    for pid in pids:
        wait_until(lambda pid=pid: gone(pid), what=f"spare {pid} to exit")  # type: ignore[misc]


def test_a_forked_child_forks_and_leaves_the_spares_alone() -> None:
    proc = agent("fork")
    out, _ = proc.communicate(timeout=60)
    before, child, after = out.splitlines()
    assert child == "False 0" and before == after


def test_a_hard_limit_below_the_asked_one_forks() -> None:
    code = (
        "import resource\n"
        "from slothlab.agent.shell import ShellLimits, ShellRun, ShellSpares\n"
        "resource.setrlimit(resource.RLIMIT_CPU, (50, 50))\n"
        "spares = ShellSpares(1); spares.fill(wait_s=10)\n"
        "out = []\n"
        "for cpu in (100, 20):\n"
        "    run = ShellRun('ulimit -t', lambda s, b: out.append(b.decode()), spares=spares,\n"
        "                   limits=ShellLimits(max_cpu_s=cpu))\n"
        "    run.wait(); spares.fill(wait_s=10); out.append(f' {run.from_spare} ')\n"
        "print(' '.join(''.join(out).split()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["50", "False", "20", "True"], done.stderr


def test_a_shell_nobody_can_follow_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from slothlab.agent import shell as shell_module

    def no_fd_left(pid: int) -> int:
        raise OSError(errno.EMFILE, "Too many open files")

    run = ShellRun("sleep 300", lambda stream, chunk: None, spares=ShellSpares(0))
    monkeypatch.setattr(shell_module.os, "pidfd_open", no_fd_left)
    with pytest.raises(OSError, match="open files"):
        run.wait()
    assert run.proc.returncode == -9  # killed and reaped, not left running
    assert run.proc.stdout is not None and run.proc.stdout.closed


@pytest.fixture
def loop_and_spare() -> Iterator[tuple[asyncio.AbstractEventLoop, ShellSpares]]:
    """A fresh event loop and one ready spare shell; both closed afterwards."""
    with_spares = ShellSpares(1)
    loop = asyncio.new_event_loop()
    try:
        assert with_spares.fill(wait_s=10) == 1
        yield loop, with_spares
    finally:
        if not loop.is_closed():
            loop.close()
        with_spares.close()


def followed(
    loop: asyncio.AbstractEventLoop, spares: ShellSpares, command: str, **options: Any
) -> tuple[ShellRun, ShellOutcome | None]:
    """``command`` in the spare, followed from ``loop`` until its outcome is handed on."""
    outcomes: asyncio.Future[ShellOutcome | None] = loop.create_future()
    run = ShellRun.in_spare(command, Sink(), spares=spares)
    assert run is not None
    run.start_async(loop, lambda outcome, _: outcomes.set_result(outcome), **options)
    return run, loop.run_until_complete(outcomes)


def test_a_loop_reaps_its_shell_after_the_answer_or_the_closing_pool_does(
    monkeypatch: pytest.MonkeyPatch,
    loop_and_spare: tuple[asyncio.AbstractEventLoop, ShellSpares],
) -> None:
    monkeypatch.setattr(shell, "_REAP_AFTER_S", 60.0)  # the loop stops long before its reap
    loop, with_spares = loop_and_spare
    run, outcome = followed(loop, with_spares, "exit 4")
    assert outcome is not None and outcome.exit_code == 4
    loop.run_until_complete(asyncio.sleep(0))  # the turn after the answer has run
    # not reaped yet (the client reads its answer first): the pid is still ours
    exited = os.waitid(os.P_PID, run.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    assert exited is not None and exited.si_status == 4
    loop.close()  # the loop stops before the reap it planned: the pool's close does it
    with_spares.close()
    assert run.proc.returncode == 4 and not psutil.pid_exists(run.pid)
    assert run.proc.stdout is not None and run.proc.stdout.closed


def test_a_loop_that_keeps_running_reaps_its_shell_soon(
    loop_and_spare: tuple[asyncio.AbstractEventLoop, ShellSpares],
) -> None:
    loop, with_spares = loop_and_spare
    run, _ = followed(loop, with_spares, "true")

    async def reaped() -> None:
        deadline = time.monotonic() + 10
        while run.proc.returncode is None and time.monotonic() < deadline:
            await asyncio.sleep(0.001)

    loop.run_until_complete(reaped())
    assert run.proc.returncode == 0 and not psutil.pid_exists(run.pid)
    assert not with_spares._pool.held  # nothing left for the pool's close


def test_only_the_shared_environment_s_script_is_kept() -> None:
    shell._shared_setup.cache_clear()
    with_spares = ShellSpares(2)
    try:
        assert with_spares.fill(wait_s=10) == 2
        assert start("true", Sink(), with_spares).wait().exit_code == 0
        assert shell._shared_setup.cache_info().currsize == 1
        wait_until(lambda: with_spares.fill() == 2, what="the spares again")
        for name, value in (("TOKEN", "s3cret"), ("HOME", "/s3cret-home")):
            sink = Sink()
            run = start(f"echo ${name}", sink, with_spares, env={name: value})
            assert run.wait().exit_code == 0 and sink.text() == value + "\n"
            wait_until(lambda: with_spares.fill() == 2, what="the spares again")
        info = shell._shared_setup.cache_info()
        assert info.currsize == 1 and info.misses == 1  # neither task's values went in
    finally:
        with_spares.close()


def test_a_busy_loop_reaps_its_shell_at_once(
    monkeypatch: pytest.MonkeyPatch,
    loop_and_spare: tuple[asyncio.AbstractEventLoop, ShellSpares],
) -> None:
    monkeypatch.setattr(shell, "_REAP_AFTER_S", 60.0)  # only "busy" can make it prompt
    loop, with_spares = loop_and_spare
    run, _ = followed(loop, with_spares, "true", busy=lambda: True)
    loop.run_until_complete(asyncio.sleep(0))  # the turn after the answer has run
    assert run.proc.returncode == 0 and not psutil.pid_exists(run.pid)
    assert not with_spares._pool.held
