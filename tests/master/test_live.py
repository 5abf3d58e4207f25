"""Over real sockets: RemoteStore (locks, fences), Lua load_balancer, and `slothlab master`."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from slothlab.errors import StateTypeError
from slothlab.lua import Runtime
from slothlab.master import Master, RemoteStore
from slothlab.metrics import MetricsHistory

from .conftest import AUTH, TOKEN, LiveServer, Proc, agent_info, start_agent, wait_until


def test_remote_store_values_and_atomic_ops(live_master: tuple[LiveServer, Master]) -> None:
    server, master = live_master
    store = RemoteStore(server.url, TOKEN)
    assert store.set("cfg", {"replicas": 3}) and store.get("cfg") == {"replicas": 3}
    assert store.increment("n") == 1 and store.increment("n", 4) == 5
    assert store.compare_swap("n", 5, 6) and not store.compare_swap("n", 5, 7)
    assert store.set_if_absent("once", "a") and not store.set_if_absent("once", "b")
    assert store.get_set("once", "c") == "a"
    assert store.list_push("q", 1) == 1 and store.list_push("q", {"x": 2}) == 2
    assert store.list_pop("q") == {"x": 2} and store.list_range("q") == [1]
    assert store.append("log", "ab") == 2 and store.update("n", lambda v: v * 10) == 60
    assert master.store.get("n") == 60  # it is the master's store
    with pytest.raises(StateTypeError):
        store.increment("cfg")
    assert sorted(store.keys()) == ["cfg", "log", "n", "once", "q"]


def test_remote_locks_carry_fences_and_owners(live_master: tuple[LiveServer, Master]) -> None:
    server, _ = live_master
    a = RemoteStore(server.url, TOKEN, owner="host-a:1:aa")
    b = RemoteStore(server.url, TOKEN, owner="host-b:2:bb")
    fence = a.try_lock("deploy", ttl_s=30)
    assert fence == 1 and b.try_lock("deploy") is None
    info = b.lock_info("deploy")
    assert info is not None and info.owner == "host-a:1:aa" and info.fence == 1
    assert not b.unlock("deploy") and b.is_locked("deploy")
    assert a.renew_lock("deploy", 60) and a.unlock("deploy")
    assert b.lock("deploy", timeout_s=1) == 2  # fences only grow
    assert b.with_lock("other", lambda f: f"ran with {f}") == "ran with 1"
    # a stale grant cannot release a newer one: the fence must match
    stale = RemoteStore(server.url, TOKEN, owner="host-b:2:bb")
    stale._held["deploy"] = 1
    assert not stale.unlock("deploy") and b.is_locked("deploy")


def test_lua_state_and_load_balancer_through_a_real_master(
    live_master: tuple[LiveServer, Master],
) -> None:
    server, master = live_master
    for name, region, cpu in [("eu-1", "eu", 70.0), ("eu-2", "eu", 10.0), ("us-1", "us", 0.0)]:
        requests.post(
            server.url + "/v1/agents/register",
            json=agent_info(name, region=region, metrics={"cpu_percent": cpu}),
            headers=AUTH,
            timeout=5,
        ).raise_for_status()
    rt = Runtime(
        context={
            "master": {"url": server.url, "token": TOKEN},
            "state_store": RemoteStore(server.url, TOKEN),
        }
    )
    name, facts = rt.execute(
        "return load_balancer.select_agent{strategy='resource_aware', "
        "criteria={memory_weight=0, connections_weight=0}, affinity={region='eu'}}"
    )
    assert name == "eu-2" and facts["region"] == "eu" and facts["status"] == "active"
    assert rt.execute(
        "return load_balancer.select_agent{constraints={max_cpu_percent=5}, "
        "affinity={tags={'gpu'}}}"
    ) == [None, "no active agent has tags ['gpu']"]
    assert rt.execute("state.increment('hits'); return state.increment('hits')") == [2]
    assert master.store.get("hits") == 2
    bad = RemoteStore(server.url, "wrong")
    assert Runtime(context={"state_store": bad}).execute("return state.get('hits')")[0] is None
    assert rt.execute("return #load_balancer.strategies()") == [5]
    nobody = Runtime(context={"master": {"url": server.url, "token": "wrong"}})
    assert "401" in nobody.execute("return load_balancer.select_agent{}")[1]


def test_the_master_command_with_real_agents(spawn: Callable[..., Proc], tmp_path: Path) -> None:
    data = tmp_path / "data"
    master = spawn("master", "--port", "0", "--data-dir", str(data), "--dashboard-port", "0")
    line = master.first_line()
    assert line.startswith("master listening on http://127.0.0.1:")
    url = line.split()[3]
    page_url = line.split("agents page on ")[1].rstrip(")")
    start_agent(spawn, "ag-1", "--master", url)
    start_agent(spawn, "ag-2", "--master", url, "--tags", "gpu")
    session = requests.Session()
    session.headers.update(AUTH)

    def names() -> list[str]:
        return sorted(
            a["name"] for a in session.get(url + "/v1/agents", timeout=5).json()["agents"]
        )

    wait_until(lambda: names() == ["ag-1", "ag-2"], what="both agents to register")
    task = session.post(
        url + "/v1/tasks",
        json={"kind": "shell", "source": "echo via-master", "tags": ["gpu"]},
        timeout=10,
    ).json()
    assert task["agent"] == "ag-2"
    done = session.get(f"{url}/v1/tasks/{task['id']}", params={"wait": 20}, timeout=30).json()
    assert done["stdout"] == "via-master\n"
    page = requests.get(page_url, params={"token": TOKEN}, timeout=5)
    assert page.status_code == 200 and "ag-1" in page.text
    assert requests.get(page_url, timeout=5).status_code == 401
    master.signal(signal.SIGTERM)  # graceful: the registration metrics are flushed
    assert master.popen.wait(20) == 0
    with MetricsHistory(data / "history.duckdb", background=False) as history:
        hosts = history.sql("SELECT DISTINCT host FROM samples ORDER BY host")["host"].tolist()
    assert hosts == ["ag-1", "ag-2"]
