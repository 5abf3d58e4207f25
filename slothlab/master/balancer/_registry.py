"""Strategies by name: the built-ins, then the entry-point group ``slothlab.balancers``."""

from __future__ import annotations

import threading
from importlib.metadata import entry_points

from slothlab.errors import UnknownStrategyError
from slothlab.master.balancer.base import Strategy

__all__ = ["get", "names", "register"]

_strategies: dict[str, type[Strategy]] = {}
_loaded = False
_load_lock = threading.Lock()


def register(name: str, cls: type[Strategy]) -> None:
    """Make ``cls`` the strategy called ``name`` (replacing a built-in of that name)."""
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise TypeError(f"a balancer strategy must subclass Strategy, not {cls!r}")
    _strategies[name] = cls


def get(name: str) -> type[Strategy]:
    """The strategy class called ``name``; the error lists the known ones."""
    _load()
    try:
        return _strategies[name]
    except KeyError:
        known = ", ".join(sorted(_strategies))
        raise UnknownStrategyError(f"no strategy named {name!r}; known: {known}") from None


def names() -> list[str]:
    """Every registered strategy name, sorted."""
    _load()
    return sorted(_strategies)


def _load() -> None:
    # Requests arrive on several threads at once: the first loads, the others wait for it (a
    # flag set before loading let a second thread see an empty registry).
    global _loaded
    if _loaded:
        return
    with _load_lock:
        if _loaded:
            return
        from slothlab.master.balancer import strategies as s

        builtins = (s.WeightedRoundRobin, s.LeastConnections, s.ResourceAware, s.Affinity, s.Random)
        for cls in builtins:
            _strategies.setdefault(cls.name, cls)
        for ep in entry_points(group="slothlab.balancers"):
            _strategies[ep.name] = ep.load()
        _loaded = True
