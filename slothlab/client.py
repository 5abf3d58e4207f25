"""Drive agents and the master over HTTP: :class:`Controller` (the master) and :class:`AgentClient`.

Both keep one keep-alive ``requests`` session (its pool sized for threads), put a timeout on
every call, retry only what is safe to send twice (reads, cancels, and submissions, which always
carry an idempotency key), and raise :class:`~slothlab.errors.ClientError` /
:class:`~slothlab.errors.AgentUnreachableError` with messages naming the server and the request.
Answers are parsed into :mod:`slothlab.protocol` models.

>>> AgentClient("http://127.0.0.1:8701", None, name="web-1")
AgentClient('http://127.0.0.1:8701', name='web-1')
>>> AgentClient("127.0.0.1:8701", None)
Traceback (most recent call last):
...
slothlab.errors.ClientError: agent: '127.0.0.1:8701' is not an http(s) URL (e.g. http://127.0.0.1:8700)

Against a running cluster (``slothlab up``)::

    ctl = Controller()                      # the local cluster's master, or settings master.url
    done = ctl.run("shell", "uname -a", agent="agent-1", timeout=30)   # submit and wait
    print(done.state, done.stdout)
    task = ctl.submit("shell", "sleep 60; echo done", agent="agent-1")  # or just submit
    done = ctl.wait(task.id, timeout=90)
    for stream, line in ctl.logs(task.id):
        print(stream, line)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self

from slothlab._client_http import DEFAULT_TIMEOUT, Transport
from slothlab.errors import AgentUnreachableError, ClientError
from slothlab.protocol import (
    TERMINAL_STATES,
    AgentInfo,
    BatchResponse,
    DispatchRequest,
    Selection,
    SelectRequest,
    TaskInfo,
    TaskList,
    TaskRequest,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AgentClient", "Controller", "task_failure"]

_WAIT_SLICE_S = 20.0  # one long-poll request waits at most this long on the server


def task_failure(info: TaskInfo) -> str:
    """One line saying why a finished task did not succeed ("" when it did).

    >>> info = TaskInfo(id="t1", agent="a1", kind="shell", state="failed", submitted_at=0,
    ...                 exit_code=2, stderr="no such file\\n")
    >>> task_failure(info)
    'task t1 on agent a1 failed: exit 2: no such file'
    """
    if info.state == "succeeded":
        return ""
    why = info.error or ""
    if not why and info.exit_code is not None:
        tail = (info.stderr.strip() or info.stdout.strip()).splitlines()[-1:]
        why = f"exit {info.exit_code}" + (f": {tail[0]}" if tail else "")
    return f"task {info.id} on agent {info.agent} {info.state}" + (f": {why}" if why else "")


class _Tasks:
    """Task routes shared by the agent and the master (the same paths on both)."""

    http: Transport
    clock: Callable[[], float]

    def task(self, task_id: str) -> TaskInfo:
        """The task as the server knows it now."""
        return self.http.parse(TaskInfo, "GET", f"/v1/tasks/{_id(task_id)}")

    def tasks(self, state: str | None = None, limit: int = 100) -> list[TaskInfo]:
        """Recent tasks, newest first (``state`` filters: ``"running"``, ``"failed"``, ...)."""
        params: dict[str, Any] = {"limit": limit}
        if state:
            params["state"] = state
        return self.http.parse(TaskList, "GET", "/v1/tasks", params=params).tasks

    def wait(self, task_id: str, timeout: float | None = None) -> TaskInfo:
        """Wait until the task ends or ``timeout`` seconds pass; the task as it is then.

        The server long-polls (``?wait=S``), so waiting costs one request per 20 s. With a
        ``timeout``, the wait ends by then (plus at most 5 s for the last answer): a server
        that stops answering, or answers 503 (its agent unreachable for now), is asked again
        until the deadline.

        Raises:
            AgentUnreachableError: the server did not answer by the deadline.
            ClientError: it refused (unknown task, bad token, ...).
        """
        deadline = None if timeout is None else self.clock() + timeout
        while True:
            try:
                info = self._wait_once(task_id, deadline)
            except ClientError as exc:
                transient = isinstance(exc, AgentUnreachableError) or exc.status == 503
                if deadline is None or not transient or self.clock() >= deadline:
                    raise
                self.http.sleep(min(0.5, max(deadline - self.clock(), 0.0)))
                continue
            if info.state in TERMINAL_STATES or (deadline is not None and self.clock() >= deadline):
                return info

    def _wait_once(self, task_id: str, deadline: float | None) -> TaskInfo:
        left = _WAIT_SLICE_S if deadline is None else max(deadline - self.clock(), 0.0)
        slice_s = min(left, _WAIT_SLICE_S)
        margin = self.http.timeout[1] if deadline is None else min(self.http.timeout[1], 5.0)
        return self.http.parse(
            TaskInfo,
            "GET",
            f"/v1/tasks/{_id(task_id)}",
            params={"wait": round(slice_s, 3)} if slice_s > 0 else None,
            timeout=(self.http.timeout[0], slice_s + margin),
            safe=deadline is None,  # with a deadline, this loop retries instead
        )

    def result(self, task_id: str, timeout: float | None = None) -> TaskInfo:
        """Wait for the task and return it when it succeeded.

        Raises:
            ClientError: it failed, timed out, was cancelled or lost (the message says how),
                or it had not ended after ``timeout`` seconds.
        """
        info = self.wait(task_id, timeout)
        if info.state not in TERMINAL_STATES:
            raise ClientError(
                f"task {info.id} on agent {info.agent} is still {info.state} after {timeout:g} s",
                server=self.http.server,
            )
        if info.state != "succeeded":
            raise ClientError(task_failure(info), server=self.http.server)
        return info

    def logs(self, task_id: str, idle_timeout_s: float = 300.0) -> Iterator[tuple[str, str]]:
        """The task's output as ``(stream, line)`` pairs, live, until the task ends.

        ``stream`` is ``"stdout"`` or ``"stderr"``; the stream ends with the task.
        ``idle_timeout_s`` bounds the silence between two lines.
        """
        path = f"/v1/tasks/{_id(task_id)}/logs"
        for event, data in self.http.events(path, idle_timeout_s=idle_timeout_s):
            if event == "end":
                return
            if event in ("stdout", "stderr"):
                yield from ((event, line) for line in data.split("\n"))

    def cancel(self, task_id: str) -> TaskInfo:
        """Cancel the task (a no-op on a finished one); the task as it is afterwards."""
        return self.http.parse(TaskInfo, "DELETE", f"/v1/tasks/{_id(task_id)}")

    def health(self) -> dict[str, Any]:
        """The health document (``status`` and the checks); a 503 is an answer, not an error."""
        body = self.http.json("GET", "/health", ok_status=(503,))
        return body if isinstance(body, dict) else {"status": str(body)}

    def metrics(self) -> dict[str, Any]:
        """The JSON metrics snapshot (``GET /v1/metrics``)."""
        body = self.http.json("GET", "/v1/metrics")
        return body if isinstance(body, dict) else {"metrics": body}

    def close(self) -> None:
        """Close the keep-alive connections."""
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(
        self, kind: str, source: str, *, timeout: float | None = None, **fields: Any
    ) -> TaskInfo:
        """Submit a task and wait for its end; one request when it ends within 20 s.

        Takes the fields of :meth:`submit` (an idempotency key is made when none is given).
        The server holds the submission until the task ends (``POST /v1/tasks?wait=S``); a
        longer task is waited for as :meth:`wait` does. Returns the task as it is when it ended
        or ``timeout`` seconds passed (check :attr:`~slothlab.protocol.TaskInfo.state`; a task
        that did not succeed is an answer here, see :meth:`result`).

        Raises:
            ClientError: the server refused the task (the message says why).
            AgentUnreachableError: no answer.
        """
        started = self.clock()
        first = _WAIT_SLICE_S if timeout is None else min(max(timeout, 0.0), _WAIT_SLICE_S)
        info = self._submit(_request(self._model, kind, source, fields), wait=first)
        if info.state in TERMINAL_STATES:
            return info
        left = None if timeout is None else max(timeout - (self.clock() - started), 0.0)
        return self.wait(info.id, left)

    def run_batch(
        self,
        tasks: Sequence[Mapping[str, Any] | TaskRequest],
        *,
        timeout: float | None = None,
    ) -> list[TaskInfo]:
        """Submit several tasks in one request and wait for all of them (in the same order).

        The server holds the batch until every task ended (``POST /v1/tasks:batch?wait=S``);
        tasks still running after that are waited for one by one, until ``timeout``.
        """
        started = self.clock()
        first = _WAIT_SLICE_S if timeout is None else min(max(timeout, 0.0), _WAIT_SLICE_S)
        infos = self._batch([_as_request(self._model, t) for t in tasks], wait=first)
        out = []
        for info in infos:
            if info.state not in TERMINAL_STATES:
                left = None if timeout is None else max(timeout - (self.clock() - started), 0.0)
                info = self.wait(info.id, left)
            out.append(info)
        return out

    _model: type[TaskRequest] = TaskRequest

    def _submit(self, request: TaskRequest, wait: float = 0.0) -> TaskInfo:
        body = request.model_dump(exclude_none=True)  # json.dumps: file names with surrogates
        waiting = self._waiting(wait)  # (os.fsdecode) go as escapes, NaN and bytes are refused
        return self.http.parse(TaskInfo, "POST", "/v1/tasks", json=body, safe=True, **waiting)

    def _batch(self, requests: Sequence[TaskRequest], wait: float = 0.0) -> list[TaskInfo]:
        body = {"tasks": [r.model_dump(exclude_none=True) for r in requests]}
        waiting = self._waiting(wait)
        answer = self.http.parse(
            BatchResponse, "POST", "/v1/tasks:batch", json=body, safe=True, **waiting
        )
        return answer.tasks

    def _waiting(self, wait: float) -> dict[str, Any]:
        """Query and timeout of a request the server holds up to ``wait`` seconds."""
        if wait <= 0:
            return {}
        connect, read = self.http.timeout
        return {"params": {"wait": round(wait, 3)}, "timeout": (connect, wait + read)}


class AgentClient(_Tasks):
    """Talk to one agent directly.

    Args:
        url: the agent's base URL (``http://host:8701``).
        token: the cluster token (``None``: only :meth:`health` works).
        name: the agent's name, for messages.
        timeout: ``(connect, read)`` seconds of each request.
        retries: extra tries of a safe request.
        pool_size: keep-alive connections (one per thread calling at once).
        clock: monotonic seconds (deadlines of :meth:`wait`).
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        name: str | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retries: int = 2,
        pool_size: int = 16,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        label = f"agent {name}" if name else "agent"
        self.http = Transport(
            url, token, label=label, timeout=timeout, retries=retries, pool_size=pool_size
        )
        self.clock = clock

    def __repr__(self) -> str:
        return f"AgentClient({self.http.url!r}, name={self.name!r})"

    def submit(self, kind: str, source: str, *, wait: float = 0.0, **fields: Any) -> TaskInfo:
        """Submit a task (fields of :class:`~slothlab.protocol.TaskRequest`); it is queued.

        An idempotency key is made when none is given, so a retried submission never runs
        the task twice. ``wait`` (at most 60 s): the agent answers once the task ended or
        that many seconds passed, whichever is first (see :meth:`run`).

        Raises:
            ClientError: the agent refused it (the message says why), or a field is invalid.
        """
        return self._submit(_request(TaskRequest, kind, source, fields), wait=wait)

    def submit_batch(
        self, tasks: Sequence[Mapping[str, Any] | TaskRequest], *, wait: float = 0.0
    ) -> list[TaskInfo]:
        """Submit several tasks in one request; their infos in the same order.

        ``wait``: the agent answers once all ended or that many seconds passed.
        """
        return self._batch([_as_request(TaskRequest, t) for t in tasks], wait=wait)

    def info(self) -> AgentInfo:
        """What the agent says about itself."""
        return self.http.parse(AgentInfo, "GET", "/v1/info")


