"""Every health check type against real things on loopback: HTTP, TCP, shell, Lua, thresholds."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from slothlab.errors import ConfigError
from slothlab.lua import Runtime
from slothlab.metrics.health import (
    CheckResult,
    CommandCheck,
    HttpCheck,
    LuaCheck,
    Recovery,
    StaticSource,
    TcpCheck,
    ThresholdCheck,
    worst,
)


class _Handler(BaseHTTPRequestHandler):
    release: threading.Event

    def do_GET(self) -> None:
        if self.path == "/hang":  # holds the request until the test releases it
            self.release.wait(10)
        code = 500 if self.path == "/fail" else 200
        body = b"status: healthy\n" if self.path != "/fail" else b"status: broken\n"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    release = threading.Event()
    handler = type("Handler", (_Handler,), {"release": release})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


def _http(url: str, **kwargs: object) -> CheckResult:
    check = HttpCheck("web", url, **kwargs)  # type: ignore[arg-type]
    try:
        return check.run()
    finally:
        check.close()


# -- HTTP -------------------------------------------------------------------------------------


def test_http_ok_with_status_and_body(http_url: str) -> None:
    result = _http(http_url + "/", expected_status=200, body_regex=r"status: \w+y")
    assert result.status == "ok"
    assert result.details["status_code"] == 200
    assert result.message.startswith("HTTP 200 in ")
    assert result.latency_s > 0


def test_http_unexpected_status_is_critical(http_url: str) -> None:
    result = _http(http_url + "/fail")
    assert result.status == "critical"
    assert "HTTP 500" in result.message


def test_http_expected_status_can_be_an_error_code(http_url: str) -> None:
    assert _http(http_url + "/fail", expected_status=[500, 503]).status == "ok"
    assert _http(http_url + "/", expected_status=204).status == "critical"


def test_http_body_mismatch_is_critical(http_url: str) -> None:
    result = _http(http_url + "/", body_regex="^nope$")
    assert result.status == "critical"
    assert "does not match" in result.message


def test_http_latency_thresholds(http_url: str) -> None:
    # Any real request takes longer than a nanosecond, so these thresholds always trip.
    assert _http(http_url + "/", latency_warning_s=1e-9).status == "warning"
    slow = _http(http_url + "/", latency_warning_s=1e-9, latency_critical_s=1e-9)
    assert slow.status == "critical"
    assert "too slow" in slow.message
    assert _http(http_url + "/", latency_warning_s=60).status == "ok"


def test_http_timeout_is_critical(http_url: str) -> None:
    result = _http(http_url + "/hang", timeout_s=0.2)
    assert result.status == "critical"
    assert "timed out" in result.message


def test_http_refused_is_critical(closed_port: int) -> None:
    result = _http(f"http://127.0.0.1:{closed_port}/")
    assert result.status == "critical"
    assert "failed" in result.message


def test_http_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="http:// or https://"):
        HttpCheck("x", "ftp://example")
    with pytest.raises(ConfigError, match="body_regex"):
        HttpCheck("x", "http://127.0.0.1/", body_regex="(")
    with pytest.raises(ConfigError, match="not an HTTP status"):
        HttpCheck("x", "http://127.0.0.1/", expected_status=99)


# -- TCP --------------------------------------------------------------------------------------


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_tcp_listening_port_is_ok(listening_port: int) -> None:
    result = TcpCheck("port", "127.0.0.1", listening_port, timeout_s=2).run()
    assert result.status == "ok"
    assert result.details == {"host": "127.0.0.1", "port": listening_port}


def test_tcp_closed_port_is_critical(closed_port: int) -> None:
    result = TcpCheck("port", "127.0.0.1", closed_port, timeout_s=2).run()
    assert result.status == "critical"
    assert f"127.0.0.1:{closed_port}" in result.message


def test_tcp_bad_port_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="1-65535"):
        TcpCheck("port", "127.0.0.1", 70000)


# -- shell command ----------------------------------------------------------------------------


def test_command_exit_codes() -> None:
    assert CommandCheck("c", "echo fine").run().status == "ok"
    failed = CommandCheck("c", "echo broken >&2; exit 2").run()
    assert failed.status == "critical"
    assert failed.message == "exit 2: broken"
    assert failed.details["exit_code"] == 2
    assert CommandCheck("c", "exit 1", warning_codes=[1]).run().status == "warning"
    assert CommandCheck("c", "exit 1", nagios=True).run().status == "warning"
    assert CommandCheck("c", "exit 3", ok_codes=[0, 3]).run().status == "ok"


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, only not yet reaped


def test_command_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    command = f"sleep 60 & echo $! > {pidfile}; wait"
    result = CommandCheck("c", command, timeout_s=0.5).run()
    assert result.status == "critical"
    assert "timed out" in result.message
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _alive(child), "the command's child survived the timeout"


def test_command_output_is_capped() -> None:
    result = CommandCheck("c", "yes | head -c 200000", output_cap=1000).run()
    assert result.status == "ok"
    kept, _, note = result.details["output"].partition("\n[output truncated: ")
    assert kept == "y\n" * 500 and note == "199000 more bytes]"
    assert result.details["truncated"] is True


def test_command_that_cannot_start(tmp_path: Path) -> None:
    result = CommandCheck("c", "true", cwd=str(tmp_path / "missing")).run()
    assert result.status == "critical"
    assert "could not start" in result.message


# -- Lua --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    return Runtime(output=lambda stream, text: None)


@pytest.mark.parametrize(
    ("code", "status", "message"),
    [
        ("return true, 'queue is short'", "ok", "queue is short"),
        ("return false, 'queue is long'", "critical", "queue is long"),
        ("return 'warning', 'queue grows'", "warning", "queue grows"),
        ("local n = 0 for i = 1, 10 do n = n + i end return n == 55", "ok", "Lua check ok"),
        ("return nil", "critical", "Lua check critical"),
    ],
)
def test_lua_check_results(runtime: Runtime, code: str, status: str, message: str) -> None:
    result = LuaCheck("lua", code, runtime=runtime).run()
    assert (result.status, result.message) == (status, message)


def test_lua_check_details_table(runtime: Runtime) -> None:
    result = LuaCheck("lua", "return true, 'ok', {depth = 3}", runtime=runtime).run()
    assert result.details == {"depth": 3}


def test_lua_error_is_critical_with_its_line(runtime: Runtime) -> None:
    result = LuaCheck("lua", "local x = 1\nerror('boom')", runtime=runtime).run()
    assert result.status == "critical"
    assert "boom" in result.message
    assert "check:lua:2" in result.message


def test_lua_timeout_is_critical(runtime: Runtime) -> None:
    result = LuaCheck("spin", "while true do end", runtime=runtime, timeout_s=0.2).run()
    assert result.status == "critical"
    assert "time limit" in result.message
    # The runtime stays usable for the next check.
    assert LuaCheck("after", "return true", runtime=runtime).run().status == "ok"


def test_lua_odd_first_value_is_critical(runtime: Runtime) -> None:
    result = LuaCheck("lua", "return 42", runtime=runtime).run()
    assert result.status == "critical"
    assert "return true/false" in result.message


def test_lua_check_makes_its_own_sandboxed_runtime() -> None:
    result = LuaCheck("lua", "return os.execute == nil, 'sandboxed'").run()
    assert result.status == "ok"


# -- thresholds -------------------------------------------------------------------------------


def test_threshold_levels() -> None:
    source = StaticSource({"cpu": {"percent": 50.0}})
    check = ThresholdCheck("cpu", "cpu.percent", warning=80, critical=95, source=source)
    assert check.run().status == "ok"
    source.values = {"cpu": {"percent": 80.0}}
    assert check.run().status == "warning"
    source.values = {"cpu": {"percent": 99.5}}
    result = check.run()
    assert result.status == "critical"
    assert result.details["value"] == 99.5


def test_threshold_below() -> None:
    source = StaticSource({"free_gb": 3})
    check = ThresholdCheck("free", "free_gb", warning=10, critical=2, below=True, source=source)
    assert check.run().status == "warning"
    source.values = {"free_gb": 1}
    assert check.run().status == "critical"


def test_threshold_missing_or_bad_value_is_critical() -> None:
    check = ThresholdCheck("x", "nope", critical=1, source=StaticSource({}))
    assert "no value 'nope'" in check.run().message
    bad = ThresholdCheck("x", "v", critical=1, source=StaticSource({"v": "high"}))
    assert bad.run().status == "critical"


def test_threshold_needs_a_limit() -> None:
    with pytest.raises(ConfigError, match="warning=, critical="):
        ThresholdCheck("x", "v", source=StaticSource({}))


# -- common settings --------------------------------------------------------------------------


def test_common_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="interval_s"):
        TcpCheck("t", "127.0.0.1", 1, interval_s=0)
    with pytest.raises(ConfigError, match="failure_threshold"):
        TcpCheck("t", "127.0.0.1", 1, failure_threshold=0)
    with pytest.raises(ConfigError, match="non-empty name"):
        TcpCheck("", "127.0.0.1", 1)
    with pytest.raises(ConfigError, match="exactly one of"):
        Recovery(command="x", lua="y")


def test_result_validates_status_and_worst() -> None:
    with pytest.raises(ValueError, match="not one of"):
        CheckResult("fine")  # type: ignore[arg-type]
    assert worst(["ok", "warning"]) == "warning"


def test_shell_env_is_passed() -> None:
    env = {"PATH": os.environ["PATH"], "PROBE": "yes"}
    result = CommandCheck("c", 'test "$PROBE" = yes', env=env).run()
    assert result.status == "ok"
