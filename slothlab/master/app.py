"""The master's ASGI app: registry, dispatch, state, metrics history and a minimal page.

>>> from fastapi.testclient import TestClient
>>> import tempfile
>>> master = Master(MasterConfig(data_dir=tempfile.mkdtemp(), token="t"))
>>> with TestClient(create_app(master)) as client:
...     client.get("/health").json()["status"]
'ok'
"""

from __future__ import annotations

import html
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from slothlab import __version__
from slothlab._asgi import BodyGuard, error_response, install_error_handlers, require
from slothlab.config import Settings, home_dir, load_settings
from slothlab.errors import (
    AgentUnreachableError,
    NoAgentError,
    UnknownAgentError,
    UnknownStrategyError,
)
from slothlab.master._agents_http import AgentsHTTP
from slothlab.master.dispatcher import Dispatcher, _TaskNotFound
from slothlab.master.intake import HeartbeatPath, MasterAPI
from slothlab.master.registry import AgentRegistry
from slothlab.master.scraper import MetricsIntake
from slothlab.master.state_api import CallerStore
from slothlab.master.state_api import router as state_router
from slothlab.master.tasks import TaskTable
from slothlab.protocol import (
    MAX_WAIT_S,
    TERMINAL_STATES,
    AgentInfo,
    BatchRequest,
    BatchResponse,
    DispatchRequest,
    Heartbeat,
    Selection,
    SelectRequest,
    TaskInfo,
    TaskList,
)
from slothlab.security import TokenVerifier

__all__ = ["ARROW_STREAM", "Master", "MasterConfig", "create_app", "dashboard_app", "page_html"]

ARROW_STREAM = "application/vnd.apache.arrow.stream"


@dataclass
class MasterConfig:
    """What a master needs; :meth:`from_settings` fills it from the settings.

    Attributes:
        data_dir: where ``master.db``, ``state.db`` and ``history.duckdb`` live.
        token: the cluster token.
        heartbeat_interval_s: how often agents heartbeat.
        unknown_after_missed: missed heartbeats before an agent is ``unknown``.
        dead_after_s: silence before an agent is ``dead`` (its tasks are then ``lost``).
        connect_timeout_s / read_timeout_s: dispatch timeouts.
        max_failover: agents one task may be tried on.
        flush_interval_s: how often heartbeats reach SQLite and DuckDB.
        clock: wall-clock seconds (tests pass a fake one).
        history: open the DuckDB history (off for tests that do not need it).
    """

    data_dir: str | Path
    token: str
    heartbeat_interval_s: float = 10.0
    unknown_after_missed: int = 3
    dead_after_s: float = 60.0
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 10.0
    max_failover: int = 3
    flush_interval_s: float = 1.0
    clock: Callable[[], float] = field(default=time.time)
    history: bool = True

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, *, data_dir: str | Path | None = None, token: str
    ) -> MasterConfig:
        """The settings' ``master.*`` values (``data_dir`` overrides ``master.data_dir``)."""
        s = settings or load_settings()
        chosen = data_dir or s.get("master.data_dir") or home_dir(s.environ)
        return cls(
            data_dir=chosen,
            token=token,
            heartbeat_interval_s=float(s.get("master.heartbeat_interval_s")),
            unknown_after_missed=int(s.get("master.unknown_after_missed")),
            dead_after_s=float(s.get("master.dead_after_s")),
            connect_timeout_s=float(s.get("master.connect_timeout_s")),
            read_timeout_s=float(s.get("master.read_timeout_s")),
            max_failover=int(s.get("master.max_failover")),
        )


