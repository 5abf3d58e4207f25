"""Load-balancing strategies for the master, and their registry.

Built-ins: ``weighted_round_robin``, ``least_connections``, ``resource_aware``, ``affinity``,
``random``. A plugin adds one through the entry-point group ``slothlab.balancers`` (a
:class:`Strategy` subclass) and may replace a built-in.

>>> names()
['affinity', 'least_connections', 'random', 'resource_aware', 'weighted_round_robin']
"""

from __future__ import annotations

from slothlab.master.balancer._registry import get, names, register
from slothlab.master.balancer.base import CRITERIA, FACTS, Candidates, Columns, Strategy
from slothlab.master.balancer.select import CONSTRAINTS, Balancer

__all__ = [
    "CONSTRAINTS",
    "CRITERIA",
    "FACTS",
    "Balancer",
    "Candidates",
    "Columns",
    "Strategy",
    "get",
    "names",
    "register",
]
