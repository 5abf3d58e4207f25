"""Settings: a TOML file, ``SLOTHLAB_*`` environment overrides, and where slothlab keeps its files.

Precedence, highest first: an environment variable ``SLOTHLAB_<SECTION>_<KEY>`` (upper case,
dots become underscores), the settings file, the built-in default.

The settings file is ``$SLOTHLAB_CONFIG`` if set, else ``<home>/config.toml``, where home is
``$SLOTHLAB_HOME`` or ``~/.slothlab``. :func:`set_value` and :func:`unset_value` change one key of
it atomically (a temporary file renamed over it), keeping every other key; a file that is not
valid TOML is never overwritten. Values typed on a command line go through :func:`parse_value`.

>>> settings = Settings(path=None, environ={"SLOTHLAB_STATE_PATH": "/tmp/s.db"})
>>> settings.get("state.path")
'/tmp/s.db'
>>> settings.get("lua.max_memory_mb")
256
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import os
import re
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from slothlab.errors import ConfigError

__all__ = [
    "DEFAULTS",
    "Settings",
    "Source",
    "check_key",
    "config_path",
    "env_name",
    "format_value",
    "home_dir",
    "load_settings",
    "parse_value",
    "set_value",
    "shared_dir",
    "unset_value",
]

Source = Literal["env", "file", "default", "unset"]
"""Where a setting's value comes from (see :meth:`Settings.source`)."""