class Master:
    """Every part of a master, opened on ``data_dir``; :meth:`close` flushes and closes them."""

    def __init__(self, config: MasterConfig) -> None:
        self.config = config
        data = Path(config.data_dir).expanduser()
        data.mkdir(parents=True, exist_ok=True)
        self.data_dir = data
        unknown_after = config.heartbeat_interval_s * config.unknown_after_missed
        self.registry = AgentRegistry(
            data / "master.db",
            clock=config.clock,
            unknown_after_s=unknown_after,
            dead_after_s=max(config.dead_after_s, unknown_after),
        )
        self.tasks = TaskTable(data / "master.db")
        self.http = AgentsHTTP(
            config.token,
            connect_timeout_s=config.connect_timeout_s,
            read_timeout_s=config.read_timeout_s,
        )
        self.dispatcher = Dispatcher(
            self.registry,
            self.tasks,
            self.http,
            clock=config.clock,
            max_failover=config.max_failover,
        )
        self.store = CallerStore(data / "state.db", clock=config.clock)
        self.history: Any = None
        if config.history:
            from slothlab.metrics import MetricsHistory

            self.history = MetricsHistory(data / "history.duckdb")
        self.intake = MetricsIntake(self.history)
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    def flush(self) -> None:
        """Heartbeats to SQLite, metrics to DuckDB."""
        self.registry.flush()
        self.intake.flush()

    def start(self) -> None:
        """Start the background flusher (every ``flush_interval_s``)."""
        if self._flusher is None:
            self._flusher = threading.Thread(target=self._run, name="master-flusher", daemon=True)
            self._flusher.start()

    def _run(self) -> None:
        while not self._stop.wait(self.config.flush_interval_s):
            try:
                self.flush()
            except Exception:  # keep flushing; the next round retries
                import logging

                logging.getLogger("slothlab.master").exception("background flush failed")

    def close(self) -> None:
        """Stop the flusher, flush everything, close the files. Safe to call twice."""
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join()
            self._flusher = None
        if getattr(self, "_closed", False):
            return
        self._closed = True
        self.dispatcher.close()
        self.flush()
        self.registry.close()
        self.tasks.close()
        self.store.close()
        if self.history is not None:
            self.history.close()


class QueryBody(BaseModel):
    """``POST /v1/query``: one read-only SQL statement over the metrics history."""

    model_config = ConfigDict(extra="forbid")
    sql: str = Field(min_length=1, max_length=100_000)
    params: list[Any] | dict[str, Any] | None = None


