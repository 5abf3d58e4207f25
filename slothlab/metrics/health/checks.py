"""The built-in health checks: thresholds, HTTP, TCP, shell command and Lua.

Every check turns a failed probe into a ``"critical"`` result (never an exception), measures
its own latency and enforces its own ``timeout_s``.

>>> source = StaticSource({"cpu": {"percent": 91.0}})
>>> ThresholdCheck("cpu", "cpu.percent", warning=80, critical=95, source=source).run().status
'warning'
"""

from __future__ import annotations

import math
import re
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from slothlab.errors import ConfigError, LuaError
from slothlab.metrics.health._shell import DEFAULT_OUTPUT_CAP, run_shell
from slothlab.metrics.health.base import Check, CheckResult, Status, is_status

if TYPE_CHECKING:
    import requests

    from slothlab.lua.runtime import Runtime

__all__ = [
    "CommandCheck",
    "HttpCheck",
    "LuaCheck",
    "SnapshotSource",
    "StaticSource",
    "TcpCheck",
    "ThresholdCheck",
]


@runtime_checkable
class SnapshotSource(Protocol):
    """Anything with ``snapshot() -> mapping``: the collector, or a fake in tests."""

    def snapshot(self) -> Mapping[str, Any]:
        """The latest values, as a (possibly nested) mapping."""
        ...


class StaticSource:
    """A :class:`SnapshotSource` of fixed values (set :attr:`values` to change them); for tests.

    >>> StaticSource({"load1": 0.5}).snapshot()
    {'load1': 0.5}
    """

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = dict(values)

    def snapshot(self) -> Mapping[str, Any]:
        """The values given."""
        return self.values


def lookup(snapshot: Mapping[str, Any], key: str) -> list[tuple[str, Any]]:
    """The values at ``key``: a plain key, or a dotted path where ``*`` matches every key.

    Returns ``(path, value)`` pairs; a path that leads nowhere gives none.

    >>> lookup({"memory": {"percent": 40}}, "memory.percent")
    [('memory.percent', 40)]
    >>> lookup({"disk": {"/": {"percent": 40}, "/data": {"percent": 70}}}, "disk.*.percent")
    [('disk./.percent', 40), ('disk./data.percent', 70)]
    """
    if key in snapshot:
        return [(key, snapshot[key])]
    found: list[tuple[str, Any]] = []
    _walk(snapshot, key.split("."), [], found)
    return found


def _walk(node: Any, parts: list[str], path: list[str], found: list[tuple[str, Any]]) -> None:
    if not parts:
        found.append((".".join(path), node))
        return
    if not isinstance(node, Mapping):
        return
    head, rest = parts[0], parts[1:]
    keys = [str(k) for k in node] if head == "*" else [head] if head in node else []
    for k in keys:
        _walk(node[k], rest, [*path, k], found)


