"""Schemathesis against the master's OpenAPI document: no input may produce a 5xx.

The one 5xx allowed is 503 "no agent" / "agent unreachable": a task no live agent can take.

Agent URLs in generated bodies are pointed at a closed loopback port, so the master never tries
an address off this machine; shell sources become harmless arguments of ``:``.
"""

from __future__ import annotations

import shlex
import tempfile
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from slothlab.master import Master, MasterConfig, create_app

from .conftest import AUTH, TOKEN, closed_port

NOWHERE = f"http://127.0.0.1:{closed_port()}"


class _LongLivedMaster(Master):
    """Schemathesis runs the app's lifespan around each call; keep the master open between."""

    def close(self) -> None:
        pass


MASTER = _LongLivedMaster(
    MasterConfig(
        data_dir=tempfile.mkdtemp(prefix="slothlab-fuzz-master-"),
        token=TOKEN,
        connect_timeout_s=0.2,
        read_timeout_s=0.5,
    )
)
APP = create_app(MASTER)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def _close_master() -> Any:
    yield
    Master.close(MASTER)


@schema.parametrize()
@settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: Any) -> None:
    case.headers = {**(case.headers or {}), **AUTH}
    _defuse(case.body)
    response = case.call()
    if response.status_code == 503:  # no live agent for the task: the master's honest answer
        assert response.json()["error"]["code"] in {"no_agent", "agent_unreachable"}
        return
    case.validate_response(response, checks=[not_a_server_error])


def _defuse(body: Any) -> None:
    if isinstance(body, list):
        for item in body:
            _defuse(item)
        return
    if not isinstance(body, dict):
        return
    if "url" in body:
        body["url"] = NOWHERE
    if body.get("kind") == "shell" and isinstance(body.get("source"), str):
        body["source"] = ": " + shlex.quote(body["source"])
    if "timeout_s" in body:
        body["timeout_s"] = 1.0
    for value in body.values():
        if isinstance(value, dict | list):
            _defuse(value)
