"""Each strategy's choice on crafted agent sets, constraints, criteria and the registry."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from slothlab.errors import MasterError, UnknownStrategyError
from slothlab.master import balancer
from slothlab.master.balancer import Balancer, Candidates, Columns, Strategy, _registry
from slothlab.master.registry import AgentRegistry
from slothlab.protocol import AgentInfo, Heartbeat, SelectRequest


def fleet(clock: list[float], agents: dict[str, dict[str, object]]) -> AgentRegistry:
    reg = AgentRegistry(
        ":memory:", clock=lambda: clock[0], balancer=Balancer(np.random.default_rng(1))
    )
    for name, spec in agents.items():
        metrics = dict(spec.get("metrics", {}))  # type: ignore[call-overload]
        reg.register(
            AgentInfo(
                name=name,
                url=f"http://{name}:1",
                version="t",
                tags=list(spec.get("tags", [])),  # type: ignore[call-overload]
                region=spec.get("region"),  # type: ignore[arg-type]
                capacity=int(spec.get("capacity", 4)),  # type: ignore[call-overload]
            )
        )
        running = int(spec.get("running", 0))  # type: ignore[call-overload]
        reg.heartbeat(name, Heartbeat(running=running, queued=0, metrics=metrics))
    return reg


def pick(reg: AgentRegistry, **fields: object) -> str | None:
    sel = reg.select(SelectRequest(**fields))  # type: ignore[arg-type]
    return None if sel.agent is None else sel.agent.name


def test_least_connections_counts_capacity_and_inflight() -> None:
    reg = fleet([0.0], {"a": {"running": 2, "capacity": 2}, "b": {"running": 2, "capacity": 8}})
    assert pick(reg, strategy="least_connections") == "b"
    for _ in range(6):  # the master's own in-flight tasks count until the next heartbeat
        reg.note_dispatch("b")
    assert pick(reg, strategy="least_connections") == "a"
    reg.heartbeat("b", Heartbeat(running=0, queued=0))
    assert pick(reg, strategy="least_connections") == "b"


def test_resource_aware_respects_constraints_and_picks_headroom() -> None:
    reg = fleet(
        [0.0],
        {
            "hot": {"metrics": {"cpu_percent": 95, "memory_percent": 20}},
            "warm": {"metrics": {"cpu_percent": 50, "memory_percent": 50}},
            "cool": {"metrics": {"cpu_percent": 10, "memory_percent": 85}},
            "blind": {},
        },
    )
    assert pick(reg, strategy="resource_aware", criteria={"memory_weight": 0}) == "cool"
    assert pick(reg, strategy="resource_aware", constraints={"max_memory_percent": 60}) == "warm"
    sel = reg.select(SelectRequest(strategy="resource_aware", constraints={"max_cpu_percent": 5}))
    assert sel.agent is None and "max_cpu_percent=5" in sel.reason


def test_weighted_round_robin_shares_by_headroom() -> None:
    reg = fleet(
        [0.0],
        {"big": {"metrics": {"cpu_percent": 0}}, "small": {"metrics": {"cpu_percent": 75}}},
    )
    criteria = {"cpu_weight": 1.0, "memory_weight": 0.0, "connections_weight": 0.0}
    picks = Counter(
        pick(reg, strategy="weighted_round_robin", criteria=criteria) for _ in range(100)
    )
    assert picks["big"] == 80 and picks["small"] == 20  # weights 1.0 : 0.25, exactly
    seq = [pick(reg, strategy="weighted_round_robin", criteria=criteria) for _ in range(5)]
    assert seq.count("small") == 1  # interleaved, not in runs


def test_affinity_and_selectors_filter_by_tags_and_region() -> None:
    reg = fleet(
        [0.0],
        {
            "eu-gpu": {"tags": ["gpu"], "region": "eu", "running": 3},
            "eu-gpu-2": {"tags": ["gpu", "big"], "region": "eu", "running": 1},
            "us-gpu": {"tags": ["gpu"], "region": "us"},
            "eu-cpu": {"region": "eu"},
        },
    )
    assert pick(reg, strategy="affinity", tags=["gpu"], region="eu") == "eu-gpu-2"
    assert pick(reg, strategy="random", tags=["gpu", "big"]) == "eu-gpu-2"
    assert pick(reg, strategy="affinity", tags=["tpu"]) is None
    sel = reg.select(SelectRequest(tags=["gpu"], region="mars"))
    assert sel.agent is None and "region 'mars'" in sel.reason


def test_random_reaches_every_candidate_and_exclude_works() -> None:
    reg = fleet([0.0], {n: {} for n in "abcd"})
    seen = {pick(reg, strategy="random") for _ in range(200)}
    assert seen == set("abcd")
    assert pick(reg, strategy="random", exclude=["a", "b", "c"]) == "d"
    sel = reg.select(SelectRequest(exclude=list("abcd")))
    assert sel.agent is None and "excluded" in sel.reason


def test_only_active_agents_are_chosen() -> None:
    clock = [0.0]
    reg = fleet(clock, {"old": {}, "new": {}})
    clock[0] = 25.0
    reg.heartbeat("new", Heartbeat(running=0, queued=0))
    clock[0] = 35.0  # old: silent 35 s > 30 s
    assert {pick(reg, strategy="random") for _ in range(20)} == {"new"}
    reg.mark_unknown("new")
    sel = reg.select(SelectRequest())
    assert sel.agent is None and "active" in sel.reason


def test_bad_names_are_refused_with_the_known_ones() -> None:
    reg = fleet([0.0], {"a": {}})
    with pytest.raises(UnknownStrategyError, match="known: affinity, least_connections"):
        reg.select(SelectRequest(strategy="fastest"))
    with pytest.raises(MasterError, match="unknown criteria gpu_weight"):
        reg.select(SelectRequest(criteria={"gpu_weight": 1}))
    with pytest.raises(MasterError, match="unknown constraints max_gpu"):
        reg.select(SelectRequest(constraints={"max_gpu": 1}))


def test_a_registered_strategy_is_used() -> None:
    class Last(Strategy):
        name = "last"

        def choose(self, cands: Candidates) -> int:
            return int(cands.slots[-1])

    balancer.register("last", Last)
    try:
        reg = fleet([0.0], {"a": {}, "b": {}, "c": {}})
        assert pick(reg, strategy="last") == "c"
        assert "last" in balancer.names()
    finally:
        del _registry._strategies["last"]  # other tests count the built-ins
    with pytest.raises(TypeError):
        balancer.register("bad", dict)  # type: ignore[arg-type]


def test_columns_grow_and_keep_values() -> None:
    cols = Columns(initial=2)
    slots = [cols.add() for _ in range(5)]
    cols.running[slots] = [1, 2, 3, 4, 5]
    cols.scratch("x")[4] = 9.0
    for _ in range(60):
        cols.add()
    assert cols.running[:5].tolist() == [1, 2, 3, 4, 5] and cols.scratch("x")[4] == 9.0