class ThresholdCheck(Check):
    """A value from a snapshot source against a warning and a critical threshold.

    Args:
        name: the check's name.
        key: where the value is in the snapshot: a key or a dotted path; a ``*`` part matches
            every key there (``"disk.*.percent"``) and the worst value counts.
        warning: the value at which the check warns (``None``: never).
        critical: the value at which it is critical (``None``: never).
        source: the snapshot source (the collector).
        below: True when *low* values are bad (free space, say): the check warns at or
            below ``warning``.
        unit: shown after the value in the message ("%").
        **options: the common check options (``interval_s``, ``failure_threshold``, ...).
    """

    kind = "threshold"

    def __init__(
        self,
        name: str,
        key: str,
        *,
        warning: float | None = None,
        critical: float | None = None,
        source: SnapshotSource,
        below: bool = False,
        unit: str = "",
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        if warning is None and critical is None:
            raise ConfigError(f"check {name!r}: give warning=, critical= or both")
        self.key, self.source, self.below, self.unit = key, source, below, unit
        self.warning = _number(name, "warning", warning)
        self.critical = _number(name, "critical", critical)

    def _breaches(self, value: float, limit: float | None) -> bool:
        if limit is None:
            return False
        return value <= limit if self.below else value >= limit

    def run(self) -> CheckResult:
        """Read the value (the worst one, when the key has a ``*``) and compare it."""
        start = time.monotonic()
        try:
            found = lookup(self.source.snapshot(), self.key)
            values = [(path, float(v)) for path, v in found if v is not None]
        except (TypeError, ValueError) as exc:
            return _fail(f"value {self.key!r} is not a number: {exc}", start)
        except Exception as exc:  # the source itself failed
            return _fail(f"cannot read {self.key!r}: {type(exc).__name__}: {exc}", start)
        if not values:
            return _fail(f"no value {self.key!r} in the snapshot", start)
        pick = min if self.below else max
        path, value = pick(values, key=lambda pair: pair[1])
        status: Status = "ok"
        if self._breaches(value, self.critical):
            status = "critical"
        elif self._breaches(value, self.warning):
            status = "warning"
        shown = f"{value:g}{self.unit}"
        message = f"{path} = {shown}" + ("" if status == "ok" else f" ({status} threshold)")
        limits = {"warning": self.warning, "critical": self.critical, "below": self.below}
        details = {"value": value, "path": path, **limits}
        return CheckResult(status, message, time.monotonic() - start, details)

    def describe(self) -> dict[str, Any]:
        """Settings plus the key and thresholds."""
        limits = {"warning": self.warning, "critical": self.critical, "below": self.below}
        return {**super().describe(), "key": self.key, **limits}


class HttpCheck(Check):
    """An HTTP request: the status code, optionally a body pattern and the latency.

    Args:
        name: the check's name.
        url: what to request.
        method: the HTTP method.
        expected_status: a code or codes that count as ok (default: any 2xx or 3xx).
        body_regex: a pattern the body must contain (``re.search``).
        latency_warning_s: warn when the response took at least this long.
        latency_critical_s: critical when it took at least this long.
        headers: request headers.
        session: the ``requests.Session`` to use (default: one of the check's own).
        **options: the common check options; ``timeout_s`` bounds the request.
    """

    kind = "http"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        method: str = "GET",
        expected_status: int | Iterable[int] | None = None,
        body_regex: str | None = None,
        latency_warning_s: float | None = None,
        latency_critical_s: float | None = None,
        headers: Mapping[str, str] | None = None,
        session: requests.Session | None = None,
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"check {name!r}: url must start with http:// or https://")
        self.url, self.method = url, method.upper()
        self.expected = _status_codes(name, expected_status)
        self.body_pattern = _compile(name, body_regex)
        self.latency_warning_s = _number(name, "latency_warning_s", latency_warning_s)
        self.latency_critical_s = _number(name, "latency_critical_s", latency_critical_s)
        self.headers = dict(headers or {})
        self._session = session
        self._owns_session = session is None

    def _get_session(self) -> requests.Session:
        if self._session is None:
            import requests

            self._session = requests.Session()
        return self._session

    def run(self) -> CheckResult:
        """Make the request and judge the response."""
        import requests

        start = time.monotonic()
        try:
            response = self._get_session().request(
                self.method, self.url, headers=self.headers, timeout=self.timeout_s
            )
            body = response.text
        except requests.Timeout:
            return _fail(f"{self.method} {self.url} timed out after {self.timeout_s:g} s", start)
        except requests.RequestException as exc:
            return _fail(f"{self.method} {self.url} failed: {_first_line(exc)}", start)
        latency = time.monotonic() - start
        details = {"status_code": response.status_code, "url": self.url}
        return self._judge(response.status_code, body, latency, details)

    def _judge(self, code: int, body: str, latency: float, details: dict[str, Any]) -> CheckResult:
        took = f"{latency * 1000:.0f} ms"
        if not self._status_ok(code):
            wanted = sorted(self.expected) if self.expected else "2xx/3xx"
            return CheckResult("critical", f"HTTP {code} (expected {wanted})", latency, details)
        if self.body_pattern and not self.body_pattern.search(body):
            pattern = self.body_pattern.pattern
            message = f"HTTP {code}, but the body does not match {pattern!r}"
            return CheckResult("critical", message, latency, details)
        status: Status = "ok"
        if self.latency_critical_s is not None and latency >= self.latency_critical_s:
            status = "critical"
        elif self.latency_warning_s is not None and latency >= self.latency_warning_s:
            status = "warning"
        suffix = "" if status == "ok" else " (too slow)"
        return CheckResult(status, f"HTTP {code} in {took}{suffix}", latency, details)

    def close(self) -> None:
        """Close the check's own session (a session that was passed in is left open)."""
        if self._owns_session and self._session is not None:
            self._session.close()
            self._session = None

    def _status_ok(self, code: int) -> bool:
        return code in self.expected if self.expected else 200 <= code < 400

    def describe(self) -> dict[str, Any]:
        """Settings plus the URL."""
        return {**super().describe(), "url": self.url, "method": self.method}


