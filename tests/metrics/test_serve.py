"""``slothlab metrics serve`` as a real subprocess on a free loopback port."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from slothlab.cli import main
from slothlab.metrics import names as n


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command() -> list[str]:
    tool = Path(sys.executable).with_name("slothlab")
    if tool.exists():
        return [str(tool)]
    return [sys.executable, "-c", "from slothlab.cli import main; main()"]


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [*_command(), "metrics", "serve", "--port", str(port), "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SLOTHLAB_HOME": str(tmp_path)},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            assert proc.poll() is None, f"serve exited: {proc.communicate()}"
            try:
                _get(base + "/")
                break
            except OSError:
                assert time.monotonic() < deadline, "serve did not answer within 30 s"
                time.sleep(0.05)  # polling a port with a deadline, not waiting for state
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, err
    assert f"serving {base}/metrics" in out


def test_metrics_are_served_as_prometheus_text(server: str) -> None:
    status, content_type, body = _get(server + "/metrics")
    assert status == 200
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name for f in text_string_to_metric_families(body.decode())}
    assert {n.CPU_USAGE_RATIO, n.MEMORY_USED_BYTES, n.LOAD1} <= families
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: apt-get install prometheus (.ci/run does it)"
    check = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_rates_appear_once_a_second_sample_is_taken(server: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        _, _, body = _get(server + "/metrics")
        if n.NETWORK_RECEIVE_BYTES_PER_SECOND.encode() in body:
            break
        assert time.monotonic() < deadline, "no rate after 30 s of 0.2 s samples"
        time.sleep(0.05)


def test_index_links_to_metrics_and_json_snapshot_is_served(server: str) -> None:
    status, content_type, body = _get(server + "/")
    assert status == 200 and content_type.startswith("text/html")
    assert b'href="/metrics"' in body
    status, content_type, body = _get(server + "/v1/metrics")
    assert status == 200 and content_type == "application/json"
    assert json.loads(body)["memory"]["total_bytes"] > 0
    status, _, body = _get(server + "/nope")
    assert status == 404 and b"/metrics" in body


def test_a_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["metrics", "serve", "--port", str(port)])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "choose another --port" in result.output
    assert "Traceback" not in result.output


def test_bad_options_are_usage_errors() -> None:
    result = CliRunner().invoke(main, ["metrics", "serve", "--interval", "0"])
    assert result.exit_code == 2 and "--interval" in result.output