class Controller(_Tasks):
    """Talk to the master: agents, dispatch with a choice of agent, history queries.

    Args:
        url: the master's URL; default the local cluster's (``<home>/cluster.json``, written by
            ``slothlab up``), else the setting ``master.url``.
        token: the cluster token; default ``$SLOTHLAB_TOKEN`` or the token file.
        timeout, retries, pool_size, clock: as for :class:`AgentClient`.

    Raises:
        ClientError: no URL was given and none is configured (the message says how to get one).
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retries: int = 2,
        pool_size: int = 16,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        url, token = _defaults(url, token)
        self.http = Transport(
            url, token, label="master", timeout=timeout, retries=retries, pool_size=pool_size
        )
        self.token = token
        self.clock = clock
        self._timeout, self._retries = timeout, retries

    def __repr__(self) -> str:
        return f"Controller({self.http.url!r})"

    _model = DispatchRequest

    def submit(self, kind: str, source: str, *, wait: float = 0.0, **fields: Any) -> TaskInfo:
        """Submit a task; the master picks the agent.

        ``agent="web-1"`` names one; otherwise ``tags``, ``region``, ``strategy``, ``criteria``
        and ``constraints`` choose (see :class:`~slothlab.protocol.DispatchRequest`). An
        idempotency key is made when none is given. ``wait``: the master answers once the
        task ended or that many seconds passed (see :meth:`run`).
        """
        return self._submit(_request(DispatchRequest, kind, source, fields), wait=wait)

    def submit_batch(
        self, tasks: Sequence[Mapping[str, Any] | DispatchRequest], *, wait: float = 0.0
    ) -> list[TaskInfo]:
        """Submit several tasks in one request; their infos in the same order.

        ``wait``: the master answers once all ended or that many seconds passed.
        """
        return self._batch([_as_request(DispatchRequest, t) for t in tasks], wait=wait)

    def agents(self) -> list[AgentInfo]:
        """Every agent the master knows, with its status (active, unknown, dead)."""
        body = self.http.json("GET", "/v1/agents")
        items = body.get("agents", []) if isinstance(body, dict) else body
        return [AgentInfo.model_validate(a) for a in items]

    def agent(self, name: str) -> AgentInfo:
        """One agent as the master knows it."""
        return self.http.parse(AgentInfo, "GET", f"/v1/agents/{_id(name)}")

    def agent_client(self, name: str) -> AgentClient:
        """A client talking to agent ``name`` directly, at the URL it registered."""
        info = self.agent(name)
        return AgentClient(
            info.url, self.token, name=name, timeout=self._timeout, retries=self._retries
        )

    def select(self, **fields: Any) -> Selection:
        """Ask the master which agent it would choose (:class:`~slothlab.protocol.SelectRequest`
        fields: ``strategy``, ``criteria``, ``constraints``, ``tags``, ``region``, ``exclude``).
        """
        try:
            request = SelectRequest(**fields)
        except ValueError as exc:
            raise ClientError(f"bad selection: {_first_error(exc)}") from None
        body = self.http.json("POST", "/v1/select", json=request.model_dump(), safe=True)
        return Selection.model_validate(body)

    def info(self) -> dict[str, Any]:
        """What the master says about itself (``GET /v1/info``)."""
        body = self.http.json("GET", "/v1/info")
        return body if isinstance(body, dict) else {"info": body}

    def query(self, sql: str) -> pd.DataFrame:
        """Run read-only SQL over the master's metrics history; the rows as a DataFrame."""
        import pandas as pd

        body = self.http.json("POST", "/v1/query", json={"sql": sql}, safe=True)
        return _frame(pd, body)