DEFAULTS: dict[str, Any] = {
    "state.path": "",  # empty: <home>/state.db
    "lua.max_memory_mb": 256,
    "lua.instruction_limit": 0,  # 0: no instruction budget for local code
    "lua.pool_size": 2,
    "lua.task_cpu_s": 30,
    "lua.task_wall_s": 60,
    "lua.env_allow": [],  # environment variables system.env() may read (none by default)
    "metrics.history_path": "",  # empty: <home>/metrics.duckdb
    "metrics.retention_raw_days": 7.0,  # 0 keeps for ever
    "metrics.retention_1m_days": 90.0,
    "metrics.retention_1h_days": 730.0,
    "master.url": "",  # the master clients and agents talk to; empty: the local cluster / none
    "master.host": "127.0.0.1",
    "master.port": 8700,
    "master.data_dir": "",  # empty: <home> (master.db, state.db, history.duckdb)
    "master.heartbeat_interval_s": 10.0,  # what agents are told; unknown after 3 missed
    "master.unknown_after_missed": 3,
    "master.dead_after_s": 60.0,
    "master.connect_timeout_s": 2.0,  # dispatch: connect (failover when it fails)
    "master.read_timeout_s": 10.0,  # dispatch: answer (re-query the same agent when it fails)
    "master.max_failover": 3,  # agents tried before a task is refused
    "agent.host": "127.0.0.1",
    "agent.port": 8701,
    "agent.capacity": 4,  # tasks run at once
    "agent.tags": [],  # tags when `agent start` has no --tags, e.g. ["web", "eu"]
    "agent.heartbeat_interval_s": 5.0,
    "agent.result_ttl_s": 3600.0,  # how long finished tasks are kept
    "agent.max_results": 1000,  # finished tasks kept at most
    "agent.max_queue": 10000,  # tasks that may wait; more get 429
    "agent.max_output_bytes": 1048576,  # kept of each of a task's stdout and stderr
    "agent.shutdown_grace_s": 10.0,  # running tasks may finish this long after SIGTERM
    "agent.kill_grace_s": 2.0,  # after a cancel's SIGTERM, SIGKILL this much later
    "agent.max_cpu_percent": 0.0,  # resource limits (0: none), read from the collector
    "agent.max_memory_percent": 0.0,
    "agent.warn_cpu_percent": 0.0,
    "agent.warn_memory_percent": 0.0,
    "agent.limit_action": "queue",  # past a limit: queue, reject or throttle
    "agent.throttle_capacity": 0,  # tasks at once while throttled (0: half the capacity)
    "agent.shell_max_memory_mb": 0,  # RLIMIT_AS of shell tasks (0: none)
    "agent.shell_max_cpu_s": 0,  # RLIMIT_CPU of shell tasks (0: none)
    "agent.shell_spares": 2,  # shells started ahead for shell tasks (0: every task forks its own)
    "agent.lua_max_memory_mb": 256,
    "agent.lua_exec": False,  # may Lua tasks use exec.run (shell commands)?
    "agent.lua_fs": False,  # may Lua tasks use fs?
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
        env_key = env_name(key)
        fallback = DEFAULTS.get(key, default)
        if isinstance(fallback, list):
            fallback = list(fallback)  # a caller changing it must not change the default
        if env_key in self.environ:
            return _coerce(self.environ[env_key], fallback, env_key)
        if key in self._file:
            return self._checked(key, self._file[key], fallback)
        return fallback

    def _checked(self, key: str, value: Any, like: Any) -> Any:
        """A file value of a known key, typed like its default (a hand edit may be wrong)."""
        if like is None or key not in DEFAULTS:
            return value
        if isinstance(like, float) and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if type(value) is type(like) or (isinstance(like, list) and isinstance(value, list)):
            return value
        raise ConfigError(
            f"setting {key} in {self.path} is {format_value(value)}, but it takes "
            f"{_KINDS.get(type(like), 'a value')} like {format_value(like)}; fix it with "
            f"`slothlab config set {key}=...` or `slothlab config unset {key}`"
        )

    def source(self, key: str, default: Any = None) -> Source:
        """Where the value of ``key`` comes from: ``env``, ``file``, ``default`` or ``unset``.

        >>> Settings(None, environ={}).source("lua.pool_size")
        'default'
        >>> Settings(None, environ={"SLOTHLAB_LUA_POOL_SIZE": "4"}).source("lua.pool_size")
        'env'
        """
        if env_name(key) in self.environ:
            return "env"
        if key in self._file:
            return "file"
        return "default" if key in DEFAULTS or default is not None else "unset"

    def file_values(self) -> dict[str, Any]:
        """Every key set in the settings file, flattened to dotted keys."""
        return dict(self._file)

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


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The settings file: ``$SLOTHLAB_CONFIG`` or ``<home>/config.toml`` (it may not exist yet).

    >>> config_path({"SLOTHLAB_HOME": "/srv/sl"})
    PosixPath('/srv/sl/config.toml')
    """
    env = os.environ if environ is None else environ
    if env.get("SLOTHLAB_CONFIG"):
        return Path(env["SLOTHLAB_CONFIG"])
    return home_dir(env) / "config.toml"


def env_name(key: str) -> str:
    """The environment variable that overrides ``key``.

    >>> env_name("features.ai_optimization")
    'SLOTHLAB_FEATURES_AI_OPTIMIZATION'
    """
    return "SLOTHLAB_" + key.upper().replace(".", "_").replace("-", "_")


_KEY_PART = re.compile(r"^[A-Za-z0-9_-]+$")


def check_key(key: str) -> str:
    """``key`` if it is a dotted settings key (``section.name``), else a ConfigError.

    >>> check_key("agent.port")
    'agent.port'
    >>> check_key("port")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    slothlab.errors.ConfigError: setting 'port' needs a section: write it as section.key ...
    """
    parts = key.split(".")
    if len(parts) < 2:
        raise ConfigError(
            f"setting {key!r} needs a section: write it as section.key (e.g. agent.port)"
        )
    bad = [p for p in parts if not _KEY_PART.match(p)]
    if bad:
        raise ConfigError(
            f"setting {key!r} has an invalid part {bad[0]!r}: each part between dots uses "
            "only letters, digits, _ and -"
        )
    return key


_NOT_SCALAR = re.compile(r"^\s*[\[{\"']")
_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def parse_value(text: str, like: Any = None, *, key: str = "value") -> Any:
    """A value typed on a command line, as TOML reads it, or checked against ``like``.

    Without ``like``: ``true``/``false``, integers, floats, quoted strings, lists and inline
    tables in TOML syntax; anything else is the plain string. With ``like`` (a known key's
    default) the value must have that type: a boolean, a whole number, a number, a list, or,
    for a string setting, the text itself.

    >>> parse_value("true"), parse_value("8080"), parse_value("0.5"), parse_value("a b")
    (True, 8080, 0.5, 'a b')
    >>> parse_value('["web", "eu"]'), parse_value('"42"')
    (['web', 'eu'], '42')
    >>> parse_value("42", like="")
    '42'
    >>> parse_value("many", like=2, key="lua.pool_size")
    Traceback (most recent call last):
    ...
    slothlab.errors.ConfigError: lua.pool_size='many' is not a whole number; give one like 2
    """
    if isinstance(like, bool):
        if text.strip().lower() in _TRUE | _FALSE:
            return text.strip().lower() in _TRUE
        raise ConfigError(f"{key}={text!r} is not a boolean; use true or false")
    if isinstance(like, str):
        value = _toml_literal(text)
        return value if isinstance(value, str) else text
    value = _toml_literal(text)
    if value is _NO_VALUE:
        if _NOT_SCALAR.match(text):
            raise ConfigError(
                f'{key}={text!r} is not a valid TOML value; quote strings with "..." and '
                'write lists as ["a", "b"]'
            )
        value = text
    if isinstance(like, int) and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{key}={text!r} is not a whole number; give one like {like}")
    if isinstance(like, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}={text!r} is not a number; give one like {like}")
        value = float(value)
    if isinstance(like, list) and not isinstance(value, list):
        raise ConfigError(f'{key}={text!r} is not a list; write it as ["a", "b"]')
    if isinstance(like, int | float) and not isinstance(like, bool):
        _check_range(key, text, value, like)
    return value


def _check_range(key: str, text: str, value: float, like: float) -> None:
    """Every known number is a size, count, time or port: finite and not negative (0: off)."""
    if not value >= 0 or value == float("inf"):
        raise ConfigError(
            f"{key}={text!r} must be a finite number, 0 or more; give one like {like}"
        )
    if key.endswith(".port") and value > 65535:
        raise ConfigError(f"{key}={text!r} is not a port; give one from 0 to 65535")


_NO_VALUE: Any = object()


def _toml_literal(text: str) -> Any:
    try:
        parsed = tomllib.loads(f"v = {text}")
    except tomllib.TOMLDecodeError:
        return _NO_VALUE
    # "1\nother = 2" parses too: only a lone value counts
    return parsed["v"] if list(parsed) == ["v"] else _NO_VALUE


_KINDS = {bool: "a boolean", int: "a whole number", float: "a number", str: "text", list: "a list"}


def format_value(value: Any) -> str:
    """``value`` in TOML syntax, on one line.

    >>> format_value(True), format_value("eu-1"), format_value([1, "a"]), format_value({"x": 1.5})
    ('true', '"eu-1"', '[1, "a"]', '{x = 1.5}')
    """
    import tomli_w

    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, _dt.date | _dt.time):
        return value.isoformat()
    if value is None:
        return "(none)"
    return tomli_w.dumps({"v": value})[len("v = ") :].rstrip("\n")


def set_value(path: Path, key: str, value: Any) -> None:
    """Set ``key`` to ``value`` in the settings file at ``path``, keeping every other key.

    The file is created if missing (mode 0600, its folder too) and replaced atomically: a
    reader sees the old file or the new one, never half of one. Concurrent writers are
    serialised with a lock on the folder.

    Raises:
        ConfigError: the key is malformed or clashes with a section, or the file is not valid
            TOML (it is then left untouched).
    """
    parts = check_key(key).split(".")
    with _locked(path):
        tree = _read_toml(path)
        node = tree
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(
                    f"cannot set {key}: {where} is a value in {path}, not a section; "
                    f"unset {where} first"
                )
            node = child
        if isinstance(node.get(parts[-1]), dict):
            raise ConfigError(f"cannot set {key}: it is a section in {path}; set one of its keys")
        node[parts[-1]] = value
        _write_toml(path, tree)


def unset_value(path: Path, key: str) -> bool:
    """Remove ``key`` from the settings file (and sections it leaves empty); False if absent."""
    parts = check_key(key).split(".")
    with _locked(path):
        tree = _read_toml(path)
        chain: list[dict[str, Any]] = [tree]
        for part in parts[:-1]:
            child = chain[-1].get(part)
            if not isinstance(child, dict):
                return False
            chain.append(child)
        if parts[-1] not in chain[-1] or isinstance(chain[-1][parts[-1]], dict):
            return False
        del chain[-1][parts[-1]]
        for depth in range(len(chain) - 1, 0, -1):
            if not chain[depth]:
                del chain[depth - 1][parts[depth - 1]]
        _write_toml(path, tree)
        return True


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    # flock on the folder: no stray lock file next to the settings.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_toml(path: Path, tree: Mapping[str, Any]) -> None:
    import tomli_w

    text = tomli_w.dumps(tree)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        where = f", line {found[1]}" if found else ""
        raise ConfigError(
            f"settings file {path}{where} is not valid TOML: {exc}; fix or remove it"
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
    if isinstance(like, list):
        return parse_value(raw, like, key=name)
    return raw
