"""The client's HTTP transport: settings read from the environment once, params encoded."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from slothlab._client_http import Transport


class _Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "auth": self.headers.get("Authorization")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echo() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_netrc_entry_does_not_replace_the_bearer_token(
    echo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HOME", str(tmp_path))
    http = Transport(echo, "tok", label="agent a")
    assert http.json("GET", "/x")["auth"] == "Bearer tok"  # requests alone would send Basic
    http.close()


def test_proxy_settings_are_read_when_the_client_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    far = Transport("http://agents.example:8701", "t", label="agent far")
    near = Transport("http://internal.example:8701", "t", label="agent near")
    assert far.session.proxies.get("http") == "http://proxy.example:3128"
    assert "http" not in near.session.proxies  # NO_PROXY is honoured
    assert far.session.verify == "/etc/ssl/certs/ca-certificates.crt"
    assert not far.session.trust_env  # not read again on every request
    far.close()
    near.close()


def test_params_are_encoded_as_requests_would(echo: str) -> None:
    http = Transport(echo, "tok", label="agent a")
    params = {"wait": 2.5, "state": None, "tag": ["a b", "c"], "q": "x&y"}
    assert http.json("GET", "/v1/tasks", params=params)["path"] == (
        "/v1/tasks?wait=2.5&tag=a+b&tag=c&q=x%26y"
    )
    assert http.json("GET", "/v1/tasks?limit=3", params={"wait": 1})["path"] == (
        "/v1/tasks?limit=3&wait=1"
    )
    http.close()