def _frame(pd: Any, body: Any) -> Any:
    if isinstance(body, list):
        return pd.DataFrame(body)
    if isinstance(body, dict) and "rows" in body:
        return pd.DataFrame(body["rows"], columns=body.get("columns"))
    if isinstance(body, dict) and "data" in body:
        return pd.DataFrame(body["data"])
    raise ClientError(f"the master's /v1/query answer has an unknown shape: {str(body)[:200]}")


def _defaults(url: str | None, token: str | None) -> tuple[str, str | None]:
    if url is None or token is None:
        from slothlab.cluster import read_state

        state = read_state()
        if url is None and state is not None:
            url = state.master_url
        if token is None and state is not None and state.token_file:
            token = _read_file(state.token_file)
    if url is None:
        from slothlab.config import load_settings

        url = str(load_settings().get("master.url", "") or "") or None
    if url is None:
        raise ClientError(
            "no master to talk to: start a local cluster with `slothlab up`, or set the master's "
            "URL with `slothlab config set master.url=http://HOST:8700`"
        )
    if token is None:
        from slothlab.security import read_token

        token = read_token()
    return url, token


def _read_file(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def _request(model: Any, kind: str, source: str, fields: Mapping[str, Any]) -> Any:
    return _as_request(model, {"kind": kind, "source": source, **fields})


def _as_request(model: Any, task: Any) -> Any:
    if isinstance(task, model):
        request = task
    else:
        data = task.model_dump() if hasattr(task, "model_dump") else dict(task)
        data.setdefault("idempotency_key", None)
        if data["idempotency_key"] is None:  # made here: no copy of the validated model after
            data["idempotency_key"] = os.urandom(16).hex()
        try:
            request = model(**data)
        except ValueError as exc:
            raise ClientError(f"bad task: {_first_error(exc)}") from None
    if request.idempotency_key is None:  # a key makes the submission safe to retry
        request = request.model_copy(update={"idempotency_key": os.urandom(16).hex()})
    return request


def _first_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg', 'invalid')}"
    return str(exc)


def _id(value: str) -> str:
    from urllib.parse import quote

    return quote(str(value), safe="")
