"""The registry of agents: in memory for speed, persisted in SQLite so it survives a restart.

An agent registers (:class:`~slothlab.protocol.AgentInfo`) and then heartbeats. Its status
follows from the time since it was last heard from: ``active``, ``unknown`` after
``unknown_after_s`` (3 missed heartbeats by default), ``dead`` after ``dead_after_s``. A
dispatch that cannot connect marks an agent unknown until its next heartbeat.

Every agent's numbers live in numpy columns (:class:`~slothlab.master.balancer.Columns`), with a
boolean mask per tag and per region, so a selection over 10,000 agents stays well under a
millisecond. SQLite holds the records; heartbeats are written behind (:meth:`flush`, one
transaction per flush, records serialised outside the lock that heartbeats take). A record keeps
the metrics the balancer reads and the agent's host numbers; custom metrics live in memory and
in the history, and come back with the agent's next heartbeat after a restart.

>>> from slothlab.protocol import AgentInfo, Heartbeat, SelectRequest
>>> now = [1000.0]
>>> reg = AgentRegistry(":memory:", clock=lambda: now[0])
>>> _ = reg.register(AgentInfo(name="web-1", url="http://h1:8701", version="1", tags=["web"]))
>>> _ = reg.register(AgentInfo(name="db-1", url="http://h2:8701", version="1", tags=["db"]))
>>> reg.select(SelectRequest(strategy="least_connections", tags=["db"])).agent.name
'db-1'
>>> now[0] += 45
>>> reg.heartbeat("web-1", Heartbeat(running=1, queued=0))
>>> [(a.name, a.status) for a in reg.list()]
[('db-1', 'unknown'), ('web-1', 'active')]
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic_core import to_json

from slothlab.errors import MasterError, UnknownAgentError
from slothlab.master.balancer import FACTS, Balancer, Columns
from slothlab.protocol import AgentInfo, AgentStatus, Heartbeat, Selection, SelectRequest

__all__ = ["AgentRegistry", "facts_from_metrics"]

BoolArray = npt.NDArray[np.bool_]

_UPDATE = "UPDATE agents SET info = ?, last_seen = ? WHERE name = ?"
_SCHEMA = """CREATE TABLE IF NOT EXISTS agents (
    name TEXT PRIMARY KEY, info TEXT NOT NULL, last_seen REAL NOT NULL)"""

# fact <- (metric name as the agent may send it, factor): short names first, then Prometheus ones
_FACT_SOURCES: dict[str, tuple[tuple[str, float], ...]] = {
    "cpu_percent": (("cpu_percent", 1.0), ("slothlab_cpu_usage_ratio", 100.0)),
    "memory_percent": (("memory_percent", 1.0), ("slothlab_memory_usage_ratio", 100.0)),
    "disk_percent": (("disk_percent", 1.0), ("slothlab_disk_usage_ratio", 100.0)),
    "memory_available_mb": (
        ("memory_available_mb", 1.0),
        ("slothlab_memory_available_bytes", 1.0 / 2**20),
    ),
    "disk_free_gb": (("disk_free_gb", 1.0), ("slothlab_disk_free_bytes", 1.0 / 2**30)),
    "load1": (("load1", 1.0), ("slothlab_load1", 1.0)),
}


def facts_from_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """The balancer's facts from a heartbeat's metrics (short or Prometheus names).

    >>> facts_from_metrics({"slothlab_cpu_usage_ratio": 0.25, "memory_percent": 40})
    {'cpu_percent': 25.0, 'memory_percent': 40.0}
    """
    out: dict[str, float] = {}
    for fact in FACTS:
        for key, factor in _FACT_SOURCES[fact]:
            value = metrics.get(key)
            if value is not None:
                out[fact] = float(value) * factor
                break
    return out


_VOLATILE = {"metrics", "status", "last_seen", "running", "queued"}

# the metrics a record keeps across a restart: what the balancer reads and the host numbers an
# agent reports; custom numbers (Lua tasks', up to 150 a heartbeat) reach the history only, and
# the agent's next heartbeat brings them back into memory
_KEPT = frozenset(
    {key for sources in _FACT_SOURCES.values() for key, _ in sources}
    | {"effective_capacity", "load5", "load15"}
)


_SOURCES = tuple(_FACT_SOURCES[fact] for fact in FACTS)


def _set_facts(
    columns: Mapping[str, npt.NDArray[np.float64]], slot: int, metrics: Mapping[str, float]
) -> None:
    """:func:`facts_from_metrics` written straight into the balancer's columns at ``slot``."""
    for fact, sources in zip(FACTS, _SOURCES, strict=True):
        for key, factor in sources:
            value = metrics.get(key)
            if value is not None:
                columns[fact][slot] = float(value) * factor
                break


