"""Registry lifecycle with an injected clock, persistence, and removal keeping masks right."""

from __future__ import annotations

from pathlib import Path

import pytest

from slothlab.errors import UnknownAgentError
from slothlab.master.registry import AgentRegistry, facts_from_metrics
from slothlab.protocol import AgentInfo, Heartbeat, SelectRequest


def info(name: str, **fields: object) -> AgentInfo:
    return AgentInfo(name=name, url=f"http://{name}:8701", version="t", **fields)  # type: ignore[arg-type]


def test_active_unknown_dead_follow_the_clock(tmp_path: Path) -> None:
    now = [100.0]
    reg = AgentRegistry(
        tmp_path / "m.db", clock=lambda: now[0], unknown_after_s=30, dead_after_s=60
    )
    reg.register(info("a"))
    assert reg.status("a") == "active"
    now[0] += 29.9
    assert reg.status("a") == "active"
    now[0] += 0.2
    assert reg.status("a") == "unknown"
    reg.heartbeat("a", Heartbeat(running=1, queued=2, metrics={"cpu_percent": 5}))
    assert reg.get("a").status == "active" and reg.get("a").queued == 2
    now[0] += 60
    assert reg.status("a") == "dead"
    with pytest.raises(UnknownAgentError):
        reg.heartbeat("nobody", Heartbeat(running=0, queued=0))


def test_registry_survives_a_restart(tmp_path: Path) -> None:
    now = [100.0]
    path = tmp_path / "m.db"
    reg = AgentRegistry(path, clock=lambda: now[0])
    reg.register(info("a", tags=["web"], region="eu"))
    reg.register(info("b"))
    now[0] += 5
    reg.heartbeat("a", Heartbeat(running=3, queued=0, metrics={"memory_percent": 42}))
    reg.close()
    again = AgentRegistry(path, clock=lambda: now[0])
    a = again.get("a")
    assert (a.tags, a.region, a.running, a.last_seen) == (["web"], "eu", 3, 105.0)
    assert a.metrics == {"memory_percent": 42.0}
    assert again.select(SelectRequest(tags=["web"], region="eu")).agent.name == "a"  # type: ignore[union-attr]
    assert again.remove("b") and not again.remove("b")
    again.close()
    assert [x.name for x in AgentRegistry(path, clock=lambda: now[0]).list()] == ["a"]


def test_removal_moves_the_last_slot_with_its_tags() -> None:
    reg = AgentRegistry(":memory:", clock=lambda: 0.0)
    for i in range(200):  # past the initial capacity, so arrays and masks grow
        reg.register(info(f"n{i}", tags=["even" if i % 2 == 0 else "odd", f"t{i}"]))
    for i in range(0, 200, 3):
        reg.remove(f"n{i}")
    for i in range(200):
        sel = reg.select(SelectRequest(strategy="random", tags=[f"t{i}"]))
        expected = None if i % 3 == 0 else f"n{i}"
        assert (sel.agent.name if sel.agent else None) == expected
    odd = {
        reg.select(SelectRequest(strategy="random", tags=["odd"])).agent.name for _ in range(300)
    }  # type: ignore[union-attr]
    assert all(int(n[1:]) % 2 == 1 for n in odd)


def test_re_registering_replaces_tags() -> None:
    reg = AgentRegistry(":memory:", clock=lambda: 0.0)
    reg.register(info("a", tags=["old"]))
    reg.register(info("a", tags=["new"]))
    assert reg.select(SelectRequest(tags=["old"])).agent is None
    assert reg.select(SelectRequest(tags=["new"])).agent is not None
    assert len(reg) == 1


def test_facts_accept_prometheus_names() -> None:
    facts = facts_from_metrics(
        {"slothlab_memory_available_bytes": 2**30, "slothlab_disk_free_bytes": 2**31}
    )
    assert facts == {"memory_available_mb": 1024.0, "disk_free_gb": 2.0}


def test_flush_writes_each_beaten_agent_once_and_a_later_registration_wins(
    tmp_path: Path,
) -> None:
    now = [100.0]
    path = tmp_path / "m.db"
    reg = AgentRegistry(path, clock=lambda: now[0])
    for name in ("a", "b", "c"):
        reg.register(info(name, tags=["old"]))
    for running in range(4):
        reg.heartbeat("a", Heartbeat(running=running, queued=1, metrics={"load1": 0.5}))
    reg.heartbeat("b", Heartbeat(running=7, queued=0, metrics={"cpu_percent": 1.0}))
    reg.register(info("b", tags=["new"]))  # re-registered after its heartbeat: the record wins
    custom = {"cpu_percent": float("inf"), "jobs_done_total": 4.0}
    reg.heartbeat("c", Heartbeat(running=1, queued=0, metrics=custom))
    assert reg.get("c").metrics == custom
    assert reg.flush() == 2 and reg.flush() == 0
    reg.close()
    again = AgentRegistry(path, clock=lambda: now[0])
    a, b = again.get("a"), again.get("b")
    assert (a.running, a.queued, a.metrics, a.tags) == (3, 1, {"load1": 0.5}, ["old"])
    assert (b.running, b.tags, b.metrics) == (0, ["new"], {})
    assert again.get("c").metrics == {"cpu_percent": float("inf")}  # custom ones: history only
    again.close()
