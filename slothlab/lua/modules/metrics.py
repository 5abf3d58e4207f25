"""The ``metrics`` Lua module: host metrics, custom metrics, alerts and health (sloth-runner's).

Host readings come from the runtime's collector (``runtime.context["collector"]``, else the
process-wide one, started on first use) and never block: ``system_cpu()`` returns the last
sample instead of waiting a second. Custom metrics live in ``runtime.context["custom_metrics"]``
(created on first use: one per Lua state, as in sloth-runner), which the host may export on
``/metrics`` or store in the history (:class:`~slothlab.metrics.Recorder`). A task on a
:class:`~slothlab.lua.pool.WorkerPool` hands them back with its reply, and the pool merges them
into the parent's (an agent's ``/metrics`` and heartbeats).

Context hooks a host may set: ``alerts`` (called with each alert as a dict), ``history`` (an
object with ``query(metric, start=, end=)``, e.g. :class:`~slothlab.metrics.MetricsHistory`)
and ``health_status`` (a function returning the table ``health_status()`` gives).
``anomalies(metric, since?)`` and ``forecast(metric, horizon, opts?)`` need a
:class:`~slothlab.metrics.MetricsHistory` as ``history`` (see ``_analytics.py``).

>>> health_level(75, warning=70, critical=90)
'warning'
"""

from __future__ import annotations

import os
import platform
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from slothlab.lua.modules.base import LuaModule

if TYPE_CHECKING:
    from slothlab.lua.runtime import Runtime
    from slothlab.metrics.collector import Collector
    from slothlab.metrics.custom import CustomMetrics

__all__ = ["HEALTH_THRESHOLDS", "MetricsModule", "health_level"]

HEALTH_THRESHOLDS: dict[str, tuple[float, float]] = {
    "cpu": (70.0, 90.0),
    "memory": (80.0, 90.0),
    "disk": (85.0, 95.0),
}
"""Percent at which ``health_status()`` reports warning and critical (sloth-runner's)."""

_MB, _GB = 1024.0**2, 1024.0**3
_LEVELS = ("healthy", "warning", "critical")

# timer is written in Lua: it calls the function under the sandbox's pcall, so a budget or
# interrupt error still ends the script, and the Python helpers stay out of the module table.
_LUA_SOURCE = """
local M = ...
local now_ms, record = M._now_ms, M._record_timer
M._now_ms, M._record_timer = nil, nil
local pack = table.pack
function M.timer(name, fn, tags)
    if type(fn) ~= "function" then
        error("metrics.timer: argument 2 must be a function, not a " .. type(fn), 2)
    end
    local start = now_ms()
    local result = pack(pcall(fn))
    local elapsed = now_ms() - start
    if not result[1] then
        return nil, "Function execution failed: " .. tostring(result[2])
    end
    record(name, elapsed, tags)
    return elapsed
end
"""


def health_level(value: float, *, warning: float, critical: float) -> str:
    """``healthy``, ``warning`` or ``critical`` for a percent against two thresholds."""
    if value > critical:
        return "critical"
    if value > warning:
        return "warning"
    return "healthy"


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class MetricsModule(LuaModule):
    """``metrics.system_cpu()``, ``metrics.gauge(...)``, ``metrics.get_custom(...)``, ..."""

    name = "metrics"
    lua_source = _LUA_SOURCE

    def functions(self, runtime: Runtime) -> Mapping[str, Callable[..., Any]]:
        """The module's functions, bound to ``runtime``'s collector and custom metrics."""
        face = _Face(runtime)
        return {
            "system_cpu": face.system_cpu,
            "system_memory": face.system_memory,
            "system_disk": face.system_disk,
            "system_network": face.system_network,
            "system_load": face.system_load,
            "runtime_info": face.runtime_info,
            "gauge": face.gauge,
            "counter": face.counter,
            "histogram": face.histogram,
            "_record_timer": face.record_timer,
            "_now_ms": face.now_ms,
            "get_custom": face.get_custom,
            "list_custom": face.list_custom,
            "alert": face.alert,
            "health_status": face.health_status,
            "history": face.history,
            "anomalies": face.anomalies,
            "forecast": face.forecast,
        }


