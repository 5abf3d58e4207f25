"""An executor and a health monitor from the settings (what ``slothlab agent start`` runs).

>>> from slothlab.config import Settings
>>> environ = {"SLOTHLAB_AGENT_LIMIT_ACTION": "reject", "SLOTHLAB_AGENT_SHELL_SPARES": "0"}
>>> executor = build_executor(Settings(None, environ=environ), "doc", 2, snapshot=None)
>>> executor.capacity, executor.limits.action, executor.table.result_ttl_s, executor.spares.size
(2, 'reject', 3600.0, 0)
>>> executor.shutdown()
"""

from __future__ import annotations

from typing import Any

from slothlab.agent.executor import Executor
from slothlab.agent.limits import ResourceLimits, SnapshotSource
from slothlab.agent.lua import LuaRunner
from slothlab.agent.shell import ShellLimits
from slothlab.agent.tasks import TaskTable
from slothlab.config import Settings

__all__ = ["build_executor", "build_health"]


def build_executor(
    settings: Settings, name: str, capacity: int, snapshot: SnapshotSource | None
) -> Executor:
    """The executor the settings describe (``agent.*``)."""
    get = settings.get
    limits = ResourceLimits(
        max_cpu_percent=float(get("agent.max_cpu_percent")),
        max_memory_percent=float(get("agent.max_memory_percent")),
        warn_cpu_percent=float(get("agent.warn_cpu_percent")),
        warn_memory_percent=float(get("agent.warn_memory_percent")),
        action=str(get("agent.limit_action")),
        throttle_capacity=int(get("agent.throttle_capacity")) or None,
    )
    lua = LuaRunner(
        size=capacity,
        max_memory_mb=int(get("agent.lua_max_memory_mb")),
        capabilities={"exec": bool(get("agent.lua_exec")), "fs": bool(get("agent.lua_fs"))},
    )
    return Executor(
        name,
        capacity=capacity,
        limits=limits,
        snapshot=snapshot,
        lua=lua,
        shell_limits=ShellLimits(
            max_memory_mb=int(get("agent.shell_max_memory_mb")),
            max_cpu_s=int(get("agent.shell_max_cpu_s")),
        ),
        shell_spares=int(get("agent.shell_spares")),
        kill_grace_s=float(get("agent.kill_grace_s")),
        max_output=int(get("agent.max_output_bytes")),
        max_queue=int(get("agent.max_queue")),
        table=TaskTable(
            result_ttl_s=float(get("agent.result_ttl_s")),
            max_records=int(get("agent.max_results")),
        ),
    )


def build_health(spec: str | None, source: SnapshotSource) -> Any:
    """A health monitor: None without ``spec``, the default checks for ``"default"``, or a file's.

    Raises:
        ConfigError: the file cannot be read or holds a bad check.
    """
    if spec is None:
        return None
    from slothlab.metrics.health import HealthMonitor, checks_from_file, default_checks

    checks = default_checks(source) if spec == "default" else checks_from_file(spec, source=source)
    return HealthMonitor(checks)
