"""The built-in strategies: weighted round robin, least connections, resource aware, affinity,
random.

Every strategy picks among the same candidates (alive agents that match the tags, the region
and the constraints, minus the excluded ones); they differ only in how they pick.

>>> import numpy as np
>>> from slothlab.master.balancer.base import Candidates, Columns
>>> cols = Columns()
>>> slots = np.array([cols.add() for _ in range(3)])
>>> cols.capacity[slots] = 4
>>> cols.running[slots] = [3, 0, 2]
>>> LeastConnections().choose(Candidates(cols, slots, {}, np.random.default_rng(0)))
1
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from slothlab.master.balancer.base import Candidates, Strategy

__all__ = ["Affinity", "LeastConnections", "Random", "ResourceAware", "WeightedRoundRobin"]

_MIN_WEIGHT = 0.02  # a busy agent still gets an occasional turn, so its numbers stay fresh


class WeightedRoundRobin(Strategy):
    """Smooth weighted round robin (nginx's), weights from live headroom.

    Each agent's weight is its :meth:`~Candidates.headroom` under the criteria weights; over many
    decisions an agent gets a share of tasks proportional to its weight, interleaved rather
    than in runs.
    """

    name: ClassVar[str] = "weighted_round_robin"

    def choose(self, cands: Candidates) -> int:
        weight = np.maximum(cands.headroom(), _MIN_WEIGHT)
        current = cands.cols.scratch("wrr_current")
        run = current[cands.slots] + weight
        pos = int(np.argmax(run))
        run[pos] -= weight.sum()
        current[cands.slots] = run
        return int(cands.slots[pos])


class LeastConnections(Strategy):
    """The agent with the fewest tasks per slot of capacity (running + queued + in flight)."""

    name: ClassVar[str] = "least_connections"

    def choose(self, cands: Candidates) -> int:
        return cands.pick_best(cands.utilisation(), highest=False)


class ResourceAware(Strategy):
    """The agent with the most weighted headroom (CPU, memory, connections, disk).

    Constraints (``max_cpu_percent``, ``min_free_memory_mb``, ...) have already removed the
    agents that do not fit; this picks the emptiest of the rest.
    """

    name: ClassVar[str] = "resource_aware"

    def choose(self, cands: Candidates) -> int:
        return cands.pick_best(cands.headroom())


class Affinity(Strategy):
    """Among the agents matching the affinity (tags, region), the least loaded.

    The tags and region filter candidates for every strategy; this one is for when they are
    the point of the choice, and it keeps load balanced inside the matching group.
    """

    name: ClassVar[str] = "affinity"

    def choose(self, cands: Candidates) -> int:
        return cands.pick_best(cands.utilisation(), highest=False)


class Random(Strategy):
    """Any candidate, uniformly at random."""

    name: ClassVar[str] = "random"

    def choose(self, cands: Candidates) -> int:
        return int(cands.slots[cands.rng.integers(len(cands.slots))])