def create_app(master: Master, *, max_body_bytes: int = 2 << 20) -> Any:
    """The master's FastAPI app (wrapped in the body guard) over ``master``.

    The app starts the master's flusher when it starts and closes the master when it stops.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        master.start()
        try:
            yield
        finally:
            master.close()

    app = MasterAPI(title="slothlab master", version=__version__, lifespan=lifespan)
    app.state.verifier = TokenVerifier.for_token(master.config.token)
    app.state.store = master.store
    app.state.master = master
    install_error_handlers(app)
    _install_master_errors(app)
    _agent_routes(app, master)
    _task_routes(app, master)
    _query_route(app, master)
    app.include_router(state_router())
    _page_route(app, master)
    app.add_middleware(BodyGuard, max_body_bytes=max_body_bytes)
    app.heartbeats = HeartbeatPath(  # plain heartbeats skip the framework (intake.py)
        master.registry,
        master.intake,
        interval_s=master.config.heartbeat_interval_s,
        max_body_bytes=max_body_bytes,
    )
    return app


def _install_master_errors(app: FastAPI) -> None:
    statuses: list[tuple[type[Exception], int, str]] = [
        (UnknownAgentError, 404, "not_found"),
        (_TaskNotFound, 404, "not_found"),
        (UnknownStrategyError, 400, "unknown_strategy"),
        (NoAgentError, 503, "no_agent"),
        (AgentUnreachableError, 503, "agent_unreachable"),
    ]
    for cls, status, code in statuses:

        async def handler(request: Request, exc: Exception, s: int = status, c: str = code) -> Any:
            return error_response(s, c, str(exc))

        app.add_exception_handler(cls, handler)


def require_inline(capability: str) -> Any:
    """:func:`~slothlab._asgi.require` run inline on the event loop (an async dependency).

    The check is a hash and a constant-time compare; as a sync dependency FastAPI would send it
    to the thread pool, which halves the heartbeat rate the master takes.
    """
    check = require(capability)

    async def inline(request: Request) -> str:
        return check(request)  # type: ignore[no-any-return]

    inline.capability = capability  # type: ignore[attr-defined]
    return inline


def _agent_routes(app: FastAPI, master: Master) -> None:
    registry = master.registry
    intake = master.intake
    manage = [Depends(require("manage-agents"))]
    read = [Depends(require("read-metrics"))]

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "role": "master", "agents": len(registry)}

    @app.get("/v1/info", dependencies=read)
    def info() -> dict[str, Any]:
        return {
            "role": "master",
            "version": __version__,
            "agents": len(registry),
            "data_dir": str(master.data_dir),
            "heartbeat_interval_s": master.config.heartbeat_interval_s,
            "unknown_after_s": registry.unknown_after_s,
            "dead_after_s": registry.dead_after_s,
        }

    @app.post("/v1/agents/register", dependencies=manage, status_code=201)
    def register(info: AgentInfo) -> AgentInfo:
        stored = registry.register(info)
        snapshot = Heartbeat(running=info.running, queued=info.queued, metrics=info.metrics)
        intake.receive(info.name, snapshot, registry.clock())  # registration carries metrics too
        return stored

    @app.post(
        "/v1/agents/{name}/heartbeat", dependencies=[Depends(require_inline("manage-agents"))]
    )
    async def heartbeat(name: str, beat: Heartbeat) -> dict[str, Any]:
        registry.heartbeat(name, beat)
        intake.receive(name, beat, registry.clock())
        return {"ok": True, "interval_s": master.config.heartbeat_interval_s}

    @app.get("/v1/agents", dependencies=read)
    def agents() -> dict[str, list[AgentInfo]]:
        return {"agents": registry.list()}

    @app.get("/v1/agents/{name}", dependencies=read)
    def agent(name: str) -> AgentInfo:
        return registry.get(name)

    @app.delete("/v1/agents/{name}", dependencies=manage)
    def remove(name: str) -> dict[str, bool]:
        if not registry.remove(name):
            raise UnknownAgentError(f"no agent named {name!r}")
        return {"deleted": True}

    @app.post("/v1/select", dependencies=[Depends(require_inline("read-metrics"))])
    async def select(request: SelectRequest) -> Selection:
        return registry.select(request)


def _task_routes(app: FastAPI, master: Master) -> None:
    d = master.dispatcher
    submit = [Depends(require("exec-shell"))]
    read = [Depends(require("read-metrics"))]

    @app.post(
        "/v1/tasks",
        dependencies=submit,
        status_code=202,
        response_model=TaskInfo,
        responses={200: {"model": TaskInfo, "description": "finished within ?wait"}},
    )
    def dispatch(request: DispatchRequest, wait: float = _WAIT) -> Response:
        """Send a task to an agent; 202 with it, or 200 once it finished within ``?wait=S``."""
        info = d.dispatch(request, wait)
        return _model_response(info, 200 if wait > 0 and info.state in TERMINAL_STATES else 202)

    @app.post(
        "/v1/tasks:batch",
        dependencies=submit,
        status_code=202,
        response_model=BatchResponse,
        responses={200: {"model": BatchResponse, "description": "all finished within ?wait"}},
    )
    def dispatch_batch(request: BatchRequest, wait: float = _WAIT) -> Response:
        """Send tasks (one request per agent); 200 once all finished within ``?wait=S``."""
        infos = d.dispatch_many(request.tasks, wait)
        done = wait > 0 and all(i.state in TERMINAL_STATES for i in infos)
        return _model_response(BatchResponse(tasks=infos), 200 if done else 202)

    @app.get("/v1/tasks", dependencies=read)
    def tasks(state: str | None = None, limit: int = 100) -> TaskList:
        return TaskList(tasks=d.recent(state, max(1, min(limit, 1000))))

    @app.get("/v1/tasks/{task_id}", dependencies=read)
    def task(task_id: str, wait: float = 0.0) -> TaskInfo:
        return d.status(task_id, max(0.0, min(wait, 300.0)))

    @app.delete("/v1/tasks/{task_id}", dependencies=submit)
    def cancel(task_id: str) -> TaskInfo:
        return d.cancel(task_id)

    @app.get("/v1/tasks/{task_id}/logs", dependencies=read)
    def logs(task_id: str) -> StreamingResponse:
        upstream = d.logs(task_id)

        def relay() -> Iterator[bytes]:
            try:
                yield from upstream.iter_content(chunk_size=None)
            finally:
                upstream.close()

        return StreamingResponse(relay(), media_type="text/event-stream")


_WAIT = Query(0.0, ge=0, le=MAX_WAIT_S, description="seconds to wait for the end (at most 60)")


def _model_response(model: BaseModel, status: int) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


def _query_route(app: FastAPI, master: Master) -> None:
    @app.post("/v1/query", dependencies=[Depends(require("read-metrics"))])
    def query(body: QueryBody, request: Request) -> Any:
        history = master.history
        if history is None:
            return error_response(503, "no_history", "this master runs without a history")
        if ARROW_STREAM in request.headers.get("accept", ""):
            import pyarrow as pa

            table = history.sql(body.sql, body.params, arrow=True)
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            return Response(sink.getvalue().to_pybytes(), media_type=ARROW_STREAM)
        frame = history.sql(body.sql, body.params)
        rows = json.loads(frame.to_json(orient="records", date_format="iso"))
        return {"columns": [str(c) for c in frame.columns], "rows": rows}


def page_html(agents: list[AgentInfo]) -> str:
    """The minimal agents page (the real dashboard comes in a later issue)."""
    rows = "".join(
        f"<tr><td>{html.escape(a.name)}</td><td>{a.status}</td><td>{html.escape(a.url)}</td>"
        f"<td>{html.escape(', '.join(a.tags))}</td><td>{html.escape(a.region or '')}</td>"
        f"<td>{a.running}</td><td>{a.queued}</td></tr>"
        for a in agents
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>slothlab master</title></head>"
        "<body><h1>slothlab master</h1><p>A minimal page listing the agents; the dashboard "
        "comes in a later version.</p><table border='1'><tr><th>agent</th><th>status</th>"
        "<th>url</th><th>tags</th><th>region</th><th>running</th><th>queued</th></tr>"
        f"{rows}</table><p>{len(agents)} agent(s)</p></body></html>"
    )


def _page_route(app: FastAPI, master: Master) -> None:
    @app.get("/", response_class=HTMLResponse, dependencies=[Depends(require("read-metrics"))])
    def page() -> str:
        return page_html(master.registry.list())


def dashboard_app(master: Master) -> Any:
    """The minimal agents page for ``--dashboard-port``: ``/`` as HTML.

    A browser cannot send a bearer header, so this page takes the token as ``?token=`` too;
    serve it on loopback (the default host). The full dashboard comes in a later version.
    """
    app = FastAPI(title="slothlab master page", version=__version__, openapi_url=None)
    verifier = TokenVerifier.for_token(master.config.token)

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request, token: str | None = None) -> Any:
        header = request.headers.get("authorization", "")
        presented = (
            header.partition(" ")[2].strip() if header.lower().startswith("bearer ") else token
        )
        if not verifier.check(presented):
            return HTMLResponse(
                "<!doctype html><p>Open this page as /?token=&lt;cluster token&gt; "
                "(see <code>slothlab up</code> or SLOTHLAB_TOKEN).</p>",
                status_code=401,
            )
        return page_html(master.registry.list())

    return app
