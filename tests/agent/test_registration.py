"""Registration and heartbeats against a fake master on a real socket."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from slothlab.agent import Registrar
from slothlab.agent.registration import backoff_delay
from slothlab.protocol import AgentInfo, Heartbeat

from .conftest import TOKEN, LiveServer


class FakeMaster:
    """Records registrations and heartbeats; can forget agents or fail."""

    def __init__(self) -> None:
        self.known: set[str] = set()
        self.registrations: list[dict[str, Any]] = []
        self.beats: list[dict[str, Any]] = []
        self.tokens: list[str] = []
        self.failing = False
        self.app = FastAPI()

        @self.app.post("/v1/agents/register")
        async def register(request: Request) -> Any:
            if self.failing:
                return JSONResponse({"error": {"code": "x", "message": "down"}}, status_code=503)
            body = AgentInfo.model_validate(await request.json())
            self.tokens.append(request.headers.get("authorization", ""))
            self.known.add(body.name)
            self.registrations.append(body.model_dump())
            return body.model_dump()

        @self.app.post("/v1/agents/{name}/heartbeat")
        async def heartbeat(name: str, request: Request) -> Any:
            if name not in self.known:
                return JSONResponse(
                    {"error": {"code": "not_found", "message": "who?"}}, status_code=404
                )
            self.beats.append(Heartbeat.model_validate(await request.json()).model_dump())
            return {"ok": True}


def info() -> AgentInfo:
    return AgentInfo(name="web-1", url="http://127.0.0.1:1", version="0", tags=["web"], capacity=3)


def beat() -> Heartbeat:
    return Heartbeat(running=1, queued=2, metrics={"cpu_percent": 12.0})


def make(url: str, **kwargs: Any) -> Registrar:
    kwargs.setdefault("interval_s", 5.0)
    return Registrar(url, TOKEN, info, beat, timeout_s=2.0, rng=lambda: 0.0, **kwargs)


def test_registers_then_heartbeats(live: Callable[[Any], LiveServer]) -> None:
    master = FakeMaster()
    server = live(master.app)
    registrar = make(server.url + "/")
    assert registrar.step() == 5.0
    assert master.registrations[0]["name"] == "web-1" and master.registrations[0]["capacity"] == 3
    assert master.tokens == [f"Bearer {TOKEN}"]
    assert registrar.step() == 5.0
    assert master.beats == [{"running": 1, "queued": 2, "metrics": {"cpu_percent": 12.0}}]
    registrar.stop()


def test_forgotten_agent_registers_again(live: Callable[[Any], LiveServer]) -> None:
    master = FakeMaster()
    registrar = make(live(master.app).url)
    registrar.step()
    master.known.clear()  # a master restarted without its registry
    assert registrar.step() == 0.0 and not registrar.registered
    registrar.step()
    assert len(master.registrations) == 2 and registrar.registered
    registrar.step()
    assert len(master.beats) == 1
    registrar.stop()


def test_backs_off_while_the_master_is_away(live: Callable[[Any], LiveServer]) -> None:
    master = FakeMaster()
    server = live(master.app)
    registrar = make(server.url, base_backoff_s=0.5, max_backoff_s=4.0)
    master.failing = True
    delays = [registrar.step() for _ in range(6)]
    assert delays == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]  # jitter 0.5 with rng 0: half of 0.5, 1, 2, 4
    assert "HTTP 503 down" in registrar.last_error
    master.failing = False
    assert registrar.step() == 5.0 and registrar.failures == 0
    registrar.stop()


def test_unreachable_master_is_a_failure_not_a_crash() -> None:
    from slothlab.agent.server import bind

    sock = bind("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()  # nothing listens there now
    registrar = make(url)
    assert registrar.step() > 0
    assert "unreachable" in registrar.last_error and registrar.failures == 1
    registrar.stop()


def test_wrong_token_says_so(live: Callable[[Any], LiveServer]) -> None:
    app = FastAPI()

    @app.post("/v1/agents/register")
    async def register() -> Any:
        return JSONResponse(
            {"error": {"code": "unauthorized", "message": "bad token"}}, status_code=401
        )

    registrar = make(live(app).url)
    registrar.step()
    assert "check --token" in registrar.last_error
    registrar.stop()


def test_thread_keeps_heartbeating(live: Callable[[Any], LiveServer]) -> None:
    from .conftest import wait_until

    master = FakeMaster()
    registrar = make(live(master.app).url, interval_s=0.05).start()
    wait_until(lambda: len(master.beats) >= 3, what="three heartbeats")
    registrar.stop()
    assert len(master.registrations) == 1


@pytest.mark.parametrize(
    ("failures", "expected"), [(1, 1.0), (2, 2.0), (3, 4.0), (6, 30.0), (500, 30.0)]
)
def test_backoff_grows_and_caps(failures: int, expected: float) -> None:
    assert backoff_delay(failures, 1.0, 30.0, 1.0) == expected
