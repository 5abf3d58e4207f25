"""Health checks from plain data (a TOML/JSON/YAML file, a list of dicts), and the default set.

Each spec is a mapping with ``name``, ``type`` (``threshold``, ``http``, ``tcp``, ``command``,
``lua``; ``system`` is a short form of ``threshold`` with ``metric = "cpu"|"memory"|"disk"``),
the type's own keys and the common ones: ``interval``, ``timeout`` (seconds, or ``"30s"``,
``"5m"``, ``"500ms"``), ``success_threshold``, ``failure_threshold`` and ``recovery``
(``{command = "..."}`` or ``{lua = "..."}`` with ``cooldown`` and ``timeout``).

>>> [c.name for c in checks_from_config([
...     {"name": "db", "type": "tcp", "host": "127.0.0.1", "port": 5432, "interval": "15s"},
...     {"name": "ping", "type": "command", "command": "true", "failure_threshold": 2},
... ])]
['db', 'ping']
>>> checks_from_config([{"name": "x", "type": "smtp"}])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
slothlab.errors.ConfigError: check 'x': unknown type 'smtp'; use one of command, http, lua, ...
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slothlab.errors import ConfigError
from slothlab.metrics.health.base import Check, Recovery
from slothlab.metrics.health.checks import (
    CommandCheck,
    HttpCheck,
    LuaCheck,
    SnapshotSource,
    TcpCheck,
    ThresholdCheck,
)

if TYPE_CHECKING:
    from slothlab.lua.runtime import Runtime

__all__ = [
    "DEFAULT_THRESHOLDS",
    "CollectorSource",
    "checks_from_config",
    "checks_from_file",
    "default_checks",
    "parse_seconds",
]

DEFAULT_THRESHOLDS: dict[str, tuple[str, float, float]] = {
    "cpu": ("cpu.percent", 85.0, 95.0),
    "memory": ("memory.percent", 90.0, 95.0),
    "disk": ("disk.*.percent", 85.0, 95.0),
}
"""The default system checks: name -> (key in the collector's snapshot, warning %, critical %).

The disk check looks at every mounted filesystem the collector reports and judges the fullest.
"""

_COMMON = {
    "name",
    "type",
    "interval",
    "interval_s",
    "timeout",
    "timeout_s",
    "success_threshold",
    "failure_threshold",
    "recovery",
}
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_seconds(value: Any, what: str = "duration") -> float:
    """Seconds from a number or a string like ``"30s"``, ``"5m"``, ``"1.5h"``, ``"250ms"``.

    >>> parse_seconds("5m"), parse_seconds(2), parse_seconds("250ms")
    (300.0, 2.0, 0.25)
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(f"{what} {value!r} is not a duration; write e.g. 30, '30s', '5m', '1h'")
    return float(match[1]) * _UNITS[match[2] or "s"]


class CollectorSource:
    """The process-wide host collector as a snapshot source, found on the first read.

    The default source of threshold checks: :func:`~slothlab.metrics.collector.default_collector`
    is only created (and its sampling thread started) when a check first runs.
    """

    def __init__(self) -> None:
        self._collector: SnapshotSource | None = None

    def snapshot(self) -> Mapping[str, Any]:
        """The collector's latest sample."""
        if self._collector is None:
            from slothlab.metrics.collector import default_collector

            self._collector = default_collector()
        return self._collector.snapshot()


def default_checks(source: SnapshotSource | None = None, **options: Any) -> list[Check]:
    """The default set: CPU, memory and disk against :data:`DEFAULT_THRESHOLDS`.

    ``source`` is the collector (default: :class:`CollectorSource`).

    ``options`` (``interval_s``, ``failure_threshold``, ...) apply to all three.

    >>> from slothlab.metrics.health.checks import StaticSource
    >>> values = {"cpu": {"percent": 5}, "memory": {"percent": 50},
    ...           "disk": {"/": {"percent": 40}, "/data": {"percent": 97}}}
    >>> [c.run().status for c in default_checks(StaticSource(values))]
    ['ok', 'ok', 'critical']
    """
    src = source if source is not None else CollectorSource()
    return [
        ThresholdCheck(name, key, warning=warn, critical=crit, source=src, unit="%", **options)
        for name, (key, warn, crit) in DEFAULT_THRESHOLDS.items()
    ]


def checks_from_config(
    specs: Iterable[Mapping[str, Any]],
    *,
    source: SnapshotSource | None = None,
    lua_runtime: Runtime | Callable[[], Runtime] | None = None,
) -> list[Check]:
    """Build checks from specs (see the module docstring).

    Args:
        specs: one mapping per check.
        source: the snapshot source of threshold checks (default: :class:`CollectorSource`).
        lua_runtime: the runtime (or factory) of Lua checks.

    Raises:
        ConfigError: a spec is malformed; the message names the check and the key.
    """
    checks: list[Check] = []
    for index, spec in enumerate(specs):
        if not isinstance(spec, Mapping):
            raise ConfigError(f"health check #{index + 1} must be a table/dict, got {spec!r}")
        check = _build(spec, source, lua_runtime)
        if any(c.name == check.name for c in checks):
            raise ConfigError(f"two health checks are named {check.name!r}; names are unique")
        checks.append(check)
    return checks


def checks_from_file(
    path: str | Path,
    *,
    source: SnapshotSource | None = None,
    lua_runtime: Runtime | Callable[[], Runtime] | None = None,
) -> list[Check]:
    """Read checks from a TOML (``[[checks]]``), JSON or YAML file (a list, or ``checks:``)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read health checks file {file}: {exc.strerror}") from None
    data = _parse(file, text)
    specs = data.get("checks") if isinstance(data, Mapping) else data
    if not isinstance(specs, list):
        raise ConfigError(f"{file}: expected a list of checks (a [[checks]] table array in TOML)")
    return checks_from_config(specs, source=source, lua_runtime=lua_runtime)


def _parse(file: Path, text: str) -> Any:
    try:
        if file.suffix == ".toml":
            return tomllib.loads(text)
        if file.suffix == ".json":
            return json.loads(text)
        import yaml

        return yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{file} is not valid: {exc}") from None
    except Exception as exc:  # yaml's errors
        raise ConfigError(f"{file} is not valid: {exc}") from None


# -- one spec ---------------------------------------------------------------------------------

_TYPES: dict[str, set[str]] = {
    "threshold": {"key", "warning", "critical", "below", "unit"},
    "system": {"metric", "warning", "critical"},
    "http": {
        "url",
        "method",
        "expected_status",
        "body_regex",
        "latency_warning",
        "latency_warning_s",
        "latency_critical",
        "latency_critical_s",
        "headers",
    },
    "tcp": {"host", "port"},
    "command": {"command", "ok_codes", "warning_codes", "nagios", "env", "cwd"},
    "lua": {"code"},
}


def _build(
    spec: Mapping[str, Any],
    source: SnapshotSource | None,
    lua_runtime: Runtime | Callable[[], Runtime] | None,
) -> Check:
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a health check spec needs a name: {dict(spec)!r}")
    kind = spec.get("type")
    if kind not in _TYPES:
        known = ", ".join(sorted(_TYPES))
        raise ConfigError(f"check {name!r}: unknown type {kind!r}; use one of {known}")
    unknown = set(spec) - _COMMON - _TYPES[kind]
    if unknown:
        allowed = ", ".join(sorted(_COMMON | _TYPES[kind]))
        raise ConfigError(f"check {name!r}: unknown keys {sorted(unknown)}; allowed: {allowed}")
    common = _common(name, spec)
    own = {k: spec[k] for k in _TYPES[kind] if k in spec}
    try:
        return _make(kind, name, own, common, source, lua_runtime)
    except TypeError as exc:  # a required key is missing
        raise ConfigError(f"check {name!r} ({kind}): {exc}") from None


def _common(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    common: dict[str, Any] = {}
    for key in ("interval", "timeout"):
        value = spec.get(key, spec.get(f"{key}_s"))
        if value is not None:
            common[f"{key}_s"] = parse_seconds(value, f"check {name!r} {key}")
    for key in ("success_threshold", "failure_threshold"):
        if key in spec:
            common[key] = spec[key]
    if "recovery" in spec:
        common["recovery"] = _recovery(name, spec["recovery"])
    return common


def _recovery(name: str, spec: Any) -> Recovery:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"check {name!r}: recovery must be a table with command= or lua=")
    unknown = set(spec) - {"command", "lua", "cooldown", "cooldown_s", "timeout", "timeout_s"}
    if unknown:
        raise ConfigError(f"check {name!r}: unknown recovery keys {sorted(unknown)}")
    times = {}
    for key in ("cooldown", "timeout"):
        value = spec.get(key, spec.get(f"{key}_s"))
        if value is not None:
            times[f"{key}_s"] = parse_seconds(value, f"check {name!r} recovery {key}")
    return Recovery(command=spec.get("command"), lua=spec.get("lua"), **times)


def _make(
    kind: str,
    name: str,
    own: dict[str, Any],
    common: dict[str, Any],
    source: SnapshotSource | None,
    lua_runtime: Runtime | Callable[[], Runtime] | None,
) -> Check:
    for key in ("latency_warning", "latency_critical"):
        if key in own:
            own[f"{key}_s"] = parse_seconds(own.pop(key), f"check {name!r} {key}")
    src = source if source is not None else CollectorSource()
    if kind == "system":
        return _system(name, own, common, src)
    if kind == "threshold":
        return ThresholdCheck(name, source=src, **own, **common)
    if kind == "http":
        return HttpCheck(name, **own, **common)
    if kind == "tcp":
        return TcpCheck(name, **own, **common)
    if kind == "command":
        return CommandCheck(name, **own, **common)
    return LuaCheck(name, runtime=lua_runtime, **own, **common)


def _system(
    name: str, own: dict[str, Any], common: dict[str, Any], source: SnapshotSource
) -> Check:
    metric = own.get("metric", name)
    if metric not in DEFAULT_THRESHOLDS:
        known = ", ".join(DEFAULT_THRESHOLDS)
        raise ConfigError(f"check {name!r}: metric {metric!r} is not one of {known}")
    key, warn, crit = DEFAULT_THRESHOLDS[metric]
    warning, critical = own.get("warning", warn), own.get("critical", crit)
    return ThresholdCheck(
        name, key, warning=warning, critical=critical, source=source, unit="%", **common
    )