class _Face:
    """The Python side of one runtime's ``metrics`` table."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._lock = threading.Lock()

    # -- sources ------------------------------------------------------------------------------

    @property
    def collector(self) -> Collector:
        found = self.runtime.context.get("collector")
        if found is not None:
            return found  # type: ignore[no-any-return]
        from slothlab.metrics.collector import default_collector

        return default_collector()

    @property
    def custom(self) -> CustomMetrics:
        with self._lock:
            found: CustomMetrics | None = self.runtime.context.get("custom_metrics")
            if found is None:
                from slothlab.metrics.custom import CustomMetrics

                found = self.runtime.context["custom_metrics"] = CustomMetrics()
            return found

    # -- host ---------------------------------------------------------------------------------

    def system_cpu(self) -> float:
        return float(self.collector.snapshot()["cpu"]["percent"])

    def system_memory(self) -> Any:
        mem = self.collector.snapshot().get("memory")
        if not mem:
            return None, "memory usage is not available on this host"
        return {
            "used_mb": mem["used_bytes"] / _MB,
            "total_mb": mem["total_bytes"] / _MB,
            "percent": mem["percent"],
            "available_mb": mem["available_bytes"] / _MB,
        }

    def system_disk(self, path: Any = "/") -> Any:
        if not isinstance(path, str) or not path or "\0" in path:
            return None, f"system_disk: path must be a non-empty string, not {path!r}"
        try:
            usage = self.collector.disk(path)
        except OSError as exc:
            return None, f"cannot read disk usage of {path}: {exc.strerror or exc}"
        return {
            "used_gb": usage["used_bytes"] / _GB,
            "total_gb": usage["total_bytes"] / _GB,
            "percent": usage["percent"],
            "free_gb": usage["free_bytes"] / _GB,
        }

    def system_network(self) -> Any:
        net = self.collector.snapshot().get("network")
        if not net:
            return None, "network counters are not available on this host"
        return {k: v for k, v in net.items() if v is not None}

    def system_load(self) -> Any:
        load = self.collector.snapshot().get("load")
        if not load:
            return None, "the load average is not available on this host"
        return dict(load)

    def runtime_info(self) -> dict[str, Any]:
        from slothlab import __version__

        proc = self.collector.snapshot().get("process") or {}
        return {
            "python_version": platform.python_version(),
            "lua_version": "Lua 5.4",
            "slothlab_version": __version__,
            "pid": os.getpid(),
            "threads": threading.active_count(),
            "rss_mb": (proc.get("rss_bytes") or 0) / _MB,
            "num_cpu": os.cpu_count() or 1,
            "platform": sys.platform,
            "hostname": socket.gethostname(),
        }

    # -- custom -------------------------------------------------------------------------------

    def gauge(self, name: Any, value: Any = None, tags: Any = None) -> bool:
        self.custom.gauge(name, value, tags)
        return True

    def counter(self, name: Any, inc: Any = 1, tags: Any = None) -> float:
        return self.custom.counter(name, 1 if inc is None else inc, tags)

    def histogram(self, name: Any, value: Any = None, tags: Any = None) -> bool:
        self.custom.histogram(name, value, tags)
        return True

    def record_timer(self, name: Any, elapsed_ms: Any, tags: Any = None) -> None:
        self.custom.record_timer(name, elapsed_ms, tags)

    def now_ms(self) -> float:
        return time.perf_counter() * 1000.0

    def get_custom(self, name: Any) -> Any:
        return self.custom.get(name) if isinstance(name, str) else None

    def list_custom(self) -> list[str]:
        return self.custom.names()

    # -- alerts, health, history --------------------------------------------------------------

    def alert(self, name: Any, fields: Any = None) -> bool:
        if not isinstance(name, str) or not name:
            raise ValueError(f"alert name must be a non-empty string, not {name!r}")
        if fields is not None and not isinstance(fields, Mapping):
            raise ValueError("alert fields must be a table like {level = 'warning', message = ...}")
        alert = {"level": "warning", "message": "", **(fields or {})}
        alert.update(name=name, timestamp=_rfc3339(time.time()), source="lua")
        self.runtime.context.setdefault("alert_log", []).append(alert)
        self.runtime.output("warn", f"[ALERT] {alert['level']}: {alert['message']}")
        hook = self.runtime.context.get("alerts")
        if hook is not None:
            hook(alert)
        return True

    def health_status(self) -> dict[str, Any]:
        override = self.runtime.context.get("health_status")
        if override is not None:
            return override()  # type: ignore[no-any-return]
        snap = self.collector.snapshot()
        usage = {
            "cpu": snap["cpu"]["percent"],
            "memory": (snap.get("memory") or {}).get("percent"),
            "disk": self._root_disk_percent(),
        }
        out: dict[str, Any] = {}
        overall = 0
        for part, value in usage.items():
            if value is None:
                continue
            warning, critical = HEALTH_THRESHOLDS[part]
            status = health_level(value, warning=warning, critical=critical)
            out[part] = {"usage": value, "status": status}
            overall = max(overall, _LEVELS.index(status))
        out["overall"] = _LEVELS[overall]
        out["timestamp"] = _rfc3339(time.time())
        return out

    def _root_disk_percent(self) -> float | None:
        try:
            return float(self.collector.disk("/")["percent"])
        except OSError:
            return None

    def history(self, metric: Any, since: Any = None, until: Any = None) -> Any:
        store = self.runtime.context.get("history")
        if store is None:
            return None, "no metrics history configured"
        if not isinstance(metric, str) or not metric:
            return None, f"history: metric must be a name, not {metric!r}"
        from slothlab.errors import SlothlabError

        try:
            return store.query(metric, start=since, end=until)
        except (SlothlabError, ValueError) as exc:
            return None, str(exc)

    def anomalies(self, metric: Any, since: Any = None) -> Any:
        from slothlab.lua.modules._analytics import anomalies

        return anomalies(self.runtime.context.get("history"), metric, since)

    def forecast(self, metric: Any, horizon: Any = None, opts: Any = None) -> Any:
        from slothlab.lua.modules._analytics import forecast

        return forecast(self.runtime.context.get("history"), metric, horizon, opts)
