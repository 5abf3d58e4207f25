"""Client deadlines, retries and messages against servers that misbehave (no agent needed)."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from slothlab.client import AgentClient, Controller
from slothlab.cluster import free_port
from slothlab.errors import AgentUnreachableError, ClientError


@pytest.fixture
def stalled_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


class _Script(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True  # no 40 ms Nagle + delayed-ACK stall
    answers: ClassVar[list[tuple[int, object]]] = []
    seen: ClassVar[list[str]] = []
    bodies: ClassVar[list[tuple[str, bytes]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.bodies.append((self.headers.get("content-type", ""), self.rfile.read(length)))
        self.seen.append(f"{self.command} {self.path}")
        status, body = self.answers.pop(0) if self.answers else (200, {})
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[tuple[str, type[_Script]]]:
    handler = type("Handler", (_Script,), {"answers": [], "seen": [], "bodies": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _task(state: str = "succeeded") -> dict[str, object]:
    return {"id": "t1", "agent": "a1", "kind": "shell", "state": state, "submitted_at": 1.0}


def test_closed_port_fails_fast_and_names_the_agent() -> None:
    port = free_port()
    client = AgentClient(f"http://127.0.0.1:{port}", "tok", name="web-1", retries=0)
    with pytest.raises(AgentUnreachableError) as err:
        client.info()
    message = str(err.value)
    assert f"agent web-1 at http://127.0.0.1:{port}" in message
    assert "GET /v1/info" in message and "connection refused" in message


def test_stalled_server_gives_up_at_the_read_deadline(stalled_port: int) -> None:
    client = AgentClient(
        f"http://127.0.0.1:{stalled_port}", "tok", name="slow", timeout=(1.0, 0.3), retries=0
    )
    with pytest.raises(AgentUnreachableError) as err:
        client.task("t1")
    assert "no answer within 0.3 s" in str(err.value)
    assert "agent slow" in str(err.value)


def test_wait_on_a_stalled_server_ends_at_its_deadline(stalled_port: int) -> None:
    ctl = Controller(f"http://127.0.0.1:{stalled_port}", "tok", timeout=(1.0, 0.2), retries=0)
    with pytest.raises(AgentUnreachableError, match="master at"):
        ctl.wait("t1", timeout=0.2)


def test_error_body_becomes_a_one_line_message(scripted: tuple[str, type[_Script]]) -> None:
    url, handler = scripted
    handler.answers.append((404, {"error": {"code": "not_found", "message": "no task t9"}}))
    with pytest.raises(ClientError) as err:
        AgentClient(url, "tok", name="a1").task("t9")
    assert err.value.status == 404 and err.value.code == "not_found"
    assert str(err.value) == f"agent a1 at {url}: GET /v1/tasks/t9 failed with 404: no task t9"


def test_get_is_retried_after_503(scripted: tuple[str, type[_Script]]) -> None:
    url, handler = scripted
    handler.answers += [(503, {"error": {"code": "busy", "message": "busy"}}), (200, _task())]
    info = AgentClient(url, "tok").task("t1")
    assert info.state == "succeeded" and handler.seen == ["GET /v1/tasks/t1"] * 2


def test_submit_always_carries_a_key_and_is_retried(scripted: tuple[str, type[_Script]]) -> None:
    url, handler = scripted
    handler.answers += [(503, {"error": {"code": "busy", "message": "busy"}}), (202, _task())]
    info = AgentClient(url, "tok").submit("shell", "true")
    assert info.id == "t1" and handler.seen == ["POST /v1/tasks"] * 2


def test_a_submission_is_json_with_its_fields(scripted: tuple[str, type[_Script]]) -> None:
    url, handler = scripted
    handler.answers += [(202, _task("queued")), (200, {"tasks": [_task(), _task()]})]
    client = AgentClient(url, "tok")
    name = os.fsdecode(b"\xff.txt")  # a file name that is no UTF-8: a surrogate escape
    client.submit("shell", "echo hi", args=[name], env={"A": "1"}, idempotency_key="k1")
    done = client.run_batch([{"kind": "lua", "source": "return 1"}] * 2, timeout=5)
    assert [t.state for t in done] == ["succeeded"] * 2
    (kind, one), (_, batch) = handler.bodies
    assert kind == "application/json"
    sent = {"kind": "shell", "source": "echo hi", "args": [name], "env": {"A": "1"},
            "timeout_s": 60.0, "priority": 0, "idempotency_key": "k1"}  # fmt: skip
    assert json.loads(one) == sent
    keys = [t["idempotency_key"] for t in json.loads(batch)["tasks"]]
    assert len(set(keys)) == 2 and all(len(k) == 32 for k in keys)


def test_a_value_json_cannot_carry_is_refused_before_sending(
    scripted: tuple[str, type[_Script]],
) -> None:
    url, handler = scripted
    with pytest.raises(ClientError, match=r"cannot be sent as JSON .*NaN"):
        AgentClient(url, "tok").submit("lua", "return ...", args=[float("nan")])
    assert handler.seen == []  # not sent, not retried


def test_an_answer_that_is_no_task_is_a_clear_error(scripted: tuple[str, type[_Script]]) -> None:
    url, handler = scripted
    handler.answers += [(200, {"hello": 1}), (200, ["a"])]
    client = AgentClient(url, "tok", name="a1")
    with pytest.raises(ClientError, match=r"GET /v1/tasks/t1 answered 200 with a body that is "
                       r"not a TaskInfo \(id: Field required\)"):  # fmt: skip
        client.task("t1")
    with pytest.raises(ClientError, match="not a TaskInfo"):
        client.task("t1")


def test_post_without_key_is_sent_once(scripted: tuple[str, type[_Script]]) -> None:
    url, handler = scripted
    handler.answers += [(503, {"error": {"code": "busy", "message": "try later"}})]
    ctl = Controller(url, "tok")
    with pytest.raises(ClientError, match="503: try later"):
        ctl.http.json("POST", "/v1/agents/x/heartbeat", json={})
    assert handler.seen == ["POST /v1/agents/x/heartbeat"]


def test_bad_task_fields_are_refused_before_sending() -> None:
    client = AgentClient("http://127.0.0.1:9", "tok")
    with pytest.raises(ClientError, match="bad task: timeout_s"):
        client.submit("shell", "true", timeout_s=-1)


def test_controller_without_a_master_says_how_to_get_one(slothlab_home: object) -> None:
    with pytest.raises(ClientError, match="slothlab up"):
        Controller()


def test_health_503_is_an_answer(scripted: tuple[str, type[_Script]]) -> None:
    url, handler = scripted
    handler.answers.append((503, {"status": "unhealthy", "checks": []}))
    assert AgentClient(url, None).health()["status"] == "unhealthy"


def test_wait_asks_again_after_a_503_until_its_deadline(
    scripted: tuple[str, type[_Script]],
) -> None:
    url, handler = scripted
    busy = {"error": {"code": "agent_unreachable", "message": "agent a1 did not answer"}}
    handler.answers += [(503, busy), (200, _task("running")), (200, _task("succeeded"))]
    info = Controller(url, "tok").wait("t1", timeout=30)
    assert info.state == "succeeded" and len(handler.seen) == 3
    handler.answers += [(503, busy)] * 10
    with pytest.raises(ClientError, match="503: agent a1 did not answer"):
        Controller(url, "tok").wait("t1", timeout=0.2)
