"""The heartbeat fast path: ``POST /v1/agents/{name}/heartbeat`` taken before the framework.

10,000 agents at a 10 s interval are 1,000 heartbeats a second on the master's one event loop.
Through FastAPI's middleware, routing and dependency layers a heartbeat cost the master ~650 µs
of CPU on the 2-core test machine (a bare ASGI round trip there: ~80 µs), so
:class:`MasterAPI` answers the plain case itself: a JSON body with a ``Content-Length`` under the
cap, a valid bearer token, a body :class:`~slothlab.protocol.Heartbeat` validates with finite
numbers, and a registered agent. It updates the registry's in-memory columns and buffers the
metrics (both written to disk by the master's background flush), and answers the same bytes the
route would.

Everything else — a missing or wrong token (401), a malformed, oversized or chunked body
(400/413), an invalid heartbeat (422), an unknown agent (404: it re-registers) — is replayed
into the full app unchanged, so those answers come from the one place that defines them (the
FastAPI route, which also keeps the OpenAPI document). When RBAC lands, :meth:`HeartbeatPath.take`
must check the ``manage-agents`` capability as the route does.

>>> import tempfile
>>> from fastapi.testclient import TestClient
>>> from slothlab.master import Master, MasterConfig, create_app
>>> master = Master(MasterConfig(data_dir=tempfile.mkdtemp(), token="t", history=False))
>>> with TestClient(create_app(master), headers={"Authorization": "Bearer t"}) as client:
...     _ = client.post("/v1/agents/register", json={"name": "a", "url": "u", "version": "1"})
...     fast = client.post("/v1/agents/a/heartbeat", json={"running": 2, "queued": 0})
...     slow = client.post("/v1/agents/nobody/heartbeat", json={"running": 0, "queued": 0})
>>> fast.status_code, fast.json(), master.registry.get("a").running
(200, {'ok': True, 'interval_s': 10.0}, 2)
>>> slow.status_code, slow.json()["error"]["code"]
(404, 'not_found')
"""

from __future__ import annotations

import json
import logging
import math
from typing import TYPE_CHECKING

from fastapi import FastAPI
from pydantic import ValidationError

from slothlab._asgi import plain_json_post, read_body, replay_body
from slothlab.errors import UnknownAgentError
from slothlab.protocol import Heartbeat

if TYPE_CHECKING:
    from starlette.types import Message, Receive, Scope, Send

    from slothlab.master.registry import AgentRegistry
    from slothlab.master.scraper import MetricsIntake
    from slothlab.security import TokenVerifier

__all__ = ["HeartbeatPath", "MasterAPI", "agent_of_heartbeat"]

log = logging.getLogger("slothlab.master")

_PREFIX = "/v1/agents/"
_SUFFIX = "/heartbeat"
_JSON = b"application/json"


def agent_of_heartbeat(path: str) -> str | None:
    """The agent's name when ``path`` is its heartbeat route, else None.

    >>> agent_of_heartbeat("/v1/agents/web-1/heartbeat")
    'web-1'
    >>> agent_of_heartbeat("/v1/agents/a/b/heartbeat") is None, agent_of_heartbeat("/v1/agents")
    (True, None)
    """
    if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
        return None
    name = path[len(_PREFIX) : -len(_SUFFIX)]
    return name if name and "/" not in name else None


class HeartbeatPath:
    """Takes plain heartbeats; hands back the body of every other request for the full app.

    Args:
        registry: where heartbeats land (in memory; flushed to SQLite in the background).
        intake: buffers the metrics for the history (flushed in the background).
        interval_s: the interval the answer tells the agent.
        max_body_bytes: the body cap (larger bodies go to the full app: 413).
    """

    def __init__(
        self,
        registry: AgentRegistry,
        intake: MetricsIntake,
        *,
        interval_s: float,
        max_body_bytes: int,
    ) -> None:
        self.registry = registry
        self.intake = intake
        self.max_body_bytes = max_body_bytes
        self.taken = 0
        reply = json.dumps({"ok": True, "interval_s": interval_s}, separators=(",", ":")).encode()
        self._start: Message = {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", _JSON), (b"content-length", b"%d" % len(reply))],
        }
        self._body: Message = {"type": "http.response.body", "body": reply}

    async def take(
        self, name: str, scope: Scope, receive: Receive, send: Send, verifier: TokenVerifier
    ) -> Receive | None:
        """Answer a plain heartbeat (None), or return the ``receive`` the full app should use."""
        if not plain_json_post(scope, self.max_body_bytes, verifier.check_header):
            return receive
        body = await read_body(receive)
        if body is None:
            return None  # the client went away: nothing to answer
        if not self._record(name, body):
            return replay_body(body, receive)
        await send(self._start)
        await send(self._body)
        return None

    def _record(self, name: str, body: bytes) -> bool:
        try:
            beat = Heartbeat.model_validate_json(body)
        except ValidationError:
            return False  # the full app answers 400 or 422
        if not math.isfinite(sum(beat.metrics.values())):
            return False  # NaN and Infinity are the body guard's 400 (a sum this large: the route)
        try:
            self.registry.heartbeat(name, beat)
            self.intake.receive(name, beat, self.registry.clock())
        except UnknownAgentError:
            return False  # the route's 404 tells the agent to register
        except Exception:  # a bug: the full app answers it with its error body
            log.exception("heartbeat fast path failed for %r", name)
            return False
        self.taken += 1
        return True


class MasterAPI(FastAPI):
    """The master's FastAPI app; ``heartbeats`` (when set) takes plain heartbeats first."""

    heartbeats: HeartbeatPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = self.heartbeats
        if path is not None and scope["type"] == "http" and scope["method"] == "POST":
            name = agent_of_heartbeat(scope["path"])
            if name is not None:
                rest = await path.take(name, scope, receive, send, self.state.verifier)
                if rest is None:
                    return
                receive = rest
        await super().__call__(scope, receive, send)
