"""The local cluster (real master + agents as processes): Controller, exec, delegate_to, up/down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from slothlab import cluster
from slothlab.client import Controller
from slothlab.cluster import ClusterState
from slothlab.errors import ClientError, ClusterError
from slothlab.workflow import run_file
from slothlab.workflow.remote import RemoteRunner

LAUNCH = "import sys; from slothlab.cli import main; sys.exit(main(prog_name='slothlab'))"
FAST = {"SLOTHLAB_MASTER_HEARTBEAT_INTERVAL_S": "2"}  # unknown after 6 s of silence


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SLOTHLAB_TOKEN", "SLOTHLAB_CONFIG")}
    return {**env, **FAST, "SLOTHLAB_HOME": str(home)}


def cli(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``slothlab ARGS`` as a user runs it, with SLOTHLAB_HOME=home."""
    return subprocess.run(
        [sys.executable, "-c", LAUNCH, *args],
        env={**_env(home), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _tree(state: ClusterState) -> list[psutil.Process]:
    procs = []
    for member in state.members:
        proc = psutil.Process(member.pid)
        procs += [proc, *proc.children(recursive=True)]
    return procs


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterState]:
    home = tmp_path_factory.mktemp("cluster-home")
    state = cluster.up(2, home=home, environ=_env(home), timeout_s=60)
    try:
        yield state
    finally:
        cluster.down(home, grace_s=5)


@pytest.fixture
def ctl(local: ClusterState) -> Controller:
    assert local.token_file is not None
    return Controller(local.master_url, Path(local.token_file).read_text().strip())


def test_controller_lists_and_selects_agents(ctl: Controller) -> None:
    agents = {a.name: a for a in ctl.agents()}
    assert set(agents) == {"agent-1", "agent-2"}
    assert all(a.status == "active" and a.tags == ["local"] for a in agents.values())
    chosen = ctl.select(tags=["local"], exclude=["agent-1"])
    assert chosen.agent is not None and chosen.agent.name == "agent-2"
    assert ctl.health()["status"] and ctl.info()


def test_dispatch_through_the_master(ctl: Controller) -> None:
    named = ctl.submit("shell", "echo on-2; echo err >&2", agent="agent-2")
    assert list(ctl.logs(named.id)) == [("stdout", "on-2"), ("stderr", "err")]
    done = ctl.result(named.id, timeout=30)
    assert (done.agent, done.stdout) == ("agent-2", "on-2\n")
    lua = ctl.submit("lua", "return select('#', ...), ...", args=[1, "two"], tags=["local"])
    assert ctl.result(lua.id, timeout=30).result == [2, 1, "two"]
    direct = ctl.agent_client(done.agent)
    assert direct.info().name == "agent-2"


def test_run_through_the_master(ctl: Controller) -> None:
    done = ctl.run("shell", "echo via-master", agent="agent-1", timeout=30)
    assert (done.state, done.agent, done.stdout) == ("succeeded", "agent-1", "via-master\n")
    assert ctl.task(done.id).state == "succeeded"
    batch = [
        {"kind": "lua", "source": f"return {i}", "agent": f"agent-{1 + i % 2}"} for i in range(4)
    ]
    infos = ctl.run_batch(batch, timeout=30)
    assert [(i.agent, i.result) for i in infos] == [(f"agent-{1 + i % 2}", [i]) for i in range(4)]


def test_cancel_through_the_master(ctl: Controller) -> None:
    task = ctl.submit("shell", "sleep 30", agent="agent-1")
    ctl.cancel(task.id)
    assert ctl.wait(task.id, timeout=20).state == "cancelled"


def test_unknown_agent_is_a_clear_error(ctl: Controller) -> None:
    with pytest.raises(ClientError) as err:
        ctl.submit("shell", "true", agent="agent-9")
    assert "agent-9" in str(err.value) and "master at" in str(err.value)


def test_query_returns_a_dataframe(ctl: Controller) -> None:
    frame = ctl.query("select 1 as one, 'x' as two")
    assert list(frame.columns) == ["one", "two"] and frame.iloc[0].tolist() == [1, "x"]


def test_exec_streams_and_exits_with_the_command_status(local: ClusterState) -> None:
    home = Path(local.home)
    done = cli(home, "exec", "agent-1", "--", "sh", "-c", "echo one; echo two >&2; exit 3")
    assert done.returncode == 3, done.stderr
    assert done.stdout == "one\n" and done.stderr == "two\n"
    missing = cli(home, "exec", "agent-9", "--", "true")
    assert missing.returncode == 1 and missing.stderr.startswith("error:")
    assert len(missing.stderr.strip().splitlines()) == 1


def test_agents_list_and_status_commands(local: ClusterState) -> None:
    home = Path(local.home)
    listed = cli(home, "agents", "list")
    assert listed.returncode == 0 and "agent-1" in listed.stdout and "active" in listed.stdout
    status = json.loads(cli(home, "status", "--json").stdout)
    assert status["master_url"] == local.master_url
    assert all(m["alive"] for m in status["members"])


WORKFLOW = """
local LOCAL_ONLY = 5
workflow.define("spread", {
    tasks = {
        { name = "one", delegate_to = "agent-1", command = "echo from one" },
        { name = "two", delegate_to = "agent-2", params = { k = 20 },
          command = function(this, params, inputs) return true, "lua", { v = params.k + 1 } end },
        { name = "sum", depends_on = { "one", "two" }, delegate_to = "agent-1",
          command = function(this, params, inputs)
              return true, inputs.one.stdout .. inputs.two.v, { agent = "?" }
          end },
        { name = "here", depends_on = { "sum" },
          command = function(this, params, inputs) return true, inputs.sum.agent end },
    },
})
workflow.define("leaky", {
    tasks = {
        { name = "bad", delegate_to = "agent-1",
          command = function() return true, tostring(LOCAL_ONLY) end },
    },
})
"""


def test_delegate_to_spreads_a_workflow(ctl: Controller, tmp_path: Path) -> None:
    script = tmp_path / "spread.lua"
    script.write_text(WORKFLOW)
    remote = RemoteRunner(ctl, script=script)
    result = run_file(script, "spread", remote=remote, output=lambda s, t: None)
    assert result.success, {n: r.message for n, r in result.tasks.items()}
    tasks = result.tasks
    assert tasks["one"].outputs["agent"] == "agent-1" and tasks["one"].message.endswith("agent-1)")
    assert tasks["two"].outputs == {"v": 21} and tasks["two"].message == "lua (on agent-2)"
    assert tasks["sum"].message == "from one\n21 (on agent-1)"
    ran = {t.name: t.agent for t in ctl.tasks(limit=50) if t.name in ("one", "two", "sum")}
    assert ran == {"one": "agent-1", "two": "agent-2", "sum": "agent-1"}
    leaky = run_file(script, "leaky", remote=remote, output=lambda s, t: None)
    assert "uses LOCAL_ONLY, local to the script" in leaky.tasks["bad"].message


def test_run_with_dash_d_sends_every_task(local: ClusterState, tmp_path: Path) -> None:
    script = tmp_path / "all.lua"
    script.write_text(
        'workflow.define("all", { tasks = { { name = "a", command = "echo a" },'
        '{ name = "b", depends_on = "a", command = function() return true, "b" end } } })'
    )
    done = cli(Path(local.home), "run", str(script), "-d", "agent-2", "--json")
    assert done.returncode == 0, done.stderr
    tasks = json.loads(done.stdout)["tasks"]
    assert tasks["a"]["outputs"]["agent"] == "agent-2" and tasks["b"]["message"] == "b (on agent-2)"


@pytest.mark.slow
def test_up_twice_refuses_and_down_leaves_no_process(tmp_path: Path) -> None:
    home = tmp_path / "home"
    up = cli(home, "up", "--agents", "1")
    assert up.returncode == 0, up.stdout + up.stderr
    state = cluster.read_state(home)
    assert state is not None and state.master_url in up.stdout
    assert str(home / "token") in up.stdout
    try:
        again = cli(home, "up")
        assert again.returncode == 1 and "already running" in again.stderr
        with pytest.raises(ClusterError, match="slothlab down"):
            cluster.up(1, home=home, environ=_env(home))
        # a shell task runs in a process group of its own: down must stop it too
        ctl = Controller(state.master_url, (home / "token").read_text().strip())
        task = ctl.submit("shell", "sleep 60", agent="agent-1")
        deadline = time.monotonic() + 20
        while ctl.task(task.id).state != "running":
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.05)  # polling with a deadline
        procs = _tree(state)
        assert any("sleep" in " ".join(p.cmdline()) for p in procs)
    finally:
        down = cli(home, "down")
    assert down.returncode == 0 and "stopped" in down.stdout
    _, alive = psutil.wait_procs(procs, timeout=10)
    assert alive == [] and not (home / "cluster.json").exists()