class TcpCheck(Check):
    """A TCP connect to ``host:port`` within ``timeout_s``.

    >>> TcpCheck("db", "127.0.0.1", 5432).describe()["port"]
    5432
    """

    kind = "tcp"

    def __init__(self, name: str, host: str, port: int, **options: Any) -> None:
        super().__init__(name, **options)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ConfigError(f"check {name!r}: port must be a whole number 1-65535, got {port!r}")
        self.host, self.port = host, port

    def run(self) -> CheckResult:
        """Open and close a connection."""
        start = time.monotonic()
        target = f"{self.host}:{self.port}"
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout_s):
                pass
        except TimeoutError:
            return _fail(f"connect to {target} timed out after {self.timeout_s:g} s", start)
        except OSError as exc:
            return _fail(f"connect to {target} failed: {exc.strerror or exc}", start)
        latency = time.monotonic() - start
        message = f"{target} accepts connections ({latency * 1000:.1f} ms)"
        return CheckResult("ok", message, latency, {"host": self.host, "port": self.port})

    def describe(self) -> dict[str, Any]:
        """Settings plus the target."""
        return {**super().describe(), "host": self.host, "port": self.port}


class CommandCheck(Check):
    """A shell command judged by its exit code.

    Exit codes in ``ok_codes`` are ok, those in ``warning_codes`` a warning, any other (and a
    timeout, which kills the command's whole process group) critical. With ``nagios=True`` the
    Nagios plugin convention applies: 0 ok, 1 warning, anything else critical.

    >>> CommandCheck("true", "exit 0").run().status
    'ok'
    """

    kind = "command"

    def __init__(
        self,
        name: str,
        command: str,
        *,
        ok_codes: Iterable[int] = (0,),
        warning_codes: Iterable[int] = (),
        nagios: bool = False,
        output_cap: int = DEFAULT_OUTPUT_CAP,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        if not isinstance(command, str) or not command.strip():
            raise ConfigError(f"check {name!r}: command must be a non-empty string")
        self.command = command
        self.ok_codes = frozenset(ok_codes)
        self.warning_codes = frozenset((1,) if nagios else warning_codes)
        self.output_cap, self.env, self.cwd = output_cap, env, cwd

    def run(self) -> CheckResult:
        """Run the command and judge its exit code."""
        out = run_shell(
            self.command,
            timeout_s=self.timeout_s,
            output_cap=self.output_cap,
            env=self.env,
            cwd=self.cwd,
        )
        details = {"exit_code": out.exit_code, "output": out.output, "truncated": out.truncated}
        if out.error:
            return CheckResult("critical", f"could not start: {out.error}", out.elapsed_s, details)
        if out.timed_out:
            message = f"timed out after {self.timeout_s:g} s (process group killed)"
            return CheckResult("critical", message, out.elapsed_s, details)
        status: Status = "critical"
        if out.exit_code in self.ok_codes:
            status = "ok"
        elif out.exit_code in self.warning_codes:
            status = "warning"
        line = _first_line(out.output.strip()) or "no output"
        return CheckResult(status, f"exit {out.exit_code}: {line}", out.elapsed_s, details)

    def describe(self) -> dict[str, Any]:
        """Settings plus the command."""
        return {**super().describe(), "command": self.command}


RuntimeFactory = Callable[[], "Runtime"]


class LuaCheck(Check):
    """A Lua chunk on a :class:`~slothlab.lua.Runtime` returning ``ok, message[, details]``.

    ``ok`` may be a boolean (true: ok, false: critical) or a status string (``"ok"``,
    ``"warning"``, ``"critical"``). A Lua error or a timeout is critical.

    Args:
        name: the check's name.
        code: the Lua chunk.
        runtime: a runtime, or a function making one (default: a sandboxed ``Runtime()``,
            created at the first run and kept).
        **options: the common check options; ``timeout_s`` bounds the chunk.
    """

    kind = "lua"

    def __init__(
        self,
        name: str,
        code: str,
        *,
        runtime: Runtime | RuntimeFactory | None = None,
        **options: Any,
    ) -> None:
        super().__init__(name, **options)
        if not isinstance(code, str) or not code.strip():
            raise ConfigError(f"check {name!r}: code must be a non-empty Lua chunk")
        self.code = code
        self._runtime_or_factory = runtime
        self._runtime: Runtime | None = None

    def _get_runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = _make_runtime(self._runtime_or_factory)
        return self._runtime

    def run(self) -> CheckResult:
        """Run the chunk and read its results."""
        start = time.monotonic()
        try:
            values = self._get_runtime().execute(
                self.code, f"check:{self.name}", timeout_s=self.timeout_s
            )
        except LuaError as exc:
            return _fail(f"Lua error: {exc}", start)
        return _lua_result(values, time.monotonic() - start)

    def describe(self) -> dict[str, Any]:
        """Settings (the code is not repeated)."""
        return super().describe()


def _make_runtime(given: Runtime | RuntimeFactory | None) -> Runtime:
    from slothlab.lua.runtime import Runtime

    if isinstance(given, Runtime):
        return given
    return given() if given is not None else Runtime(output=lambda stream, text: None)


def _lua_result(values: list[Any], latency: float) -> CheckResult:
    first = values[0] if values else None
    message = str(values[1]) if len(values) > 1 and values[1] is not None else ""
    details = values[2] if len(values) > 2 and isinstance(values[2], dict) else {}
    status: Status
    if first is True:
        status = "ok"
    elif first is False or first is None:
        status = "critical"
    elif is_status(first):
        status = first
    else:
        text = f"the chunk returned {first!r}; return true/false or 'ok'/'warning'/'critical'"
        return CheckResult("critical", text, latency)
    return CheckResult(status, message or f"Lua check {status}", latency, details)


def _fail(message: str, start: float) -> CheckResult:
    return CheckResult("critical", message, time.monotonic() - start)


def _first_line(value: object) -> str:
    return str(value).splitlines()[0] if str(value) else ""


def _number(name: str, what: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"check {name!r}: {what} must be a number, got {value!r}")
    return float(value)


def _status_codes(name: str, value: int | Iterable[int] | None) -> frozenset[int]:
    codes = () if value is None else (value,) if isinstance(value, int) else tuple(value)
    for code in codes:
        if not isinstance(code, int) or not 100 <= code <= 599:
            raise ConfigError(f"check {name!r}: expected_status {code!r} is not an HTTP status")
    return frozenset(codes)


def _compile(name: str, pattern: str | None) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"check {name!r}: body_regex {pattern!r} is invalid: {exc}") from None
