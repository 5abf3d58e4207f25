"""The balancer: constraints, criteria and a strategy applied to the registry's candidates.

>>> import numpy as np
>>> from slothlab.master.balancer.base import Columns
>>> cols = Columns()
>>> a, b = cols.add(), cols.add()
>>> cols.facts["cpu_percent"][[a, b]] = [95.0, 20.0]
>>> balancer = Balancer(rng=np.random.default_rng(0))
>>> mask = np.ones(cols.size, dtype=bool)
>>> balancer.choose(cols, mask, "resource_aware", {}, {"max_cpu_percent": 80})
(1, 'resource_aware over 1 candidate(s)')
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt

from slothlab.errors import MasterError
from slothlab.master.balancer._registry import get
from slothlab.master.balancer.base import CRITERIA, Candidates, Columns, FloatArray, Strategy

__all__ = ["CONSTRAINTS", "Balancer"]

BoolArray = npt.NDArray[np.bool_]

_Pick = Callable[[Columns, slice], FloatArray]


def _fact(name: str) -> _Pick:
    return lambda cols, part: cols.facts[name][part]


def _free_slots(cols: Columns, part: slice) -> FloatArray:
    return cols.capacity[part] - (cols.running[part] + cols.queued[part] + cols.inflight[part])


def _tasks(cols: Columns, part: slice) -> FloatArray:
    return cols.running[part] + cols.queued[part] + cols.inflight[part]


CONSTRAINTS: dict[str, tuple[_Pick, Callable[[FloatArray, float], BoolArray], str]] = {
    "max_cpu_percent": (_fact("cpu_percent"), operator.le, "CPU percent"),
    "max_memory_percent": (_fact("memory_percent"), operator.le, "memory percent"),
    "max_disk_percent": (_fact("disk_percent"), operator.le, "disk percent"),
    "min_free_memory_mb": (_fact("memory_available_mb"), operator.ge, "free memory (MB)"),
    "min_free_disk_gb": (_fact("disk_free_gb"), operator.ge, "free disk (GB)"),
    "max_load1": (_fact("load1"), operator.le, "load1"),
    "max_tasks": (_tasks, operator.le, "tasks running + queued"),
    "min_free_slots": (_free_slots, operator.ge, "free task slots"),
}
"""Constraint name -> (the numbers it reads, the comparison, what it is called in reasons).

An agent that has not reported the fact a constraint reads does not meet it.
"""


class Balancer:
    """Applies constraints, checks criteria and runs a strategy; keeps strategy instances.

    Args:
        rng: the random source for ties and ``random`` (tests seed it).
    """

    def __init__(self, rng: np.random.Generator | None = None) -> None:
        self.rng = rng or np.random.default_rng()
        self._strategies: dict[str, Strategy] = {}

    def strategy(self, name: str) -> Strategy:
        """The (long-lived) instance of strategy ``name``."""
        found = self._strategies.get(name)
        if found is None:
            found = self._strategies[name] = get(name)()
        return found

    def check(
        self, strategy: str, criteria: Mapping[str, float], constraints: Mapping[str, float]
    ) -> None:
        """Raise UnknownStrategyError or MasterError when a name is not known."""
        self.strategy(strategy)
        _check_criteria(criteria)
        _constrain(Columns(1), np.zeros(0, dtype=bool), constraints)

    def choose(
        self,
        cols: Columns,
        mask: BoolArray,
        strategy: str,
        criteria: Mapping[str, float],
        constraints: Mapping[str, float],
    ) -> tuple[int | None, str]:
        """The chosen slot among ``mask`` (length ``cols.size``), or None, and why."""
        chosen = self.strategy(strategy)
        _check_criteria(criteria)
        mask, refused = _constrain(cols, mask, constraints)
        slots = np.flatnonzero(mask)
        if len(slots) == 0:
            return None, refused or "no agent matched"
        cands = Candidates(cols, slots, criteria, self.rng)
        return chosen.choose(cands), f"{strategy} over {len(slots)} candidate(s)"


def _check_criteria(criteria: Mapping[str, float]) -> None:
    unknown = sorted(set(criteria) - set(CRITERIA))
    if unknown:
        raise MasterError(
            f"unknown criteria {', '.join(unknown)}; known: {', '.join(sorted(CRITERIA))}"
        )
    negative = [k for k, v in criteria.items() if not v >= 0]
    if negative:
        raise MasterError(f"criteria weights must be >= 0: {', '.join(sorted(negative))}")


def _constrain(
    cols: Columns, mask: BoolArray, constraints: Mapping[str, float]
) -> tuple[BoolArray, str]:
    unknown = sorted(set(constraints) - set(CONSTRAINTS))
    if unknown:
        raise MasterError(
            f"unknown constraints {', '.join(unknown)}; known: {', '.join(sorted(CONSTRAINTS))}"
        )
    part = slice(0, cols.size)
    for name, limit in constraints.items():
        pick, compare, label = CONSTRAINTS[name]
        before = int(mask.sum())
        mask = mask & compare(pick(cols, part), float(limit))
        if before and not mask.any():
            word = "at most" if compare is operator.le else "at least"
            return mask, (
                f"no agent meets {name}={limit:g} ({label} {word} {limit:g}) among {before} "
                "alive matching agent(s); agents that have not reported it do not count"
            )
    return mask, ""
