"""The master: agent registry, dispatch with failover, cluster state and the metrics history.

Run it with ``slothlab master`` (or ``slothlab up``); in Python, ``create_app(Master(config))``
is its ASGI app. See ``docs/master.md``.
"""

from __future__ import annotations

from slothlab.master.app import Master, MasterConfig, create_app, dashboard_app
from slothlab.master.dispatcher import Dispatcher
from slothlab.master.registry import AgentRegistry
from slothlab.master.state_client import RemoteStore

__all__ = [
    "AgentRegistry",
    "Dispatcher",
    "Master",
    "MasterConfig",
    "RemoteStore",
    "create_app",
    "dashboard_app",
]
