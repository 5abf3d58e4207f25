"""The submission fast path answers plain submissions; everything else reaches the routes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from slothlab._asgi import check_json
from slothlab.agent import Executor, create_app
from slothlab.agent._fast import AgentAPI, _nesting
from slothlab.protocol import TaskInfo

from .conftest import AUTH, TOKEN

Make = Callable[..., Executor]


@pytest.fixture
def app(executor: Executor) -> AgentAPI:
    made = create_app(executor, token=TOKEN)
    assert isinstance(made, AgentAPI) and made.fast_path is not None
    return made


@pytest.fixture
def fast(app: AgentAPI) -> Iterator[TestClient]:
    with TestClient(app, headers=AUTH) as client:
        yield client


def taken(app: AgentAPI) -> int:
    assert app.fast_path is not None
    return app.fast_path.taken


def test_plain_submissions_take_the_fast_path(app: AgentAPI, fast: TestClient) -> None:
    queued = fast.post("/v1/tasks", json={"kind": "shell", "source": "echo hi", "name": "n"})
    assert queued.status_code == 202 and TaskInfo.model_validate(queued.json()).name == "n"
    waited = fast.post("/v1/tasks", params={"wait": 20}, json={"kind": "lua", "source": "return 2"})
    assert waited.status_code == 200 and waited.json()["result"] == [2]
    batch = {"tasks": [{"kind": "shell", "source": f"echo {i}", "agent": "x"} for i in range(3)]}
    done = fast.post("/v1/tasks:batch", params={"wait": 20}, json=batch)
    assert done.status_code == 200
    assert [t["stdout"] for t in done.json()["tasks"]] == ["0\n", "1\n", "2\n"]
    assert taken(app) == 3
    again = fast.post("/v1/tasks", params={"wait": 0}, json={"kind": "shell", "source": "true"})
    assert again.status_code == 202 and taken(app) == 4


@pytest.mark.parametrize(
    ("headers", "query", "body", "status"),
    [
        ({"Authorization": "Bearer wrong"}, "", b'{"kind": "shell", "source": "true"}', 401),
        ({}, "", b'{"kind": "shell", "source": "true"', 400),  # malformed
        ({}, "", b'{"kind": "lua", "source": "x", "args": [NaN]}', 400),
        ({}, "", b'{"kind": "lua", "source": "x", "args": ' + b"[" * 70 + b"]" * 70 + b"}", 400),
        ({}, "", b'{"kind": "perl", "source": "x"}', 422),
        ({}, "", b'{"kind": "shell", "source": "x", "extra": 1}', 422),
        ({}, "?wait=61", b'{"kind": "shell", "source": "true"}', 422),
        ({}, "?wait=nan", b'{"kind": "shell", "source": "true"}', 422),
        ({"Content-Type": "text/plain"}, "", b'{"kind": "shell", "source": "true"}', 422),
    ],
)
def test_everything_else_is_answered_by_the_routes(
    app: AgentAPI, fast: TestClient, headers: dict[str, str], query: str, body: bytes, status: int
) -> None:
    sent = {"Content-Type": "application/json", **headers}
    response = fast.post("/v1/tasks" + query, content=body, headers=sent)
    assert response.status_code == status, response.text
    assert "error" in response.json() and taken(app) == 0


def test_unusual_but_valid_submissions_still_run(app: AgentAPI, fast: TestClient) -> None:
    # a query the fast path does not know, and "NaN" inside a string: the route runs them
    odd = fast.post("/v1/tasks?wait=20&x=1", json={"kind": "lua", "source": "return 'NaN'"})
    assert odd.status_code == 200 and odd.json()["result"] == ["NaN"]
    assert taken(app) == 0


def test_executor_refusals_come_from_the_app_handlers(make_executor: Make) -> None:
    executor = make_executor(capacity=1, max_queue=0)
    app = create_app(executor, token=TOKEN)
    with TestClient(app, headers=AUTH) as client:
        response = client.post("/v1/tasks", json={"kind": "shell", "source": "true"})
        executor.shutdown(grace_s=0.0)
        closing = client.post("/v1/tasks:batch", json={"tasks": [{"kind": "lua", "source": "1"}]})
    assert response.status_code == 429 and response.json()["error"]["code"] == "queue_full"
    assert response.headers["retry-after"] == "1"
    assert closing.status_code == 503 and "shutting down" in closing.json()["error"]["message"]
    assert isinstance(app, AgentAPI) and taken(app) == 0


BODIES = [
    b'{"kind":"shell","source":"true","kind":"lua"}',  # a duplicate key: the last one counts
    b'\xef\xbb\xbf{"kind":"lua","source":"return 1"}',  # a byte order mark
    b'{"kind":"lua","source":"return 1","name":"\\ud800"}',  # a lone surrogate
    b'{"kind":"lua","source":"return \xff"}',  # not UTF-8
    b'{"kind":"lua","source":"return 1","args":[1e400]}',
    b'{"kind":"lua","source":"return 1","args":[123456789012345678901234567890]}',
    b'{"kind":"lua","source":"return 1","timeout_s":"5","priority":1.0}',  # lax numbers
    b'{"kind":"lua","source":"return NaN"}',  # the word inside a string
]


@pytest.mark.parametrize("body", BODIES)
def test_the_fast_path_and_the_route_agree(make_executor: Make, body: bytes) -> None:
    answers = []
    for fast_path in (True, False):
        executor = make_executor(capacity=1)
        app = create_app(executor, token=TOKEN)
        assert isinstance(app, AgentAPI)
        if not fast_path:
            app.fast_path = None
        headers = {**AUTH, "Content-Type": "application/json"}
        with TestClient(app) as client:
            response = client.post("/v1/tasks", content=body, headers=headers)
        tasks = executor.recent()
        assert all(t.wait(30) for t in tasks)  # ended before the executor is shut down
        request = tasks[0].request.model_dump() if tasks else None
        answers.append((response.status_code, request))
    assert answers[0] == answers[1]


@pytest.mark.parametrize("levels", range(58, 68))
@pytest.mark.parametrize("tail", ["", "1", '"]]]"'])
def test_nesting_near_the_limit_gets_the_same_answer_as_the_body_guard(
    app: AgentAPI, fast: TestClient, levels: int, tail: str
) -> None:
    # the fast path bounds the nesting with a regex, the guard parses: they must agree at the edge
    args = "[" * levels + tail + "]" * levels
    body = f'{{"tasks": [{{"kind": "shell", "source": "true", "args": [{args}]}}]}}'.encode()
    sent = {"Content-Type": "application/json"}
    response = fast.post("/v1/tasks:batch", content=body, headers=sent)
    refused = check_json(body) is not None
    assert response.status_code == (400 if refused else 202), response.text
    assert taken(app) == (0 if refused else 1)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\n'),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=30,
)


@given(value=_JSON, limit=st.integers(min_value=1, max_value=8))
def test_the_nesting_bound_never_passes_what_the_guard_refuses(value: object, limit: int) -> None:
    body = json.dumps(value).encode()
    if _nesting(body, limit) < limit:  # the fast path skips the full check only here
        assert check_json(body, limit) is None


def test_a_crafted_unterminated_string_does_not_hang_the_nesting_bound() -> None:
    # One escaped quote after another, never closed: a backtracking regex tries each as a new
    # string start (hours for this body); the bound must stay linear. A hang guard, not a timing.
    script = (
        "from slothlab.agent._fast import _nesting\n"
        "body = b'[' * 64 + b'\"' + b'\\\\\"' * 1_000_000\n"
        "print(_nesting(body, 64))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "65"  # unbalanced: the full check decides
