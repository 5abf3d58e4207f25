"""AgentClient against a real agent process on a loopback port."""

from __future__ import annotations

from typing import Any

import pytest

from slothlab.client import AgentClient
from slothlab.errors import ClientError


@pytest.fixture
def agent(shared_agent: tuple[Any, str]) -> AgentClient:
    proc, token = shared_agent
    return AgentClient(proc.url, token, name="a1")


def test_shell_task_streams_its_lines_in_order(agent: AgentClient) -> None:
    task = agent.submit("shell", "for i in 1 2 3; do echo line $i; done; echo warn >&2; exit 3")
    lines = list(agent.logs(task.id))
    assert [x for x in lines if x[0] == "stdout"] == [("stdout", f"line {i}") for i in (1, 2, 3)]
    assert ("stderr", "warn") in lines
    done = agent.wait(task.id, timeout=20)
    assert (done.state, done.exit_code, done.agent) == ("failed", 3, "a1")
    with pytest.raises(ClientError, match=f"task {task.id} on agent a1 failed"):
        agent.result(task.id, timeout=5)


def test_lua_task_returns_its_values(agent: AgentClient) -> None:
    task = agent.submit("lua", "local a, b = ...; return a + b, {seen = b}", args=[2, 40])
    assert agent.result(task.id, timeout=20).result == [42, {"seen": 40}]


def test_idempotency_key_returns_the_first_task(agent: AgentClient) -> None:
    first = agent.submit("shell", "echo once", idempotency_key="k-1")
    again = agent.submit("shell", "echo once", idempotency_key="k-1")
    assert again.id == first.id
    assert agent.result(first.id, timeout=20).stdout == "once\n"


def test_batch_and_cancel(agent: AgentClient) -> None:
    slow, quick = agent.submit_batch(
        [{"kind": "shell", "source": "sleep 30"}, {"kind": "shell", "source": "echo quick"}]
    )
    assert agent.result(quick.id, timeout=20).stdout == "quick\n"
    agent.cancel(slow.id)
    assert agent.wait(slow.id, timeout=20).state == "cancelled"


def test_run_submits_and_waits_in_one_call(agent: AgentClient) -> None:
    shell = agent.run("shell", "echo ran; exit 2", timeout=20)
    assert (shell.state, shell.exit_code, shell.stdout) == ("failed", 2, "ran\n")
    lua = agent.run("lua", "local n = ... return n + 1", args=[41])
    assert (lua.state, lua.result) == ("succeeded", [42])
    keyed = agent.run("shell", "echo once", idempotency_key="run-key-1", timeout=20)
    assert agent.run("shell", "echo once", idempotency_key="run-key-1").id == keyed.id


def test_run_keeps_waiting_past_the_first_answer(agent: AgentClient) -> None:
    unfinished = agent.submit("shell", "sleep 30", wait=0.1)
    assert unfinished.state in ("queued", "running")
    short = agent.run("shell", "sleep 30", timeout=0.2)  # still running at its deadline
    assert short.state == "running"
    for task in (unfinished, short):
        agent.cancel(task.id)
    quick = agent.submit("shell", "echo now", wait=20)
    assert (quick.state, quick.stdout) == ("succeeded", "now\n")


def test_run_batch_returns_every_result_in_order(agent: AgentClient) -> None:
    tasks = [{"kind": "shell", "source": f"echo {i}"} for i in range(5)]
    tasks.append({"kind": "lua", "source": "return 'lua'"})
    infos = agent.run_batch(tasks, timeout=30)
    assert [i.state for i in infos] == ["succeeded"] * 6
    assert [i.stdout for i in infos[:5]] == [f"{i}\n" for i in range(5)]
    assert infos[5].result == ["lua"]


def test_info_metrics_and_health(agent: AgentClient) -> None:
    info = agent.info()
    assert (info.name, info.tags, info.region) == ("a1", ["web", "eu"], "eu")
    assert isinstance(agent.metrics(), dict)
    assert "status" in agent.health()


def test_wrong_token_is_a_401_that_says_so(agent: AgentClient) -> None:
    bad = AgentClient(agent.http.url, "not-the-token", name="a1")
    with pytest.raises(ClientError) as err:
        bad.info()
    assert err.value.status == 401 and "agent a1 at" in str(err.value)
    assert "token" in str(err.value)


def test_unknown_task_is_a_404(agent: AgentClient) -> None:
    with pytest.raises(ClientError) as err:
        agent.task("no-such-task")
    assert err.value.status == 404
