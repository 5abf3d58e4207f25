"""Settings: a TOML file, ``SLOTHLAB_*`` environment overrides, and where slothlab keeps its files.

Precedence, highest first: an environment variable ``SLOTHLAB_<SECTION>_<KEY>`` (upper case,
dots become underscores), the settings file, the built-in default.

The settings file is ``$SLOTHLAB_CONFIG`` if set, else ``<home>/config.toml``, where home is
``$SLOTHLAB_HOME`` or ``~/.slothlab``.

>>> settings = Settings(path=None, environ={"SLOTHLAB_STATE_PATH": "/tmp/s.db"})
>>> settings.get("state.path")
'/tmp/s.db'
>>> settings.get("lua.max_memory_mb")
256
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slothlab.errors import ConfigError

__all__ = ["DEFAULTS", "Settings", "home_dir", "load_settings", "shared_dir"]

DEFAULTS: dict[str, Any] = {
    "state.path": "",  # empty: <home>/state.db
    "lua.max_memory_mb": 256,
    "lua.instruction_limit": 0,  # 0: no instruction budget for local code
    "lua.pool_size": 2,
    "lua.task_cpu_s": 30,
    "lua.task_wall_s": 60,
    "metrics.history_path": "",  # empty: <home>/metrics.duckdb
    "metrics.retention_raw_days": 7.0,  # 0 keeps for ever
    "metrics.retention_1m_days": 90.0,
    "metrics.retention_1h_days": 730.0,
    "master.host": "127.0.0.1",
    "master.port": 8700,
    "master.data_dir": "",  # empty: <home> (master.db, state.db, history.duckdb)
    "master.heartbeat_interval_s": 10.0,  # what agents are told; unknown after 3 missed
    "master.unknown_after_missed": 3,
    "master.dead_after_s": 60.0,
    "master.connect_timeout_s": 2.0,  # dispatch: connect (failover when it fails)
    "master.read_timeout_s": 10.0,  # dispatch: answer (re-query the same agent when it fails)
    "master.max_failover": 3,  # agents tried before a task is refused
}


def home_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The folder slothlab keeps its files in (``$SLOTHLAB_HOME`` or ``~/.slothlab``)."""
    env = os.environ if environ is None else environ
    return Path(env.get("SLOTHLAB_HOME") or Path.home() / ".slothlab")


def shared_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """The shared public data folder from ``$SLOTHLAB_SHARED_DIR``, or None when unset."""
    env = os.environ if environ is None else environ
    value = env.get("SLOTHLAB_SHARED_DIR")
    return Path(value) if value else None


class Settings:
    """Read settings by dotted key with environment overrides.

    Args:
        path: the TOML file to read; ``None`` reads none.
        environ: the environment to take overrides from (default ``os.environ``).
    """

    def __init__(self, path: Path | None, environ: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.environ = os.environ if environ is None else environ
        self._file: dict[str, Any] = _flatten(_read_toml(path)) if path else {}

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` ("section.name"), typed like its default."""
        env_key = "SLOTHLAB_" + key.upper().replace(".", "_")
        fallback = DEFAULTS.get(key, default)
        if env_key in self.environ:
            return _coerce(self.environ[env_key], fallback, env_key)
        if key in self._file:
            return self._file[key]
        return fallback

    def state_path(self) -> Path:
        """Where the local state store lives."""
        configured = self.get("state.path")
        return Path(configured) if configured else home_dir(self.environ) / "state.db"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the default file (if it exists) and the environment."""
    env = os.environ if environ is None else environ
    path = Path(env["SLOTHLAB_CONFIG"]) if env.get("SLOTHLAB_CONFIG") else None
    if path is None:
        candidate = home_dir(env) / "config.toml"
        path = candidate if candidate.exists() else None
    return Settings(path, env)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"settings file {path} is not valid TOML: {exc}; fix or remove it"
        ) from exc


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _coerce(raw: str, like: Any, name: str) -> Any:
    if isinstance(like, bool):
        if raw.lower() in {"1", "true", "yes", "on"}:
            return True
        if raw.lower() in {"0", "false", "no", "off", ""}:
            return False
        raise ConfigError(f"{name}={raw!r} is not a boolean; use true or false")
    if isinstance(like, int | float):
        try:
            return type(like)(raw)
        except ValueError:
            kind = type(like).__name__
            raise ConfigError(f"{name}={raw!r} is not a number ({kind} expected)") from None
    return raw
