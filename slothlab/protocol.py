"""The JSON shapes of slothlab's HTTP API, shared by the agent, the master and the client.

Every model refuses unknown fields and out-of-range values, so bad input is a 422 that names the
field, never a 500. Times are epoch seconds (floats, UTC). Version prefix: ``/v1``.

Agent routes (every route but ``/health`` needs ``Authorization: Bearer <token>``):

=========================  ====================================================================
``POST /v1/tasks``           submit a :class:`TaskRequest`; 202 with the :class:`TaskInfo`
                             (``?wait=S``: 200 with the finished task if it ends within S s)
``POST /v1/tasks:batch``     submit a :class:`BatchRequest`; 202 with a :class:`BatchResponse`
                             (``?wait=S``: 200 once all of them ended, within S s)
``GET /v1/tasks``            recent tasks (``?state=``, ``?limit=``): a :class:`TaskList`
``GET /v1/tasks/{id}``       status and result (``?wait=S`` long-polls until done or S seconds)
``GET /v1/tasks/{id}/logs``  output as Server-Sent Events (``event: stdout|stderr|end``)
``DELETE /v1/tasks/{id}``    cancel; the :class:`TaskInfo` as it is afterwards
``GET /v1/info``             :class:`AgentInfo`
``GET /v1/metrics``          JSON snapshot of the collector and custom metrics
``GET /metrics``             Prometheus text format 0.0.4
``GET /health``              200 / 503 with the health document (no token)
=========================  ====================================================================

The master serves the same task routes (taking a :class:`DispatchRequest`, which adds the choice
of agent) plus ``POST /v1/agents/register``, ``POST /v1/agents/{name}/heartbeat``,
``GET /v1/agents``, ``GET /v1/agents/{name}``, ``POST /v1/select`` (a :class:`SelectRequest`,
answered with a :class:`Selection`), ``/v1/state/...`` and ``POST /v1/query``. A submission
with ``?wait=S`` to the master goes on to the agent as one request with the same ``?wait``.

Errors are ``{"error": {"code": str, "message": str}}`` (:class:`ErrorBody`) with status 400, 401,
403, 404, 409, 413, 422, 429 or 503.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "MAX_SOURCE_BYTES",
    "MAX_WAIT_S",
    "TERMINAL_STATES",
    "AgentInfo",
    "AgentStatus",
    "BatchRequest",
    "BatchResponse",
    "DispatchRequest",
    "ErrorBody",
    "ErrorDetail",
    "Heartbeat",
    "SelectRequest",
    "Selection",
    "TaskInfo",
    "TaskKind",
    "TaskList",
    "TaskRequest",
    "TaskState",
]

MAX_SOURCE_BYTES = 1 << 20
"""The largest task source accepted (1 MiB); bodies are capped before they are parsed."""

MAX_WAIT_S = 60.0
"""The longest ``?wait=`` an agent holds a request (submit or status) before it answers."""

TaskKind = Literal["shell", "lua"]
TaskState = Literal[
    "queued", "running", "succeeded", "failed", "cancelled", "timeout", "lost", "rejected"
]
TERMINAL_STATES: frozenset[str] = frozenset(
    {"succeeded", "failed", "cancelled", "timeout", "lost", "rejected"}
)
"""States a task never leaves."""

AgentStatus = Literal["active", "unknown", "dead"]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class TaskRequest(_Model):
    """A task for one agent: a shell command or a Lua chunk.

    A Lua chunk runs on the agent's sandboxed worker pool; ``args`` arrive as ``...`` and the
    chunk's return values come back in :attr:`TaskInfo.result`. A shell command runs with a
    minimal environment plus ``env`` in its own process group; ``args`` are appended, quoted.
    """

    kind: TaskKind
    source: str = Field(min_length=1, max_length=MAX_SOURCE_BYTES)
    args: list[Any] = Field(default_factory=list, max_length=1000)
    env: dict[str, str] = Field(default_factory=dict, max_length=200)
    timeout_s: float = Field(default=60.0, gt=0, le=86_400)
    priority: int = Field(default=0, ge=-100, le=100, description="higher runs first")
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    workdir: str | None = Field(default=None, max_length=4096)
    name: str | None = Field(default=None, max_length=200, description="a label for people")


class DispatchRequest(TaskRequest):
    """A task sent to the master, which picks the agent.

    ``agent`` names one; otherwise ``selector`` narrows the candidates and ``strategy`` chooses
    among them (see :class:`SelectRequest`).
    """

    agent: str | None = Field(default=None, pattern=_NAME)
    tags: list[str] = Field(default_factory=list, max_length=50)
    region: str | None = Field(default=None, max_length=100)
    strategy: str | None = Field(default=None, max_length=50)
    criteria: dict[str, float] = Field(default_factory=dict, max_length=20)
    constraints: dict[str, float] = Field(default_factory=dict, max_length=20)


class BatchRequest(_Model):
    """Several tasks in one request (at most 1,000)."""

    tasks: list[DispatchRequest] = Field(min_length=1, max_length=1000)


class TaskInfo(_Model):
    """A task as the agent (or the master) knows it."""

    id: str
    agent: str
    kind: TaskKind
    name: str | None = None
    state: TaskState
    priority: int = 0
    idempotency_key: str | None = None
    submitted_at: float
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    truncated: bool = False
    result: list[Any] | None = None
    error: str | None = None
    attempts: int = 1
    agent_task_id: str | None = Field(
        default=None, max_length=200, description="through the master: the id on the agent"
    )


class BatchResponse(_Model):
    """The tasks a batch created, in the order they were given."""

    tasks: list[TaskInfo]


class TaskList(_Model):
    """Recent tasks, newest first."""

    tasks: list[TaskInfo]


class AgentInfo(_Model):
    """What an agent says about itself (``GET /v1/info``, registration, heartbeat)."""

    name: str = Field(pattern=_NAME)
    url: str = Field(max_length=500)
    version: str = Field(max_length=50)
    tags: list[str] = Field(default_factory=list, max_length=50)
    region: str | None = Field(default=None, max_length=100)
    capacity: int = Field(default=4, ge=1, le=10_000, description="tasks it runs at once")
    running: int = Field(default=0, ge=0)
    queued: int = Field(default=0, ge=0)
    metrics: dict[str, float] = Field(default_factory=dict, max_length=200)
    started_at: float = 0.0
    status: AgentStatus = "active"
    last_seen: float | None = None


class Heartbeat(_Model):
    """An agent's periodic report to the master."""

    running: int = Field(ge=0)
    queued: int = Field(ge=0)
    metrics: dict[str, float] = Field(default_factory=dict, max_length=200)


class SelectRequest(_Model):
    """Choose an agent: ``load_balancer.select_agent{...}`` in Lua, ``POST /v1/select``."""

    strategy: str = Field(default="weighted_round_robin", max_length=50)
    criteria: dict[str, float] = Field(default_factory=dict, max_length=20)
    constraints: dict[str, float] = Field(default_factory=dict, max_length=20)
    tags: list[str] = Field(default_factory=list, max_length=50)
    region: str | None = Field(default=None, max_length=100)
    exclude: list[str] = Field(default_factory=list, max_length=10_000)


class Selection(_Model):
    """The chosen agent and why, or no agent and why not."""

    agent: AgentInfo | None
    reason: str


class ErrorDetail(_Model):
    """What went wrong, for people: ``code`` is stable, ``message`` says what to do."""

    code: str
    message: str


class ErrorBody(_Model):
    """The body of every error response."""

    error: ErrorDetail
