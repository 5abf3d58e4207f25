"""The agent: runs shell and Lua tasks for the master and for clients, over HTTP.

:class:`Executor` queues and runs tasks (priorities, capacity, resource limits, cancel,
idempotency keys, retention); :func:`create_app` is the FastAPI app of the ``/v1`` API over it;
:class:`Registrar` keeps the agent registered with its master; ``slothlab agent start`` wires
them together (:mod:`slothlab.agent.server`). Needs the ``server`` extra.
"""

from __future__ import annotations

from slothlab.agent.app import AgentIdentity, create_app, host_metrics, metrics_app
from slothlab.agent.executor import Executor
from slothlab.agent.limits import ResourceLimits
from slothlab.agent.lua import LuaRunner
from slothlab.agent.registration import Registrar
from slothlab.agent.shell import ShellLimits, ShellRun
from slothlab.agent.tasks import TaskRecord, TaskTable

__all__ = [
    "AgentIdentity",
    "Executor",
    "LuaRunner",
    "Registrar",
    "ResourceLimits",
    "ShellLimits",
    "ShellRun",
    "TaskRecord",
    "TaskTable",
    "create_app",
    "host_metrics",
    "metrics_app",
]
