"""Schemathesis against the agent's OpenAPI document: no input may produce a 5xx."""

from __future__ import annotations

import shlex

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from slothlab.agent import Executor, create_app

from .conftest import AUTH, TOKEN

EXECUTOR = Executor("fuzz-agent", capacity=2, kill_grace_s=0.2)
APP = create_app(EXECUTOR, token=TOKEN)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def _stop_executor() -> object:
    yield
    EXECUTOR.shutdown(grace_s=0.0)


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: object) -> None:
    case.headers = {**(case.headers or {}), **AUTH}  # type: ignore[attr-defined]
    body = case.body  # type: ignore[attr-defined]
    if isinstance(body, dict):
        tasks = body.get("tasks") if isinstance(body.get("tasks"), list) else [body]
        for task in tasks:
            _defuse(task)
    case.call_and_validate(checks=[not_a_server_error])  # type: ignore[attr-defined]


def _defuse(task: object) -> None:
    """Random text must not run as a shell command: it becomes the argument of ``:``."""
    if not isinstance(task, dict):
        return
    if isinstance(task.get("source"), str) and task.get("kind") == "shell":
        task["source"] = ": " + shlex.quote(task["source"])
    if "timeout_s" in task or "source" in task:
        task["timeout_s"] = 1.0