@dataclass
class _Agent:
    info: AgentInfo
    slot: int
    registered_at: float
    metrics: dict[str, float] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)  # the record's unchanging part


class AgentRegistry:
    """Agents by name with their status, numbers and a fast selection.

    Thread-safe: one lock for the agents and columns, held briefly (a heartbeat is ~10 µs
    under it), and one for the SQLite file, written on register, remove and :meth:`flush`.

    Args:
        path: the SQLite file (``<data-dir>/master.db``), or ``":memory:"``.
        clock: wall-clock seconds (tests pass a fake one).
        unknown_after_s: silence after which an agent is ``unknown``.
        dead_after_s: silence after which it is ``dead``.
        balancer: the strategies (default: a fresh :class:`Balancer`).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        unknown_after_s: float = 30.0,
        dead_after_s: float = 60.0,
        balancer: Balancer | None = None,
    ) -> None:
        if not 0 < unknown_after_s <= dead_after_s:
            raise MasterError("need 0 < unknown_after_s <= dead_after_s")
        self.clock = clock
        self.unknown_after_s = unknown_after_s
        self.dead_after_s = dead_after_s
        self.balancer = balancer or Balancer()
        self.cols = Columns()
        self._agents: dict[str, _Agent] = {}
        self._by_slot: list[str] = []
        self._tags: dict[str, BoolArray] = {}
        self._regions: dict[str, BoolArray] = {}
        self._dirty: set[str] = set()
        self._lock = threading.RLock()
        self._db_lock = threading.Lock()  # taken before self._lock when both are held
        self._db = _connect(path)
        self._load()

    # -- records --------------------------------------------------------------------------

    def register(self, info: AgentInfo) -> AgentInfo:
        """Add or replace an agent; it is active from now. Returns it as stored."""
        now = self.clock()
        with self._db_lock, self._lock:
            old = self._agents.get(info.name)
            if old is not None:
                self._drop(info.name)
            agent = self._add(info, now, registered_at=now)
            self._dirty.discard(info.name)
            self._db.execute(
                "INSERT OR REPLACE INTO agents (name, info, last_seen) VALUES (?, ?, ?)",
                (info.name, _record(agent, info.running, info.queued), now),
            )
            return self._view(agent, now)

    def heartbeat(self, name: str, beat: Heartbeat) -> None:
        """Record a heartbeat. Raises UnknownAgentError (404: re-register) for a stranger."""
        now = self.clock()
        with self._lock:
            agent = self._agents.get(name)
            if agent is None:
                raise UnknownAgentError(f"no agent named {name!r} is registered; register first")
            s = agent.slot
            cols = self.cols
            cols.last_seen[s] = now
            cols.running[s], cols.queued[s], cols.inflight[s] = beat.running, beat.queued, 0
            cols.suspect[s] = False
            if beat.metrics:
                agent.metrics = dict(beat.metrics)
                _set_facts(cols.facts, s, beat.metrics)
                effective = beat.metrics.get("effective_capacity")
                if effective is not None and effective >= 1:
                    cols.capacity[s] = effective
            self._dirty.add(name)  # running and queued live in the columns (see _view)

    def get(self, name: str) -> AgentInfo:
        """The agent with its status and last numbers; UnknownAgentError when there is none."""
        with self._lock:
            agent = self._agents.get(name)
            if agent is None:
                raise UnknownAgentError(f"no agent named {name!r}; see GET /v1/agents")
            return self._view(agent, self.clock())

    def list(self) -> list[AgentInfo]:
        """Every agent, by name."""
        now = self.clock()
        with self._lock:
            return [self._view(self._agents[n], now) for n in sorted(self._agents)]

    def status(self, name: str) -> AgentStatus:
        """``active``, ``unknown`` or ``dead``; UnknownAgentError for a stranger."""
        with self._lock:
            agent = self._agents.get(name)
            if agent is None:
                raise UnknownAgentError(f"no agent named {name!r}")
            return self._status(agent.slot, self.clock())

    def remove(self, name: str) -> bool:
        """Forget an agent; True when there was one."""
        with self._db_lock, self._lock:
            if name not in self._agents:
                return False
            self._drop(name)
            self._dirty.discard(name)
            self._db.execute("DELETE FROM agents WHERE name = ?", (name,))
            return True

    def __len__(self) -> int:
        return len(self._agents)

    def __contains__(self, name: object) -> bool:
        return name in self._agents

    # -- dispatch feedback ----------------------------------------------------------------

    def mark_unknown(self, name: str) -> None:
        """A connection to ``name`` failed: skip it until it heartbeats again."""
        with self._lock:
            agent = self._agents.get(name)
            if agent is not None:
                self.cols.suspect[agent.slot] = True

    def note_dispatch(self, name: str, count: int = 1) -> None:
        """``count`` tasks were sent to ``name`` (counted as load until its next heartbeat)."""
        with self._lock:
            agent = self._agents.get(name)
            if agent is not None:
                self.cols.inflight[agent.slot] += count

    # -- selection ------------------------------------------------------------------------

    def select(self, request: SelectRequest) -> Selection:
        """Choose an alive agent for ``request`` (see :class:`~slothlab.protocol.SelectRequest`).

        Raises:
            UnknownStrategyError: no strategy of that name.
            MasterError: unknown criteria or constraint names.
        """
        with self._lock:
            mask, why = self._eligible(request)
            if mask is None:
                return Selection(agent=None, reason=why)
            slot, reason = self.balancer.choose(
                self.cols, mask, request.strategy, request.criteria, request.constraints
            )
            if slot is None:
                return Selection(agent=None, reason=reason)
            agent = self._agents[self._by_slot[slot]]
            return Selection(agent=self._view(agent, self.clock()), reason=reason)

    def _eligible(self, request: SelectRequest) -> tuple[BoolArray | None, str]:
        n = self.cols.size
        if n == 0:
            return None, "no agent is registered: start one with `slothlab agent start`"
        mask = self._alive_mask(self.clock())
        if not mask.any():
            return None, f"none of the {n} registered agent(s) is active (all unknown or dead)"
        for tag in request.tags:
            mask = mask & _first(self._tags.get(tag), n)
        if request.region is not None:
            mask = mask & _first(self._regions.get(request.region), n)
        if not mask.any():
            return None, _no_match(request)
        if request.exclude:
            mask = mask.copy()
            for name in request.exclude:
                agent = self._agents.get(name)
                if agent is not None:
                    mask[agent.slot] = False
            if not mask.any():
                return None, "every matching active agent was excluded (already tried)"
        return mask, ""

    def _alive_mask(self, now: float) -> BoolArray:
        n = self.cols.size
        fresh: BoolArray = self.cols.last_seen[:n] > now - self.unknown_after_s
        return fresh & ~self.cols.suspect[:n]

    # -- persistence ----------------------------------------------------------------------

    def flush(self) -> int:
        """Write heartbeats received since the last flush to SQLite; returns how many.

        The agents' numbers are copied under the registry lock; the records are serialised and
        written (one transaction) outside it, so heartbeats do not wait for the disk. Holding
        the file's lock throughout keeps a registration made meanwhile from being overwritten.
        """
        with self._db_lock:
            with self._lock:  # vectorised: heartbeats wait for this part only
                names, self._dirty = self._dirty, set()
                agents = [a for a in map(self._agents.get, names) if a is not None]
                slots = np.fromiter((a.slot for a in agents), dtype=np.intp, count=len(agents))
                cols = self.cols
                running = cols.running[slots].astype(np.int64).tolist()
                queued = cols.queued[slots].astype(np.int64).tolist()
                seen = cols.last_seen[slots].tolist()
            rows = [
                (_record(a, r, q), t, a.info.name)
                for a, r, q, t in zip(agents, running, queued, seen, strict=True)
            ]
            if rows:
                self._db.execute("BEGIN")
                try:
                    self._db.executemany(_UPDATE, rows)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    with self._lock:  # written next time
                        self._dirty.update(a.info.name for a in agents)
                    raise
                self._db.execute("COMMIT")
        return len(rows)

    def close(self) -> None:
        """Flush and close the file."""
        self.flush()
        with self._db_lock:
            self._db.close()

    def _load(self) -> None:
        try:
            rows = self._db.execute("SELECT info, last_seen FROM agents").fetchall()
        except sqlite3.DatabaseError as exc:
            raise MasterError(f"cannot read the agent registry: {exc}") from None
        for text, last_seen in rows:
            try:
                data = json.loads(text)
                info = AgentInfo.model_validate(data["info"])
            except (ValueError, KeyError):
                continue  # a record from an incompatible version: the agent will re-register
            agent = self._add(info, last_seen, registered_at=data.get("registered_at", last_seen))
            if data.get("metrics"):
                self._apply_metrics(agent, data["metrics"])

    # -- slots and masks ------------------------------------------------------------------

    def _add(self, info: AgentInfo, last_seen: float, registered_at: float) -> _Agent:
        info = info.model_copy()
        slot = self.cols.add()
        fixed = info.model_dump(mode="json", exclude=_VOLATILE)
        agent = _Agent(info=info, slot=slot, registered_at=registered_at, fixed=fixed)
        self._agents[info.name] = agent
        self._by_slot.append(info.name)
        c = self.cols
        c.last_seen[slot], c.capacity[slot] = last_seen, info.capacity
        c.running[slot], c.queued[slot] = info.running, info.queued
        self._apply_metrics(agent, info.metrics)
        for tag in info.tags:
            self._mask(self._tags, tag)[slot] = True
        if info.region is not None:
            self._mask(self._regions, info.region)[slot] = True
        return agent

    def _apply_metrics(self, agent: _Agent, metrics: Mapping[str, float]) -> None:
        agent.metrics = dict(metrics)
        _set_facts(self.cols.facts, agent.slot, metrics)

    def _mask(self, masks: dict[str, BoolArray], key: str) -> BoolArray:
        mask = masks.get(key)
        need = len(self.cols.running)
        if mask is None or len(mask) < need:
            grown = np.zeros(need, dtype=bool)
            if mask is not None:
                grown[: len(mask)] = mask
            mask = masks[key] = grown
        return mask

    def _drop(self, name: str) -> None:
        agent = self._agents.pop(name)
        hole, last = agent.slot, self.cols.size - 1
        masks = [*self._tags.values(), *self._regions.values()]
        if hole != last:
            self.cols.move(last, hole)
            moved = self._by_slot[last]
            self._agents[moved].slot = hole
            self._by_slot[hole] = moved
            for mask in masks:
                if len(mask) > hole:
                    mask[hole] = mask[last] if len(mask) > last else False
        for mask in masks:
            if len(mask) > last:
                mask[last] = False
        self._by_slot.pop()
        self.cols.pop()

    # -- views ----------------------------------------------------------------------------

    def _status(self, slot: int, now: float) -> AgentStatus:
        silent = now - float(self.cols.last_seen[slot])
        if silent >= self.dead_after_s:
            return "dead"
        if silent >= self.unknown_after_s or self.cols.suspect[slot]:
            return "unknown"
        return "active"

    def _view(self, agent: _Agent, now: float) -> AgentInfo:
        s = agent.slot
        return agent.info.model_copy(
            update={
                "status": self._status(s, now),
                "last_seen": float(self.cols.last_seen[s]),
                "metrics": dict(agent.metrics),
                "running": int(self.cols.running[s]),
                "queued": int(self.cols.queued[s]),
            }
        )


def _first(mask: BoolArray | None, n: int) -> BoolArray:
    """The first ``n`` entries of a tag or region mask (masks may be shorter: pad False)."""
    if mask is None:
        return np.zeros(n, dtype=bool)
    if len(mask) >= n:
        return mask[:n]
    out = np.zeros(n, dtype=bool)
    out[: len(mask)] = mask
    return out


def _no_match(request: SelectRequest) -> str:
    wanted = [f"tags {request.tags}"] if request.tags else []
    if request.region is not None:
        wanted.append(f"region {request.region!r}")
    return f"no active agent has {' and '.join(wanted)}"


def _record(agent: _Agent, running: int, queued: int) -> str:
    """The SQLite record of ``agent`` (pydantic-core's JSON: ~5x faster than ``json.dumps``)."""
    info = {**agent.fixed, "running": running, "queued": queued}
    metrics = agent.metrics
    if not metrics.keys() <= _KEPT:
        metrics = {k: v for k, v in metrics.items() if k in _KEPT}
    record = {"info": info, "metrics": metrics, "registered_at": agent.registered_at}
    return to_json(record, inf_nan_mode="constants").decode()


def _connect(path: str | Path) -> sqlite3.Connection:
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = 5000")
        if str(path) != ":memory:":
            db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute(_SCHEMA)
    except sqlite3.DatabaseError as exc:
        raise MasterError(f"cannot open the agent registry {path}: {exc}") from None
    return db