def test_a_stale_cluster_file_is_cleaned(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    member = cluster.Member("master", "master", dead.pid, 1, "http://127.0.0.1:1", "", 0.0, "")
    stale = ClusterState(str(tmp_path), "http://127.0.0.1:1", None, 0.0, [member])
    cluster.state_path(tmp_path).write_text(json.dumps(stale.to_json()))
    assert cluster.status(tmp_path) == [(member, False)]
    assert cluster.down(tmp_path) == [] and cluster.read_state(tmp_path) is None


def test_cancel_all_ends_delegated_tasks_at_once(ctl: Controller) -> None:
    import threading

    from slothlab.workflow.model import TaskSpec
    from slothlab.workflow.remote import parse_targets

    remote = RemoteRunner(ctl)
    spec, got = TaskSpec("slow", command="sleep 30"), []
    target = parse_targets(("agent-1",))
    worker = threading.Thread(
        target=lambda: got.append(remote.shell(spec, target, "sleep 30", 60, 1)), daemon=True
    )
    worker.start()
    deadline = time.monotonic() + 20
    while not remote._inflight:
        assert time.monotonic() < deadline, "the task was never submitted"
        time.sleep(0.05)  # polling with a deadline
    remote.cancel_all()
    worker.join(timeout=20)
    assert not worker.is_alive() and got[0].state == "cancelled"
