"""The ``system`` Lua module: feature flags and facts about the host.

* ``system.available_features()`` → ``{feature = "enabled" | "disabled" | "beta"}``
* ``system.enable_beta_features({"ai_optimization", ...})`` → ``true``, or ``nil, message``;
  the switch holds for this runtime only (never written to the settings)
* ``system.is_enabled(name)`` → boolean, or ``nil, message`` for an unknown feature
* ``system.hostname()`` → the host name
* ``system.info()`` → ``{hostname, os, arch, cpus, memory_total_mb, python, slothlab_version,
  boot_time}``
* ``system.env(name)`` → the value of an environment variable **on the allow-list** (the
  setting ``lua.env_allow``, empty by default), or ``nil, message``

Context a host may set: ``features`` (a :class:`~slothlab.features.FeatureFlags` whose switches
the script then shares), ``env_allow`` (names, instead of the setting) and ``environ`` (the
mapping ``env`` reads, instead of ``os.environ``).

>>> facts = host_facts()
>>> sorted(facts) == sorted(INFO_FIELDS) and facts["cpus"] >= 1
True
"""

from __future__ import annotations

import os
import platform
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from slothlab.lua.modules.base import LuaModule

if TYPE_CHECKING:
    from slothlab.features import FeatureFlags
    from slothlab.lua.runtime import Runtime

__all__ = ["INFO_FIELDS", "SystemModule", "host_facts"]

INFO_FIELDS = (
    "hostname",
    "os",
    "arch",
    "cpus",
    "memory_total_mb",
    "python",
    "slothlab_version",
    "boot_time",
)
"""The fields of ``system.info()``."""

Failure = tuple[None, str]


def host_facts() -> dict[str, Any]:
    """Facts about this host: name, OS, CPU count, memory, versions and boot time (UTC)."""
    import psutil

    from slothlab import __version__

    return {
        "hostname": socket.gethostname(),
        "os": platform.system().lower(),
        "arch": platform.machine(),
        "cpus": os.cpu_count() or 1,
        "memory_total_mb": psutil.virtual_memory().total // (1024 * 1024),
        "python": platform.python_version(),
        "slothlab_version": __version__,
        "boot_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(psutil.boot_time())),
    }


class SystemModule(LuaModule):
    """``system.available_features()``, ``system.info()``, ...

    Args:
        facts: where ``info()`` and ``hostname()`` come from (default: :func:`host_facts`).
    """

    name = "system"

    def __init__(self, facts: Callable[[], Mapping[str, Any]] = host_facts) -> None:
        self._facts = facts

    def functions(self, runtime: Runtime) -> Mapping[str, Callable[..., Any]]:
        """The module's functions, with this runtime's flags and environment allow-list."""
        face = _Face(runtime, self._facts)
        return {
            "available_features": face.available_features,
            "enable_beta_features": face.enable_beta_features,
            "is_enabled": face.is_enabled,
            "hostname": face.hostname,
            "info": face.info,
            "env": face.env,
        }


class _Face:
    """The Python side of one runtime's ``system`` table."""

    def __init__(self, runtime: Runtime, facts: Callable[[], Mapping[str, Any]]) -> None:
        self.context = runtime.context
        self._facts = facts
        self._flags: FeatureFlags | None = None

    def flags(self) -> FeatureFlags:
        if self._flags is None:
            from slothlab.features import FeatureFlags, process_flags

            given = self.context.get("features")
            self._flags = given if given is not None else FeatureFlags(parent=process_flags())
        return self._flags

    def available_features(self) -> dict[str, str] | Failure:
        from slothlab.errors import ConfigError

        try:
            return dict(self.flags().available())
        except ConfigError as exc:
            return None, f"system.available_features: {exc}"

    def enable_beta_features(self, *names: Any) -> bool | Failure:
        from slothlab.errors import ConfigError

        wanted = _names(names)
        if isinstance(wanted, str):
            return None, f"system.enable_beta_features: {wanted}"
        try:
            self.flags().enable_beta(wanted)
        except ConfigError as exc:
            return None, f"system.enable_beta_features: {exc}"
        return True

    def is_enabled(self, name: Any = None) -> bool | Failure:
        from slothlab.errors import ConfigError

        if not isinstance(name, str):
            return None, "system.is_enabled: give a feature name (a string)"
        try:
            return self.flags().is_enabled(name)
        except ConfigError as exc:
            return None, f"system.is_enabled: {exc}"

    def hostname(self) -> str:
        return str(self._facts()["hostname"])

    def info(self) -> dict[str, Any]:
        return dict(self._facts())

    def env(self, name: Any = None) -> str | Failure:
        if not isinstance(name, str) or not name:
            return None, "system.env: give the variable's name (a string)"
        if name not in self._allowed():
            return None, (
                f"system.env: {name} is not on the allow-list; an administrator can add it "
                f"with: slothlab config set lua.env_allow='[\"{name}\"]'"
            )
        environ: Mapping[str, str] = self.context.get("environ", os.environ)
        value = environ.get(name)
        if value is None:
            return None, f"system.env: {name} is not set"
        return value

    def _allowed(self) -> set[str]:
        given = self.context.get("env_allow")
        if given is not None:
            return {str(n) for n in given}
        from slothlab.config import load_settings

        names = load_settings().get("lua.env_allow")
        return {str(n) for n in names} if isinstance(names, list) else set()


def _names(args: Iterable[Any]) -> list[str] | str:
    """Feature names from ``("a", "b")``, ``({"a", "b"},)`` or ``({a = true},)``; or why not."""
    names: list[str] = []
    for arg in args:
        if isinstance(arg, str):
            names.append(arg)
        elif isinstance(arg, list):
            names.extend(arg)
        elif isinstance(arg, dict):
            names.extend(k for k, on in arg.items() if on is True)
        elif arg is not None:
            return f"give feature names as a list of strings, not a {_lua_type(arg)}"
    if not names:
        return 'give at least one feature name, e.g. {"ai_optimization"}'
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        return f"feature names are strings, not {bad[0]!r}"
    return names


def _lua_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    return "number" if isinstance(value, int | float) else "function"
