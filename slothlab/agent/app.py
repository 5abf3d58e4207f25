"""The agent's HTTP API (FastAPI): the ``/v1`` routes of :mod:`slothlab.protocol`.

Thin over the :class:`~slothlab.agent.executor.Executor`: routes parse, call one method and
format. Every route but ``/health`` takes the cluster token; bodies are capped and vetted by
:class:`~slothlab._asgi.BodyGuard` before FastAPI parses them; every error is an
:class:`~slothlab.protocol.ErrorBody`.

Task output streams as Server-Sent Events (``GET /v1/tasks/{id}/logs``)::

    id: 0
    event: stdout
    data: hello

    event: end
    data: {...the final TaskInfo as JSON...}

Each ``stdout``/``stderr`` event is one line of output as plain text (without its newline; a
carriage return or another line break character inside it starts a further ``data:`` line, so
a reader joining them with ``\n`` gets separate lines) and carries its place in the task's log
as ``id``. A reader that reconnects sends ``Last-Event-ID`` (or ``?since=N``) and gets the
lines after it. A finished task's stream replays its lines and ends at once. An idle stream
sends a ``: keep-alive`` comment every ``keepalive_s``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from slothlab import __version__, protocol
from slothlab._asgi import (
    MAX_BODY_BYTES,
    BodyGuard,
    error_response,
    install_error_handlers,
    require,
)
from slothlab.agent._answers import batch_response, task_response, wait_all, wait_done
from slothlab.agent._fast import AgentAPI, SubmitPath
from slothlab.agent._metrics import AgentMetrics
from slothlab.agent.executor import Executor
from slothlab.agent.tasks import TaskRecord
from slothlab.errors import AgentBusyError, AgentError, TaskNotFoundError
from slothlab.protocol import (
    AgentInfo,
    BatchRequest,
    BatchResponse,
    Heartbeat,
    TaskInfo,
    TaskList,
    TaskRequest,
    TaskState,
)
from slothlab.security.tokens import TokenVerifier

__all__ = ["AgentIdentity", "create_app", "host_metrics", "metrics_app"]

MAX_WAIT_S = protocol.MAX_WAIT_S
"""The longest ``?wait=`` a submission or status request may ask for."""

_SCALE = {"memory_available_mb": float(1 << 20), "disk_free_gb": float(1 << 30)}


@dataclass
class AgentIdentity:
    """Who the agent is: what ``/v1/info``, registration and heartbeats say.

    ``url`` is filled in once the server knows its port.
    """

    name: str
    url: str = ""
    tags: list[str] = field(default_factory=list)
    region: str | None = None
    version: str = __version__
    started_at: float = field(default_factory=time.time)


def host_metrics(snapshot: Mapping[str, Any]) -> dict[str, float]:
    """The flat numbers an agent reports about its host (heartbeat, ``/v1/info``).

    ``cpu_percent``, ``memory_percent``, ``disk_percent`` (of ``/``), ``load1``, ``load5``,
    ``load15``, ``memory_available_mb``, ``disk_free_gb`` (of ``/``) — those the collector
    could read. The master's balancer reads these names.

    >>> host_metrics({"cpu": {"percent": 12.5}, "memory": {"percent": 40},
    ...               "disk": {"/": {"percent": 70}}, "load": {"load1": 0.5}})
    {'cpu_percent': 12.5, 'memory_percent': 40.0, 'disk_percent': 70.0, 'load1': 0.5}
    """
    out: dict[str, float] = {}
    picks = (
        ("cpu_percent", ("cpu", "percent")),
        ("memory_percent", ("memory", "percent")),
        ("disk_percent", ("disk", "/", "percent")),
        ("load1", ("load", "load1")),
        ("load5", ("load", "load5")),
        ("load15", ("load", "load15")),
        ("memory_available_mb", ("memory", "available_bytes")),
        ("disk_free_gb", ("disk", "/", "free_bytes")),
    )
    for name, path in picks:
        node: Any = snapshot
        for part in path:
            node = node.get(part) if isinstance(node, Mapping) else None
        if isinstance(node, int | float) and not isinstance(node, bool):
            out[name] = float(node) / _SCALE.get(name, 1.0)
    return out


@dataclass
class _Parts:
    executor: Executor
    identity: AgentIdentity
    collector: Any
    custom: Any
    monitor: Any
    metrics: AgentMetrics

    def snapshot(self) -> dict[str, Any]:
        return self.collector.snapshot() if self.collector is not None else {}

    def info(self) -> AgentInfo:
        counts = self.executor.counts()
        ident = self.identity
        return AgentInfo(
            name=ident.name,
            url=ident.url,
            version=ident.version,
            tags=list(ident.tags),
            region=ident.region,
            capacity=self.executor.capacity,
            running=counts["running"],
            queued=counts["queued"],
            metrics=host_metrics(self.snapshot()),
            started_at=ident.started_at,
        )

    def heartbeat(self) -> Heartbeat:
        counts = self.executor.counts()
        metrics = host_metrics(self.snapshot())
        metrics["effective_capacity"] = float(counts["effective_capacity"])
        return Heartbeat(running=counts["running"], queued=counts["queued"], metrics=metrics)

    def health(self) -> tuple[int, dict[str, Any]]:
        if self.monitor is not None:
            from slothlab.metrics.health import health_document

            code, document = health_document(self.monitor)
        else:
            code, document = 200, {"status": "ok", "checks": {}}
        document = {**document, "agent": self.identity.name}
        if self.executor.closing:
            code, document["shutting_down"] = 503, True
        return code, document

    def prometheus(self) -> bytes:
        from slothlab.metrics.exposition import render

        return render(self.collector, self.custom, registries=[self.metrics.registry])


def create_app(
    executor: Executor,
    *,
    token: str | None = None,
    verifier: TokenVerifier | None = None,
    identity: AgentIdentity | None = None,
    collector: Any = None,
    custom: Any = None,
    health: Any = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    keepalive_s: float = 15.0,
) -> FastAPI:
    """The agent's FastAPI app over ``executor``.

    Args:
        executor: runs the tasks (the caller starts and shuts it down).
        token: the cluster token (or give ``verifier``).
        verifier: checks presented tokens.
        identity: name, url, tags, region (default: the executor's name).
        collector: the host :class:`~slothlab.metrics.Collector` (``/metrics``, ``/v1/metrics``,
            resource readings); None reports no host metrics.
        custom: :class:`~slothlab.metrics.CustomMetrics` to export too.
        health: a :class:`~slothlab.metrics.HealthMonitor` for ``/health`` (the caller runs it).
        max_body_bytes: the request body cap (413 past it).
        keepalive_s: how often an idle log stream sends a comment line.
    """
    if verifier is None:
        if token is None:
            raise ValueError("create_app needs the cluster token (token=) or a verifier")
        verifier = TokenVerifier.for_token(token)
    parts = _Parts(
        executor,
        identity or AgentIdentity(executor.name),
        collector,
        custom,
        health,
        AgentMetrics(executor),
    )
    app = AgentAPI(
        title=f"slothlab agent {parts.identity.name}",
        version=__version__,
        description="Runs shell and Lua tasks; see slothlab.protocol for the shapes.",
    )
    app.fast_path = SubmitPath(executor, max_body_bytes=max_body_bytes)
    app.state.verifier = verifier
    app.state.parts = parts
    install_error_handlers(app)
    _install_agent_errors(app)
    _task_routes(app, parts, keepalive_s)
    _info_routes(app, parts)
    app.add_middleware(BodyGuard, max_body_bytes=max_body_bytes)
    return app


def metrics_app(app: FastAPI) -> FastAPI:
    """A token-free app serving only ``/metrics`` and ``/health`` of an agent app.

    What ``--metrics-port`` listens with, for a Prometheus that scrapes without a token.
    """
    parts: _Parts = app.state.parts
    plain = FastAPI(title="slothlab agent metrics", openapi_url=None, docs_url=None)
    install_error_handlers(plain)

    @plain.get("/metrics")
    def metrics() -> Response:
        from slothlab.metrics.exposition import CONTENT_TYPE

        return Response(parts.prometheus(), media_type=CONTENT_TYPE)

    @plain.get("/health")
    def health() -> JSONResponse:
        code, document = parts.health()
        return JSONResponse(document, status_code=code)

    return plain


def _install_agent_errors(app: FastAPI) -> None:
    async def on_busy(request: Request, exc: Exception) -> Any:
        assert isinstance(exc, AgentBusyError)
        code = "queue_full" if exc.status == 429 else "busy"
        response = error_response(exc.status, code, str(exc))
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
        return response

    async def on_not_found(request: Request, exc: Exception) -> Any:
        return error_response(404, "not_found", str(exc))

    async def on_conflict(request: Request, exc: Exception) -> Any:
        return error_response(409, "conflict", str(exc))

    app.add_exception_handler(AgentBusyError, on_busy)
    app.add_exception_handler(TaskNotFoundError, on_not_found)
    app.add_exception_handler(AgentError, on_conflict)


_shell_allowed = require("exec-shell")
_lua_allowed = require("exec-lua")
_WAIT = Query(0.0, ge=0, le=MAX_WAIT_S, description="seconds to wait for the end (at most 60)")


def _inline(capability: str) -> Any:
    """:func:`~slothlab._asgi.require` as an async dependency, run on the event loop.

    The check is a hash and a constant-time compare; as a sync dependency FastAPI would send it
    to the thread pool, a thread hop on every task request.
    """
    check = require(capability)

    async def inline(request: Request) -> str:
        return check(request)  # type: ignore[no-any-return]

    inline.capability = capability  # type: ignore[attr-defined]  # read by the RBAC matrix test
    return inline


def _may_run(request: Request, kinds: set[str]) -> None:
    """Each kind of task needs its own capability (shell: exec-shell, Lua: exec-lua)."""
    if "shell" in kinds:
        _shell_allowed(request)
    if "lua" in kinds:
        _lua_allowed(request)


def _task_routes(app: FastAPI, parts: _Parts, keepalive_s: float) -> None:
    executor = parts.executor

    @app.post(
        "/v1/tasks",
        status_code=202,
        dependencies=[Depends(_inline("exec-lua"))],
        response_model=TaskInfo,
        responses={200: {"model": TaskInfo, "description": "finished within ?wait"}},
    )
    async def submit(body: TaskRequest, request: Request, wait: float = _WAIT) -> Response:
        """Queue a shell command or a Lua chunk; 202 with the task.

        ``?wait=S`` waits up to S seconds for it to finish: 200 with the finished task, or 202
        with the task as it is then (wait for the rest with ``GET /v1/tasks/{id}?wait=``).
        """
        _may_run(request, {body.kind})
        record = executor.submit(body)
        if wait > 0:
            await wait_done(record, wait)
        return task_response(record, 200 if wait > 0 and record.done else 202)

    @app.post(
        "/v1/tasks:batch",
        status_code=202,
        dependencies=[Depends(_inline("exec-lua"))],
        response_model=BatchResponse,
        responses={200: {"model": BatchResponse, "description": "all finished within ?wait"}},
    )
    async def submit_batch(body: BatchRequest, request: Request, wait: float = _WAIT) -> Response:
        """Queue several tasks at once (all or none); agent-choice fields are ignored here.

        ``?wait=S`` waits up to S seconds for all of them: 200 once every one finished, else
        202 with the tasks as they are then.
        """
        _may_run(request, {t.kind for t in body.tasks})
        records = executor.submit_many(body.tasks)  # a DispatchRequest is a TaskRequest
        done = wait > 0 and await wait_all(records, wait)
        return batch_response(records, 200 if done else 202)

    @app.get("/v1/tasks", dependencies=[Depends(require("read-metrics"))])
    def list_tasks(
        state: TaskState | None = None, limit: int = Query(100, ge=1, le=1000)
    ) -> TaskList:
        """Recent tasks, newest first."""
        return TaskList(tasks=[r.info() for r in executor.recent(state, limit)])

    @app.get(
        "/v1/tasks/{task_id}",
        dependencies=[Depends(_inline("read-metrics"))],
        response_model=TaskInfo,
    )
    async def get_task(task_id: str, wait: float = _WAIT) -> Response:
        """A task's status and result; ``?wait=S`` waits up to S seconds for it to finish."""
        record = executor.get(task_id)
        if wait > 0:
            await wait_done(record, wait)
        return task_response(record, 200)

    @app.delete("/v1/tasks/{task_id}", dependencies=[Depends(_inline("exec-lua"))])
    async def cancel_task(task_id: str, request: Request) -> TaskInfo:
        """Cancel: a queued task is dropped, a running one stopped; the task as it is after."""
        record = executor.get(task_id)
        _may_run(request, {record.request.kind})
        executor.cancel(task_id)
        await wait_done(record, executor.kill_grace_s + 1.0)
        return record.info()

    @app.get(
        "/v1/tasks/{task_id}/logs",
        dependencies=[Depends(require("read-metrics"))],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    def task_logs(
        task_id: str, request: Request, since: int = Query(0, ge=0, le=10**9)
    ) -> StreamingResponse:
        """The task's output as Server-Sent Events, live while it runs, then ``end``."""
        record = executor.get(task_id)
        start = _resume_point(request, since)
        return StreamingResponse(
            _log_events(record, start, keepalive_s),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


def _info_routes(app: FastAPI, parts: _Parts) -> None:
    @app.get("/v1/info", dependencies=[Depends(require("read-metrics"))])
    def info() -> AgentInfo:
        """What this agent is and how busy it is."""
        return parts.info()

    @app.get("/v1/metrics", dependencies=[Depends(require("read-metrics"))])
    def metrics_json() -> dict[str, Any]:
        """The host sample, custom metrics, task counts and resource limits as JSON."""
        custom = parts.custom.families() if parts.custom is not None else []
        return {
            "agent": parts.identity.name,
            "ts": time.time(),
            "host": parts.snapshot(),
            "custom": custom,
            "tasks": {**parts.executor.counts(), **parts.metrics.summary()},
            "limits": parts.executor.limit_state(),
        }

    @app.get("/metrics", dependencies=[Depends(require("read-metrics"))])
    def metrics_text() -> Response:
        """Prometheus text format 0.0.4: host, custom and task metrics."""
        from slothlab.metrics.exposition import CONTENT_TYPE

        return Response(parts.prometheus(), media_type=CONTENT_TYPE)

    @app.get("/health")
    def health() -> JSONResponse:
        """200 while healthy (or warning), 503 when critical or shutting down; no token."""
        code, document = parts.health()
        return JSONResponse(document, status_code=code)


def _resume_point(request: Request, since: int) -> int:
    last = request.headers.get("last-event-id", "")
    if last.isdigit() and len(last) < 12:
        return max(since, int(last) + 1)
    return since


async def _log_events(record: TaskRecord, seq: int, keepalive_s: float) -> AsyncIterator[str]:
    while True:
        version = record.version
        done = record.done  # read before the lines: nothing is added once it is done
        for event in record.events_since(seq):
            data = "".join(f"data: {piece}\n" for piece in event.text.splitlines() or [""])
            yield f"id: {event.seq}\nevent: {event.stream}\n{data}\n"
            seq = event.seq + 1
        if done:
            yield f"event: end\ndata: {record.info().model_dump_json()}\n\n"
            return
        if not await record.changed(version, keepalive_s):
            yield ": keep-alive\n\n"
        await asyncio.sleep(0)  # let a flood of lines share the loop with other requests
