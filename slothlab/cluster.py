"""The local cluster: a real master and N real agents as child processes on loopback ports.

:func:`up` starts them (each in its own process group, with its own home folder under
``<home>/cluster/`` and its log in ``<home>/cluster/<name>.log``), waits until every agent has
registered with the master, and writes ``<home>/cluster.json`` (pids, ports, URLs, the token
file). :func:`down` stops them by process group (SIGTERM, then SIGKILL after a grace period),
with every descendant, and removes the file. :func:`up` refuses while a cluster recorded in the
file is still alive, and cleans a file whose processes are all gone.

>>> state = ClusterState(home="/h", master_url="http://127.0.0.1:1", token_file="/h/token",
...                      started_at=0.0, members=[])
>>> ClusterState.from_json(state.to_json()) == state
True
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from slothlab.errors import ClusterError, SlothlabError

__all__ = [
    "ClusterState",
    "Member",
    "down",
    "free_port",
    "member_alive",
    "read_state",
    "state_path",
    "status",
    "up",
]

Progress = Callable[[str], None]
Role = Literal["master", "agent"]

_CHILDREN: dict[int, Any] = {}  # Popen objects of this process's children, reaped by down()
_LAUNCH = "import sys; from slothlab.cli import main; sys.exit(main(prog_name='slothlab'))"


@dataclass(frozen=True)
class Member:
    """One process of the local cluster.

    Attributes:
        role: ``"master"`` or ``"agent"``.
        name: ``"master"``, ``"agent-1"``, ...
        pid: its process id (also its process group id).
        port: the loopback port it serves.
        url: ``http://127.0.0.1:<port>``.
        log: the file its output goes to.
        create_time: the process's start time (psutil), so a reused pid is not taken for it.
        home: its own ``SLOTHLAB_HOME``.
    """

    role: Role
    name: str
    pid: int
    port: int
    url: str
    log: str
    create_time: float
    home: str


@dataclass(frozen=True)
class ClusterState:
    """What ``<home>/cluster.json`` holds."""

    home: str
    master_url: str
    token_file: str | None
    started_at: float
    members: list[Member] = field(default_factory=list)

    @property
    def master(self) -> Member | None:
        """The master's entry."""
        return next((m for m in self.members if m.role == "master"), None)

    @property
    def agents(self) -> list[Member]:
        """The agents' entries."""
        return [m for m in self.members if m.role == "agent"]

    def to_json(self) -> dict[str, Any]:
        """The file's JSON document."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClusterState:
        """Read the file's JSON document back."""
        members = [Member(**m) for m in data.get("members", [])]
        return cls(**{**data, "members": members})


def state_path(home: Path | None = None) -> Path:
    """``<home>/cluster.json``."""
    from slothlab.config import home_dir

    return (home or home_dir()) / "cluster.json"


