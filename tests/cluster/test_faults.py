"""Faults across the system, on a real local cluster: SIGSTOP, SIGKILL mid-task, master restart.

The tests share one cluster of three agents and run in file order: agent-3 is paused and
resumed, agent-2 is killed, then the master is restarted (agent-1 and agent-3 re-register).
Heartbeats are fast (1 s; unknown after 3 s, dead after 6 s) so each fault shows in seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from slothlab import cluster
from slothlab.client import AgentClient, Controller
from slothlab.cluster import ClusterState, Member
from slothlab.errors import AgentUnreachableError, ClientError

pytestmark = pytest.mark.slow

LAUNCH = "import sys; from slothlab.cli import main; sys.exit(main(prog_name='slothlab'))"
FAST = {
    "SLOTHLAB_MASTER_HEARTBEAT_INTERVAL_S": "1",
    "SLOTHLAB_MASTER_UNKNOWN_AFTER_MISSED": "3",
    "SLOTHLAB_MASTER_DEAD_AFTER_S": "6",
}


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SLOTHLAB_TOKEN", "SLOTHLAB_CONFIG")}
    return {**env, **FAST, "SLOTHLAB_HOME": str(home)}


def poll(what: str, check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Wait until ``check()`` is true, failing with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)  # polling with a deadline


class Faults:
    """The cluster under test, and every process to kill at the end."""

    def __init__(self, state: ClusterState, home: Path) -> None:
        self.state, self.home = state, home
        self.token = (home / "token").read_text().strip()
        self.ctl = Controller(state.master_url, self.token, timeout=(2.0, 10.0))
        self.strays: list[psutil.Process] = []

    def member(self, name: str) -> Member:
        return next(m for m in self.state.members if m.name == name)

    def status(self, name: str) -> str:
        try:
            return self.ctl.agent(name).status
        except AgentUnreachableError:
            return "?"

    def remember_tree(self, pid: int) -> None:
        proc = psutil.Process(pid)
        self.strays += [proc, *proc.children(recursive=True)]


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    home = tmp_path_factory.mktemp("faults-home")
    state = cluster.up(3, home=home, environ=_env(home), timeout_s=60)
    f = Faults(state, home)
    for member in state.members:
        f.remember_tree(member.pid)
    try:
        yield f
    finally:
        for member in state.members:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(member.pid, signal.SIGCONT)
        cluster.down(home, grace_s=5)
        for proc in f.strays:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(f.strays, timeout=10)


def test_sigstop_client_deadline_unknown_then_recovers(faults: Faults) -> None:
    agent = faults.member("agent-3")
    direct = AgentClient(agent.url, faults.token, name="agent-3", timeout=(1.0, 1.0), retries=0)
    os.killpg(agent.pid, signal.SIGSTOP)
    try:
        with pytest.raises(AgentUnreachableError, match=r"agent agent-3 at .*no answer within 1 s"):
            direct.info()
        poll("the master to mark agent-3 unknown", lambda: faults.status("agent-3") == "unknown")
    finally:
        os.killpg(agent.pid, signal.SIGCONT)
    poll("agent-3 to be active again", lambda: faults.status("agent-3") == "active")
    assert direct.info().name == "agent-3"


def test_sigkill_mid_task_is_lost_never_rerun_and_new_work_fails_over(
    faults: Faults, tmp_path: Path
) -> None:
    ctl, agent = faults.ctl, faults.member("agent-2")
    counter = tmp_path / "runs"
    source = f"echo run >> {counter}; sleep 30"
    task = ctl.submit("shell", source, agent="agent-2", idempotency_key="kill-me")
    poll("the task to start", lambda: counter.exists() and counter.read_text() == "run\n")
    faults.remember_tree(agent.pid)  # its shell task outlives it (a group of its own)
    os.killpg(agent.pid, signal.SIGKILL)

    # new work right away: whatever is picked for agent-2 cannot connect and goes elsewhere
    marks = [tmp_path / f"mark-{i}" for i in range(6)]
    batch = [
        {"kind": "shell", "source": f"echo ran >> {m}", "strategy": "weighted_round_robin"}
        for m in marks
    ]
    moved = [ctl.wait(t.id, timeout=30) for t in ctl.submit_batch(batch)]
    assert [t.state for t in moved] == ["succeeded"] * 6
    assert "agent-2" not in {t.agent for t in moved}
    assert all(m.read_text() == "ran\n" for m in marks)  # each ran exactly once

    poll("the task to be marked lost", lambda: _state(ctl, task.id) == "lost")
    again = ctl.submit("shell", source, idempotency_key="kill-me")
    assert again.id == task.id  # the key names the first task; it does not run again
    assert ctl.task(task.id).state == "lost"
    assert counter.read_text() == "run\n"
    assert faults.status("agent-2") == "dead"


def test_master_restart_loses_nothing(faults: Faults) -> None:
    ctl, master = faults.ctl, faults.member("master")
    done = ctl.submit("shell", "echo before restart", agent="agent-1")
    assert ctl.result(done.id, timeout=30).stdout == "before restart\n"
    poll("samples in the history", lambda: _samples(ctl) > 0)
    before = _samples(ctl)

    os.killpg(master.pid, signal.SIGTERM)
    psutil.Process(master.pid).wait(timeout=20)
    env = {**_env(faults.home), "SLOTHLAB_HOME": master.home, "SLOTHLAB_TOKEN": faults.token}
    with Path(master.log).open("ab") as log:
        new = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, "master", "--port", str(master.port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            cwd=master.home, start_new_session=True,
        )  # fmt: skip
    faults.strays.append(psutil.Process(new.pid))
    try:
        poll("the master to answer again", lambda: _answers(ctl))
        kept = ctl.task(done.id)
        assert (kept.state, kept.stdout, kept.agent) == ("succeeded", "before restart\n", "agent-1")
        both = ("agent-1", "agent-3")
        poll("agents to re-register", lambda: {faults.status(n) for n in both} == {"active"})
        assert _samples(ctl) >= before
        after = ctl.submit("shell", "echo after restart", agent="agent-3")
        assert ctl.result(after.id, timeout=30).stdout == "after restart\n"
    finally:
        new.terminate()
        new.wait(timeout=20)


def _state(ctl: Controller, task_id: str) -> str:
    try:
        return ctl.task(task_id).state
    except ClientError as exc:  # 503 while the agent is unknown but not yet dead
        assert exc.status == 503, exc
        return "?"


def _samples(ctl: Controller) -> int:
    return int(ctl.query("select count(*) as n from samples")["n"].iloc[0])


def _answers(ctl: Controller) -> bool:
    try:
        ctl.health()
        return True
    except AgentUnreachableError:
        return False
