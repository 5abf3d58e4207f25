"""The contract of a load-balancing strategy and the numbers it chooses from.

The registry keeps every agent's numbers in :class:`Columns` (numpy arrays, one slot per agent),
so a decision over 10,000 agents is a few vectorised passes, not a Python loop. The balancer
narrows the slots to :class:`Candidates` (alive, matching tags, region and constraints, not
excluded) and asks a :class:`Strategy` to pick one.

>>> cols = Columns()
>>> a, b = cols.add(), cols.add()
>>> cols.capacity[[a, b]] = 4
>>> cols.running[a], cols.running[b] = 3, 1
>>> cands = Candidates(cols, np.array([a, b]), {}, np.random.default_rng(0))
>>> [round(float(x), 2) for x in cands.headroom()]
[0.42, 0.58]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import numpy.typing as npt

__all__ = ["CRITERIA", "FACTS", "Candidates", "Columns", "Strategy"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

FACTS: tuple[str, ...] = (
    "cpu_percent",
    "memory_percent",
    "disk_percent",
    "memory_available_mb",
    "disk_free_gb",
    "load1",
)
"""The live facts of an agent the strategies and constraints use (NaN until reported)."""

CRITERIA: dict[str, float] = {
    "cpu_weight": 1.0,
    "memory_weight": 1.0,
    "connections_weight": 1.0,
    "disk_weight": 0.0,
}
"""Criteria weights and their defaults: how much each kind of headroom counts."""

_NEUTRAL = 0.5  # the headroom assumed for a fact an agent has not reported


class Columns:
    """Per-agent numbers in growable numpy arrays; slot ``i`` is one agent.

    Attributes:
        size: slots in use (``0 .. size-1``); removal moves the last slot into the hole.
        facts: one float array per name of :data:`FACTS` (NaN when unknown).
        running, queued: from the agent's last heartbeat.
        inflight: tasks the master sent since that heartbeat (it does not count them yet).
        capacity: tasks the agent runs at once.
        last_seen: wall-clock time of the last registration or heartbeat.
        suspect: a dispatch could not connect; not chosen until the next heartbeat.
    """

    def __init__(self, initial: int = 64) -> None:
        self.size = 0
        self._cap = max(1, initial)
        self.facts: dict[str, FloatArray] = {f: self._floats(np.nan) for f in FACTS}
        self.running = self._floats()
        self.queued = self._floats()
        self.inflight = self._floats()
        self.capacity = self._floats(1.0)
        self.last_seen = self._floats()
        self.suspect = np.zeros(self._cap, dtype=bool)
        self._scratch: dict[str, FloatArray] = {}

    def _floats(self, fill: float = 0.0) -> FloatArray:
        return np.full(self._cap, fill, dtype=np.float64)

    def add(self) -> int:
        """A new slot, reset to defaults; returns its index."""
        if self.size == self._cap:
            self._grow()
        slot = self.size
        self.size += 1
        self.reset(slot)
        return slot

    def reset(self, slot: int) -> None:
        """Put ``slot`` back to its defaults (facts unknown, no load)."""
        for arr in self.facts.values():
            arr[slot] = np.nan
        for arr in (self.running, self.queued, self.inflight, self.last_seen):
            arr[slot] = 0.0
        self.capacity[slot] = 1.0
        self.suspect[slot] = False
        for arr in self._scratch.values():
            arr[slot] = 0.0

    def move(self, src: int, dst: int) -> None:
        """Copy slot ``src`` over ``dst`` (used to fill the hole a removal leaves)."""
        for arr in self._arrays():
            arr[dst] = arr[src]

    def pop(self) -> None:
        """Forget the last slot."""
        self.size -= 1

    def scratch(self, name: str) -> FloatArray:
        """A per-slot float array a strategy keeps its own state in (zero for new slots)."""
        arr = self._scratch.get(name)
        if arr is None:
            arr = self._scratch[name] = self._floats()
        return arr

    def load(self, slots: IntArray) -> FloatArray:
        """Running + queued + in-flight tasks of ``slots``."""
        return self.running[slots] + self.queued[slots] + self.inflight[slots]

    def _arrays(self) -> list[npt.NDArray[np.generic]]:
        fixed = [self.running, self.queued, self.inflight, self.capacity, self.last_seen]
        return [*self.facts.values(), *fixed, self.suspect, *self._scratch.values()]

    def _grow(self) -> None:
        new_cap = self._cap * 2

        def grown(arr: FloatArray) -> FloatArray:
            out = np.zeros(new_cap, dtype=np.float64)
            out[: self._cap] = arr
            return out

        self.facts = {k: grown(v) for k, v in self.facts.items()}
        self.running, self.queued = grown(self.running), grown(self.queued)
        self.inflight, self.capacity = grown(self.inflight), grown(self.capacity)
        self.last_seen = grown(self.last_seen)
        self._scratch = {k: grown(v) for k, v in self._scratch.items()}
        suspect = np.zeros(new_cap, dtype=bool)
        suspect[: self._cap] = self.suspect
        self.suspect = suspect
        self._cap = new_cap


class Candidates:
    """The agents a strategy may pick from, and the request's criteria.

    Args:
        cols: every agent's numbers.
        slots: the eligible slots (alive, matching, within constraints, not excluded).
        criteria: weights by name (see :data:`CRITERIA`), already checked.
        rng: the random source (tests seed it).
    """

    def __init__(
        self,
        cols: Columns,
        slots: IntArray,
        criteria: Mapping[str, float],
        rng: np.random.Generator,
    ) -> None:
        self.cols = cols
        self.slots = slots
        self.weights = {**CRITERIA, **criteria}
        self.rng = rng

    def utilisation(self) -> FloatArray:
        """Load over capacity of each candidate (0 idle, 1 full, more when queueing)."""
        return self.cols.load(self.slots) / np.maximum(self.cols.capacity[self.slots], 1.0)

    def headroom(self) -> FloatArray:
        """The weighted free share of each candidate, 0..1 (higher is emptier).

        CPU, memory and disk count ``1 - percent/100``; connections ``1 - utilisation``; a
        fact an agent has not reported counts as half free.
        """
        w = self.weights
        parts: list[tuple[float, FloatArray]] = [
            (w["connections_weight"], np.clip(1.0 - self.utilisation(), 0.0, 1.0)),
        ]
        for fact, key in (("cpu_percent", "cpu_weight"), ("memory_percent", "memory_weight"),
                          ("disk_percent", "disk_weight")):  # fmt: skip
            if w[key]:
                free = 1.0 - self.cols.facts[fact][self.slots] / 100.0
                parts.append((w[key], np.clip(np.nan_to_num(free, nan=_NEUTRAL), 0.0, 1.0)))
        total = sum(weight for weight, _ in parts)
        if total <= 0:
            return np.full(len(self.slots), _NEUTRAL)
        return sum((weight * arr for weight, arr in parts), np.zeros(len(self.slots))) / total

    def pick_best(self, score: FloatArray, *, highest: bool = True) -> int:
        """The slot with the best score; ties are broken at random (spreads equal agents)."""
        best = score.max() if highest else score.min()
        ties = np.flatnonzero(score == best)
        pos = ties[0] if len(ties) == 1 else ties[self.rng.integers(len(ties))]
        return int(self.slots[pos])


class Strategy(ABC):
    """How to choose one agent among candidates.

    Subclasses set :attr:`name` and implement :meth:`choose`. An instance lives as long as the
    master, so a strategy may keep state (round-robin weights) in ``cols.scratch(...)``.
    Register one with :func:`slothlab.master.balancer.register` or the entry-point group
    ``slothlab.balancers``.
    """

    name: ClassVar[str]

    @abstractmethod
    def choose(self, cands: Candidates) -> int:
        """The chosen slot; ``cands.slots`` is never empty."""
