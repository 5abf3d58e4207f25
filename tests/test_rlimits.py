"""The servers raise their soft open-files limit to the hard one at start."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from slothlab._rlimits import MACOS_OPEN_MAX, OpenFiles, raise_open_files_limit

resource = pytest.importorskip("resource")  # no rlimits on Windows


class Limits:
    """A fake ``getrlimit``/``setrlimit`` pair that refuses soft limits above ``ceiling``."""

    def __init__(self, soft: int, hard: int, ceiling: int | None = None) -> None:
        self.now = (soft, hard)
        self.ceiling = ceiling
        self.asked: list[int] = []

    def get(self, which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return self.now

    def set(self, which: int, value: tuple[int, int]) -> None:
        assert which == resource.RLIMIT_NOFILE and value[1] == self.now[1]
        self.asked.append(value[0])
        if self.ceiling is not None and value[0] > self.ceiling:
            raise ValueError("not allowed to raise maximum limit")
        self.now = value

    def apply(self) -> OpenFiles | None:
        return raise_open_files_limit(getrlimit=self.get, setrlimit=self.set)


def test_the_soft_limit_goes_up_to_the_hard_limit() -> None:
    limits = Limits(1024, 65536)
    assert limits.apply() == OpenFiles(1024, 65536, 65536)
    assert limits.now == (65536, 65536)


def test_nothing_is_asked_when_the_soft_limit_is_already_there() -> None:
    limits = Limits(4096, 4096)
    assert limits.apply() == OpenFiles(4096, 4096, 4096)
    assert limits.asked == []


def test_an_unlimited_hard_limit_falls_back_to_what_the_system_takes() -> None:
    limits = Limits(256, resource.RLIM_INFINITY, ceiling=MACOS_OPEN_MAX)  # macOS
    assert limits.apply() == OpenFiles(256, MACOS_OPEN_MAX, resource.RLIM_INFINITY)
    assert limits.asked == [1 << 20, MACOS_OPEN_MAX]


def test_a_refusal_leaves_the_limit_and_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    limits = Limits(1024, 65536, ceiling=1024)
    assert limits.apply() == OpenFiles(1024, 1024, 65536)
    assert limits.now == (1024, 65536)
    assert "open files limit stays at 1024" in caplog.text


# -- the real commands ---------------------------------------------------------------------------

LOW = 256
LAUNCH = (
    "import resource, sys\n"
    "hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]\n"
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({LOW}, hard))\n"
    "from slothlab.cli import main\n"
    "sys.exit(main(prog_name='slothlab'))\n"
)
needs_prlimit = pytest.mark.skipif(
    not hasattr(resource, "prlimit"), reason="reading another process's limits needs Linux"
)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def run(*args: str) -> subprocess.Popen[str]:
        env = {**os.environ, "SLOTHLAB_HOME": str(tmp_path / "home"), "SLOTHLAB_TOKEN": "t" * 32}
        env.pop("SLOTHLAB_CONFIG", None)
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    yield run
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def _first_line(proc: subprocess.Popen[str], timeout_s: float = 30.0) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    assert ready and time.monotonic() < deadline, "the server printed nothing in time"
    return proc.stdout.readline().strip()


@needs_prlimit
@pytest.mark.parametrize(
    ("args", "ready"),
    [
        (("master", "--host", "127.0.0.1", "--port", "0"), "master listening on "),
        (("agent", "start", "--name", "a1", "--host", "127.0.0.1", "--port", "0"), "agent a1 "),
    ],
)
def test_the_servers_start_with_the_hard_limit(
    start: Callable[..., subprocess.Popen[str]], args: tuple[str, ...], ready: str
) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard <= LOW:
        pytest.fail(f"this machine's hard limit ({hard}) leaves nothing to raise")
    proc = start(*args)
    line = _first_line(proc)
    assert line.startswith(ready), line
    soft, now_hard = resource.prlimit(proc.pid, resource.RLIMIT_NOFILE)
    assert now_hard == hard and soft > LOW
    assert soft == hard or hard == resource.RLIM_INFINITY
