"""Dispatch: choose an agent, send the task, fail over only when it cannot have started.

For each task the master keeps a row (:class:`~slothlab.master.tasks.TaskTable`) and always sends
an idempotency key (the caller's, or the master's task id). Then:

* connection refused or connect timeout (:class:`NotStarted`): the agent is marked unknown and
  the task goes to the next agent the strategy picks, up to ``max_failover`` agents;
* read timeout, a reset after sending or a 5xx (:class:`InDoubt`): the task may have started, so
  the SAME agent is asked again with the SAME key (the agent returns the first task rather than
  run it twice); when it still does not answer the row stays ``doubt`` and every later status
  request asks again; it is never sent elsewhere;
* a task whose agent is dead (or forgot it) is reported ``lost``.

A batch is grouped by chosen agent and sent as one ``/v1/tasks:batch`` per agent.

With ``wait_s`` (a submission's ``?wait=S``) the agent is asked to hold its answer until the
task ends (``POST /v1/tasks?wait=S``), so a quick task costs one round trip through the master;
the groups of a batch then go to their agents at the same time.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from slothlab.errors import AgentUnreachableError, MasterError, NoAgentError, UnknownAgentError
from slothlab.master._agents_http import AgentsHTTP, InDoubt, NotStarted, Refused
from slothlab.master.registry import AgentRegistry
from slothlab.master.tasks import TaskRow, TaskTable
from slothlab.protocol import (
    MAX_WAIT_S,
    TERMINAL_STATES,
    AgentInfo,
    DispatchRequest,
    SelectRequest,
    TaskInfo,
    TaskRequest,
)

__all__ = ["Dispatcher"]

_TASK_FIELDS = set(TaskRequest.model_fields)


@dataclass
class _Job:
    pos: int
    req: DispatchRequest
    id: str
    key: str
    body: dict[str, Any]
    tried: list[str] = field(default_factory=list)
    why: list[str] = field(default_factory=list)


class Dispatcher:
    """Sends tasks to agents and answers for them.

    Args:
        registry: the agents.
        tasks: the task table.
        http: how agents are called.
        clock: wall-clock seconds.
        sleep: how to wait between re-queries of an agent in doubt.
        max_failover: how many agents one task may be tried on.
        doubt_retries: re-queries of an agent in doubt during the dispatch call.
        doubt_backoff_s: the first wait before a re-query (doubles each time).
        default_strategy: the strategy when a request names none.
        new_id: makes master task ids.
    """

    def __init__(
        self,
        registry: AgentRegistry,
        tasks: TaskTable,
        http: AgentsHTTP,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_failover: int = 3,
        doubt_retries: int = 3,
        doubt_backoff_s: float = 0.2,
        default_strategy: str = "least_connections",
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.registry = registry
        self.tasks = tasks
        self.http = http
        self.clock = clock
        self.sleep = sleep
        self.max_failover = max(1, max_failover)
        self.doubt_retries = doubt_retries
        self.doubt_backoff_s = doubt_backoff_s
        self.default_strategy = default_strategy
        self.new_id = new_id
        self._fan_out: ThreadPoolExecutor | None = None
        self._fan_lock = threading.Lock()

    # -- submitting -------------------------------------------------------------------------

    def dispatch(self, request: DispatchRequest, wait_s: float = 0.0) -> TaskInfo:
        """Send one task. Raises NoAgentError when no agent could take it (the row says why).

        ``wait_s``: the agent answers once the task ended or that many seconds passed (at
        most :data:`~slothlab.protocol.MAX_WAIT_S`).
        """
        info = self.dispatch_many([request], wait_s)[0]
        if info.state == "rejected" and info.error and info.attempts == 0:
            raise NoAgentError(info.error)
        return info

    def dispatch_many(
        self, requests_: Sequence[DispatchRequest], wait_s: float = 0.0
    ) -> list[TaskInfo]:
        """Send tasks (grouped per agent); one TaskInfo per request, in order.

        A request whose key the master knows returns that task and sends nothing. With
        ``wait_s`` each agent holds its answer until its tasks ended (or ``wait_s`` passed).
        """
        wait_s = min(max(wait_s, 0.0), MAX_WAIT_S)
        checked = set()
        for req in requests_:
            how = (self._strategy(req), _frozen(req.criteria), _frozen(req.constraints))
            if how not in checked:  # one check per distinct choice, not per task
                self.registry.balancer.check(self._strategy(req), req.criteria, req.constraints)
                checked.add(how)
        results: list[TaskInfo | None] = [None] * len(requests_)
        jobs: list[_Job] | None = None
        for _ in range(self.max_failover):
            # rows and "sending" marks in one commit, before anything is sent
            with self.tasks.batch():
                if jobs is None:
                    jobs = self._open(requests_, results)
                groups = self._group(jobs, results)
            jobs = []
            for more in self._send_all(groups, results, wait_s):
                jobs.extend(more)
            if not jobs:
                break
        if jobs:
            with self.tasks.batch():
                for job in jobs:
                    why = "gave up after trying " + "; ".join(job.why)
                    results[job.pos] = self._reject(job, why)
        return [r for r in results if r is not None]

    def _group(
        self, jobs: list[_Job], results: list[TaskInfo | None]
    ) -> list[tuple[AgentInfo, list[_Job]]]:
        """Choose each job's agent and mark it sending; the jobs grouped per agent."""
        groups: dict[str, tuple[AgentInfo, list[_Job]]] = {}
        now = self.clock()
        for job in jobs:
            agent = self._choose(job, results)
            if agent is not None:
                groups.setdefault(agent.name, (agent, []))[1].append(job)
                self.tasks.sending(job.id, agent.name, now=now)
        return list(groups.values())

    def _open(self, reqs: Sequence[DispatchRequest], results: list[TaskInfo | None]) -> list[_Job]:
        jobs = []
        now = self.clock()
        for pos, req in enumerate(reqs):
            task_id = self.new_id()
            key = req.idempotency_key or task_id
            body = req.model_dump(include=_TASK_FIELDS)
            body["idempotency_key"] = key
            existing = self.tasks.create(task_id, key, body, now=now)
            if existing is not None:
                results[pos] = self._known(existing)
                continue
            jobs.append(_Job(pos, req, task_id, key, body))
        return jobs

    def _known(self, task_id: str) -> TaskInfo:
        row = self.tasks.get(task_id)
        assert row is not None
        return row.info or self._shown_pending(row, "being sent")

    def _strategy(self, req: DispatchRequest) -> str:
        return req.strategy or self.default_strategy

    def _choose(self, job: _Job, results: list[TaskInfo | None]) -> AgentInfo | None:
        req = job.req
        reason = ""
        agent: AgentInfo | None = None
        if req.agent is not None:
            if job.tried:
                reason = f"the named agent {req.agent} failed: {'; '.join(job.why)}"
            else:
                agent, reason = self._named(req.agent)
        else:
            selection = self.registry.select(
                SelectRequest(
                    strategy=self._strategy(req),
                    criteria=req.criteria,
                    constraints=req.constraints,
                    tags=req.tags,
                    region=req.region,
                    exclude=job.tried,
                )
            )
            agent, reason = selection.agent, selection.reason
            if agent is None and job.why:
                reason = f"{reason}; tried {'; '.join(job.why)}"
        if agent is None:
            results[job.pos] = self._reject(job, reason)
            return None
        self.registry.note_dispatch(agent.name)
        return agent

    def _named(self, name: str) -> tuple[AgentInfo | None, str]:
        try:
            agent = self.registry.get(name)
        except UnknownAgentError as exc:
            return None, str(exc)
        if agent.status == "dead":
            return (
                None,
                f"agent {name} is dead (not heard from for {self.registry.dead_after_s:g} s)",
            )
        return agent, ""

    def _send_all(
        self,
        groups: list[tuple[AgentInfo, list[_Job]]],
        results: list[TaskInfo | None],
        wait_s: float,
    ) -> list[list[_Job]]:
        """Send each group to its agent; at the same time when the agents hold their answers."""
        if wait_s <= 0 or len(groups) < 2:
            return [self._send(agent, group, results, wait_s) for agent, group in groups]
        with self._fan_lock:
            if self._fan_out is None:
                self._fan_out = ThreadPoolExecutor(8, thread_name_prefix="master-fan-out")
            pool = self._fan_out
        return list(pool.map(lambda g: self._send(g[0], g[1], results, wait_s), groups))

    def close(self) -> None:
        """Stop the threads that send batches to several agents at once."""
        with self._fan_lock:
            pool, self._fan_out = self._fan_out, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _send(
        self,
        agent: AgentInfo,
        group: list[_Job],
        results: list[TaskInfo | None],
        wait_s: float = 0.0,
    ) -> list[_Job]:
        """Send a group (marked sending) to one agent; returns the jobs to try elsewhere."""
        bodies = [job.body for job in group]
        infos: list[TaskInfo] | None
        try:
            try:
                infos = self._post(agent.url, bodies, wait_s)
            except InDoubt as exc:
                infos = self._requery(agent.url, bodies, exc)
        except NotStarted as exc:
            self.registry.mark_unknown(agent.name)
            for job in group:
                job.tried.append(agent.name)
                job.why.append(f"{agent.name} ({exc})")
            return group
        except Refused as exc:
            with self.tasks.batch():
                for job in group:
                    job.tried.append(agent.name)
                    results[job.pos] = self._reject(job, str(exc))
            return []
        with self.tasks.batch():  # one commit for the group's answers
            for pos, job in enumerate(group):
                job.tried.append(agent.name)
                if infos is None:
                    results[job.pos] = self._doubt(job.id, agent.name, "no clear answer")
                else:
                    results[job.pos] = self._accept(job.id, job.key, len(job.tried), infos[pos])
        return []

    def _post(self, url: str, bodies: list[dict[str, Any]], wait_s: float = 0.0) -> list[TaskInfo]:
        held: dict[str, Any] = {}
        if wait_s > 0:
            held = {"params": {"wait": wait_s}, "read_timeout_s": self.http.read_timeout_s + wait_s}
        try:
            if len(bodies) == 1:
                return [
                    TaskInfo.model_validate(
                        self.http.call("POST", url + "/v1/tasks", json=bodies[0], **held)
                    )
                ]
            data = self.http.call("POST", url + "/v1/tasks:batch", json={"tasks": bodies}, **held)
            infos = [TaskInfo.model_validate(t) for t in data["tasks"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise InDoubt(f"{url} answered with an unexpected body: {exc}") from None
        if len(infos) != len(bodies):
            raise InDoubt(f"{url} answered {len(infos)} tasks for {len(bodies)} sent")
        return infos

    def _requery(
        self, url: str, bodies: list[dict[str, Any]], first: InDoubt
    ) -> list[TaskInfo] | None:
        """Ask the same agent again with the same keys; None while it stays unclear.

        Raises NotStarted only when the agent answers that it refuses (it does not hold the
        key, so the task never started); a refused connection now proves nothing.
        """
        wait = self.doubt_backoff_s
        for _ in range(self.doubt_retries):
            self.sleep(wait)
            wait *= 2
            try:
                return self._post(url, bodies)
            except InDoubt:
                continue
            except NotStarted as exc:
                if exc.status is not None:
                    raise
        return None

    # -- rows and what the caller sees ------------------------------------------------------

    def _accept(self, task_id: str, key: str, attempts: int, info: TaskInfo) -> TaskInfo:
        shown = info.model_copy(
            update={
                "id": task_id,
                "agent_task_id": info.id,
                "idempotency_key": key,
                "attempts": attempts,
            }
        )
        self.tasks.record(task_id, shown, now=self.clock())
        return shown

    def _reject(self, job: _Job, reason: str) -> TaskInfo:
        info = TaskInfo(
            id=job.id,
            agent=job.tried[-1] if job.tried else "",
            kind=job.req.kind,
            name=job.req.name,
            state="rejected",
            priority=job.req.priority,
            idempotency_key=job.key,
            submitted_at=self.clock(),
            finished_at=self.clock(),
            error=f"no agent took the task: {reason}",
            attempts=len(job.tried),
        )
        self.tasks.set_state(job.id, "rejected", info, now=self.clock())
        return info

    def _doubt(self, task_id: str, agent: str, why: str) -> TaskInfo:
        row = self.tasks.get(task_id)
        assert row is not None
        info = self._shown_pending(row, f"in doubt ({why})", agent)
        self.tasks.set_state(task_id, "doubt", info, now=self.clock())
        return info

    def _shown_pending(self, row: TaskRow, what: str, agent: str | None = None) -> TaskInfo:
        name = agent or row.agent or ""
        return TaskInfo(
            id=row.id,
            agent=name,
            kind=row.request.get("kind", "shell"),
            name=row.request.get("name"),
            state="queued",
            priority=row.request.get("priority", 0),
            idempotency_key=row.key,
            submitted_at=row.created,
            error=f"{what}: the master asks agent {name} again with key {row.key!r} "
            "on every status request; it is never sent to another agent",
            attempts=max(row.attempts, 1),
        )

    def _lose(self, row: TaskRow, reason: str) -> TaskInfo:
        base = row.info or self._shown_pending(row, "lost")
        info = base.model_copy(
            update={"state": "lost", "error": reason, "finished_at": self.clock()}
        )
        self.tasks.set_state(row.id, "lost", info, now=self.clock())
        return info

    # -- answering for tasks ----------------------------------------------------------------

    def row(self, task_id: str) -> TaskRow:
        """The row of ``task_id``; MasterError (404 in the app) when there is none."""
        row = self.tasks.get(task_id)
        if row is None:
            raise _TaskNotFound(f"no task {task_id!r} on this master; see GET /v1/tasks")
        return row

    def status(self, task_id: str, wait_s: float = 0.0) -> TaskInfo:
        """The task as its agent reports it now (long-polling up to ``wait_s``)."""
        row = self.row(task_id)
        settled = self._settled(row)
        if settled is not None:
            return settled
        assert row.agent is not None
        agent = self.registry.get(row.agent)
        if row.state in ("sending", "doubt"):
            resolved = self._resolve(row, agent)
            if resolved.state in TERMINAL_STATES or resolved.agent_task_id is None:
                return resolved
            row = self.row(task_id)
        wait_s = min(wait_s, MAX_WAIT_S)  # an agent refuses a longer wait (422)
        params = {"wait": wait_s} if wait_s > 0 else None
        url = f"{agent.url}/v1/tasks/{row.agent_task_id}"
        data = self._ask(row, agent, "GET", url, params=params, read_timeout_s=wait_s)
        if isinstance(data, TaskInfo):
            return data
        return self._accept(row.id, row.key, row.attempts, TaskInfo.model_validate(data))

    def cancel(self, task_id: str) -> TaskInfo:
        """Cancel the task on its agent; the task as it is afterwards."""
        row = self.row(task_id)
        settled = self._settled(row)
        if settled is not None:
            return settled
        assert row.agent is not None
        agent = self.registry.get(row.agent)
        if row.agent_task_id is None:
            resolved = self._resolve(row, agent)
            if resolved.agent_task_id is None:
                return resolved
            row = self.row(task_id)
        url = f"{agent.url}/v1/tasks/{row.agent_task_id}"
        data = self._ask(row, agent, "DELETE", url)
        if isinstance(data, TaskInfo):
            return data
        return self._accept(row.id, row.key, row.attempts, TaskInfo.model_validate(data))

    def logs(self, task_id: str) -> requests.Response:
        """The agent's log stream of the task (Server-Sent Events); the caller closes it."""
        row = self.row(task_id)
        if row.agent is None or row.agent_task_id is None:
            raise MasterError(f"task {task_id} has no agent task yet (state {row.state})")
        agent = self.registry.get(row.agent)
        url = f"{agent.url}/v1/tasks/{row.agent_task_id}/logs"
        try:
            return self.http.stream(url)
        except (NotStarted, InDoubt) as exc:
            raise AgentUnreachableError(
                f"agent {agent.name} did not stream the logs: {exc}", server=f"agent {agent.name}"
            ) from None
        except Refused as exc:
            raise MasterError(f"agent {agent.name} refused the log stream: {exc}") from None

    def recent(self, state: str | None = None, limit: int = 100) -> list[TaskInfo]:
        """The master's newest tasks as last seen (no agent is asked)."""
        return [
            r.info or self._shown_pending(r, "being sent") for r in self.tasks.recent(state, limit)
        ]

    def _settled(self, row: TaskRow) -> TaskInfo | None:
        """The answer when no agent needs asking: a final state, or a dead agent (lost)."""
        if row.state in TERMINAL_STATES and row.info is not None:
            return row.info
        if row.agent is None:
            return self._shown_pending(row, "being sent")
        if row.agent not in self.registry:
            return self._lose(row, f"agent {row.agent} is no longer registered")
        if self.registry.status(row.agent) == "dead":
            silent = self.registry.dead_after_s
            return self._lose(
                row, f"agent {row.agent} is dead (silent for over {silent:g} s); outcome unknown"
            )
        return None

    def _resolve(self, row: TaskRow, agent: AgentInfo) -> TaskInfo:
        """Settle a ``sending``/``doubt`` row by re-sending the same key to the same agent."""
        try:
            info = self._post(agent.url, [row.request])[0]
        except NotStarted as exc:
            if exc.status is None:
                self.registry.mark_unknown(agent.name)
            return self._doubt(row.id, agent.name, str(exc))
        except InDoubt as exc:
            return self._doubt(row.id, agent.name, str(exc))
        except Refused as exc:
            return self._lose(row, f"agent {agent.name} refused the task: {exc}")
        return self._accept(row.id, row.key, max(row.attempts, 1), info)

    def _ask(
        self, row: TaskRow, agent: AgentInfo, method: str, url: str, **kwargs: Any
    ) -> TaskInfo | Any:
        extra = kwargs.pop("read_timeout_s", 0.0) or 0.0
        try:
            return self.http.call(
                method, url, read_timeout_s=self.http.read_timeout_s + extra, **kwargs
            )
        except NotStarted as exc:
            if exc.status is None:
                self.registry.mark_unknown(agent.name)
            raise self._unreachable(agent, exc) from None
        except InDoubt as exc:
            raise self._unreachable(agent, exc) from None
        except Refused as exc:
            if exc.status == 404:
                return self._lose(row, f"agent {agent.name} no longer knows the task (restarted?)")
            raise MasterError(f"agent {agent.name} refused: {exc}") from None

    def _unreachable(self, agent: AgentInfo, exc: Exception) -> AgentUnreachableError:
        return AgentUnreachableError(
            f"agent {agent.name} did not answer ({exc}); it is marked unknown, and its tasks are "
            f"reported lost if it stays silent for {self.registry.dead_after_s:g} s",
            server=f"agent {agent.name} at {agent.url}",
        )


def _frozen(values: dict[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted(values.items()))


class _TaskNotFound(MasterError, KeyError):
    """No task of that id (404)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