def read_state(home: Path | None = None) -> ClusterState | None:
    """The recorded local cluster, or None when there is none (or the file is unreadable)."""
    try:
        return ClusterState.from_json(json.loads(state_path(home).read_text("utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def member_alive(member: Member) -> bool:
    """True when the member's process still runs (and is the same process, not a reused pid)."""
    import psutil

    try:
        proc = psutil.Process(member.pid)
        return abs(proc.create_time() - member.create_time) < 1.0 and (
            proc.status() != psutil.STATUS_ZOMBIE
        )
    except psutil.Error:
        return False


def status(home: Path | None = None) -> list[tuple[Member, bool]]:
    """Each recorded member and whether its process is alive ([] when no cluster is recorded)."""
    state = read_state(home)
    return [] if state is None else [(m, member_alive(m)) for m in state.members]


# -- up -----------------------------------------------------------------------------------------


def up(
    agents: int = 2,
    *,
    home: Path | None = None,
    progress: Progress | None = None,
    timeout_s: float = 60.0,
    environ: Mapping[str, str] | None = None,
    python: str = sys.executable,
) -> ClusterState:
    """Start a master and ``agents`` agents on free loopback ports; their state once all registered.

    Args:
        agents: how many agents (1 to 32).
        home: slothlab's home folder (default ``$SLOTHLAB_HOME`` or ``~/.slothlab``).
        progress: receives one line per step (the CLI shows them).
        timeout_s: how long to wait for everything to answer and register.
        environ: the environment the processes start from (default ``os.environ``).
        python: the interpreter that runs them.

    Raises:
        ClusterError: a cluster is already running, or a process did not start in time (the
            message quotes the end of its log); whatever was started is stopped again.
    """
    from slothlab.config import home_dir
    from slothlab.security import load_or_create_token, token_path

    if not 1 <= agents <= 32:
        raise ClusterError(f"--agents must be from 1 to 32 (got {agents})")
    env = dict(os.environ if environ is None else environ)
    root = home or home_dir(env)
    note = progress or (lambda _: None)
    with _locked(root):
        _refuse_running(root, note)
        env["SLOTHLAB_HOME"] = str(root)
        token = load_or_create_token(env)
        token_file = None if env.get("SLOTHLAB_TOKEN") else str(token_path(env))
        started = _Launcher(root, env, token, python)
        try:
            state = started.start(agents, note, time.monotonic() + timeout_s)
            state = ClusterState(
                str(root), state.master_url, token_file, time.time(), state.members
            )
            _write_state(root, state)
        except BaseException:
            _stop_members(started.members, grace_s=3.0)
            raise
    return state


def _refuse_running(root: Path, note: Progress) -> None:
    state = read_state(root)
    if state is None:
        if state_path(root).exists():
            state_path(root).unlink()
            note("removed an unreadable cluster file")
        return
    alive = [m for m in state.members if member_alive(m)]
    if alive:
        names = ", ".join(f"{m.name} (pid {m.pid})" for m in alive)
        raise ClusterError(
            f"a local cluster is already running (master at {state.master_url}; alive: {names}); "
            "stop it with `slothlab down` first"
        )
    state_path(root).unlink(missing_ok=True)
    note("cleaned the file of a cluster whose processes are gone")


class _Launcher:
    """Starts the processes and waits for them; remembers what it started."""

    def __init__(self, root: Path, env: dict[str, str], token: str, python: str) -> None:
        self.root, self.env, self.token, self.python = root, env, token, python
        self.members: list[Member] = []
        (root / "cluster").mkdir(parents=True, exist_ok=True)

    def start(self, agents: int, note: Progress, deadline: float) -> ClusterState:
        port = free_port()
        master_url = f"http://127.0.0.1:{port}"
        note(f"starting the master on {master_url}")
        master = self._spawn("master", "master", port, ["master", "--port", str(port)])
        self._wait_health(master, deadline)
        for i in range(1, agents + 1):
            name, agent_port = f"agent-{i}", free_port()
            args = ["agent", "start", "--name", name, "--port", str(agent_port)]
            args += ["--master", master_url, "--tags", "local", "--region", "local"]
            note(f"starting {name} on http://127.0.0.1:{agent_port}")
            self._spawn("agent", name, agent_port, args)
        for member in self.agents():
            self._wait_health(member, deadline)
        note(f"waiting for {agents} agent(s) to register")
        self._wait_registered(master_url, deadline)
        return ClusterState(str(self.root), master_url, None, time.time(), list(self.members))

    def agents(self) -> list[Member]:
        return [m for m in self.members if m.role == "agent"]

    def _spawn(self, role: Role, name: str, port: int, args: list[str]) -> Member:
        import subprocess

        import psutil

        home = self.root / "cluster" / name
        home.mkdir(parents=True, exist_ok=True)
        log = self.root / "cluster" / f"{name}.log"
        env = {**self.env, "SLOTHLAB_HOME": str(home), "SLOTHLAB_TOKEN": self.token}
        env.setdefault("PYTHONUNBUFFERED", "1")
        config = self.root / "config.toml"
        if "SLOTHLAB_CONFIG" not in env and config.exists():
            env["SLOTHLAB_CONFIG"] = str(config)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [self.python, "-c", _LAUNCH, *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(home),
                start_new_session=True,  # its own process group: down kills the group
            )
        _CHILDREN[proc.pid] = proc
        created = psutil.Process(proc.pid).create_time()
        url = f"http://127.0.0.1:{port}"
        member = Member(role, name, proc.pid, port, url, str(log), created, str(home))
        self.members.append(member)
        return member

    def _wait_health(self, member: Member, deadline: float) -> None:
        import requests

        while True:
            if not member_alive(member):
                raise ClusterError(f"{member.name} exited at start; {_log_tail(member)}")
            try:
                requests.get(member.url + "/health", timeout=(1.0, 2.0))
                return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise ClusterError(f"{member.name} did not answer in time; {_log_tail(member)}")
            time.sleep(0.05)  # polling a child process with a deadline

    def _wait_registered(self, master_url: str, deadline: float) -> None:
        from slothlab.client import Controller

        wanted = {m.name for m in self.agents()}
        with Controller(master_url, self.token, timeout=(1.0, 5.0), retries=0) as ctl:
            while True:
                try:
                    seen = {a.name for a in ctl.agents() if a.status == "active"}
                except SlothlabError:
                    seen = set()
                if wanted <= seen:
                    return
                dead = [m for m in self.members if not member_alive(m)]
                if dead:
                    raise ClusterError(f"{dead[0].name} exited; {_log_tail(dead[0])}")
                if time.monotonic() > deadline:
                    missing = ", ".join(sorted(wanted - seen))
                    raise ClusterError(
                        f"agent(s) {missing} did not register with the master in time; see the "
                        f"logs in {self.root / 'cluster'}"
                    )
                time.sleep(0.05)  # polling with a deadline


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _log_tail(member: Member) -> str:
    try:
        lines = Path(member.log).read_text("utf-8", "replace").strip().splitlines()
    except OSError:
        lines = []
    last = next((line.strip() for line in reversed(lines) if line.strip()), "")
    if not last:
        return f"its log {member.log} is empty"
    return f"see its log {member.log} (last line: {last[:300]})"


def _write_state(root: Path, state: ClusterState) -> None:
    path = state_path(root)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n", "utf-8")
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One ``up``/``down`` at a time per home folder."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / "cluster.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# -- down ---------------------------------------------------------------------------------------


def down(
    home: Path | None = None, *, grace_s: float = 10.0, progress: Progress | None = None
) -> list[Member]:
    """Stop the recorded local cluster and remove its file; the members that were still alive.

    Agents go first (they finish their bookkeeping), then the master. Each gets SIGTERM on its
    process group, then SIGKILL after ``grace_s``; descendants that left the group (shell tasks
    run in their own) are killed too.
    """
    from slothlab.config import home_dir

    root = home or home_dir()
    note = progress or (lambda _: None)
    with _locked(root):
        state = read_state(root)
        if state is None:
            state_path(root).unlink(missing_ok=True)
            return []
        alive = [m for m in state.members if member_alive(m)]
        ordered = [m for m in alive if m.role == "agent"] + [m for m in alive if m.role == "master"]
        for member in ordered:
            note(f"stopping {member.name} (pid {member.pid})")
        _stop_members(ordered, grace_s)
        for member in state.members:  # reap those that died before (killed, crashed)
            child = _CHILDREN.pop(member.pid, None)
            if child is not None:
                child.poll()
        state_path(root).unlink(missing_ok=True)
    return ordered


def _stop_members(members: list[Member], grace_s: float) -> None:
    import psutil

    procs: list[psutil.Process] = []
    live = [m for m in members if member_alive(m)]
    for member in live:
        try:
            proc = psutil.Process(member.pid)
            procs.extend([proc, *proc.children(recursive=True)])
        except psutil.Error:
            continue
        _signal_group(member.pid, signal.SIGTERM)
    _, left = psutil.wait_procs(procs, timeout=grace_s)
    for member in live:
        _signal_group(member.pid, signal.SIGKILL)
    for proc in left:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(left, timeout=5.0)
    for member in members:
        child = _CHILDREN.pop(member.pid, None)
        if child is not None:
            child.poll()  # reaped: no zombie, no "still running" warning


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
