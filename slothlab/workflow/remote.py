"""Run a workflow's task on an agent: ``delegate_to`` (and ``slothlab run -d AGENT``).

The task goes through the master (:class:`~slothlab.client.Controller`), which records it and
fails it over when an agent cannot be reached before it started. What is sent:

* a shell command string runs as a ``shell`` task on the agent (its ``workdir`` if the task
  sets one, else the agent's own);
* a Lua function runs as a ``lua`` task: its text is found in the script
  (:mod:`slothlab.workflow._lua_source`) and called on the agent with ``this``, ``params`` and
  ``inputs``, which travel as data. A local variable of the script it uses does not travel and
  is refused by name; pass it in ``params``.

Hooks and conditions (``run_if``, ``pre_exec``, ``on_success``, ...) run where the workflow runs.

Targets: each ``delegate_to`` entry is an agent name, ``tag:NAME``, ``region:NAME`` or ``any``;
several names mean "one of these" (the master chooses among them).

>>> parse_targets(("web-1", "tag:gpu", "region:eu"))
Targets(names=('web-1',), tags=('gpu',), region='eu')
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slothlab.errors import WorkflowError

if TYPE_CHECKING:
    from slothlab.client import Controller
    from slothlab.protocol import TaskInfo
    from slothlab.workflow.model import TaskSpec

__all__ = ["DEFAULT_REMOTE_TIMEOUT_S", "RemoteRunner", "Targets", "parse_targets"]

DEFAULT_REMOTE_TIMEOUT_S = 3600.0
"""The limit of a delegated task that sets no timeout (the agent needs one)."""

_WAIT_MARGIN_S = 30.0  # the client waits this much past the task's own limit


@dataclass(frozen=True)
class Targets:
    """Where a delegated task may run."""

    names: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    region: str | None = None


def parse_targets(entries: tuple[str, ...]) -> Targets:
    """Read ``delegate_to`` entries (``name``, ``tag:X``, ``region:Y``, ``any``)."""
    names, tags, region = [], [], None
    for entry in entries:
        kind, sep, value = entry.partition(":")
        if sep and kind == "tag" and value:
            tags.append(value)
        elif sep and kind == "region" and value:
            region = value
        elif entry not in ("any", "*"):
            names.append(entry)
    return Targets(tuple(names), tuple(tags), region)


class RemoteRunner:
    """Sends delegated tasks to the cluster and waits for them.

    Args:
        controller: the master's client (default: :class:`~slothlab.client.Controller` made on
            first use, i.e. the local cluster's or ``master.url``).
        script: the workflow's script file, where Lua commands are read from.
    """

    def __init__(self, controller: Controller | None = None, *, script: Path | None = None) -> None:
        self._controller = controller
        self.script = script
        self.run_id = uuid.uuid4().hex[:12]
        self._code: str | None = None
        self._inflight: set[str] = set()
        self._lock = threading.Lock()

    @property
    def controller(self) -> Controller:
        """The master's client (made on first use)."""
        if self._controller is None:
            from slothlab.client import Controller

            self._controller = Controller()
        return self._controller

    def shell(
        self, task: TaskSpec, targets: Targets, command: str, timeout_s: float | None, attempt: int
    ) -> TaskInfo:
        """Run a shell command on an agent; the finished task."""
        fields: dict[str, Any] = {"workdir": task.workdir} if task.workdir else {}
        return self._run(task, targets, "shell", command, [], timeout_s, attempt, fields)

    def lua(
        self,
        task: TaskSpec,
        targets: Targets,
        args: list[Any],
        timeout_s: float | None,
        attempt: int,
    ) -> TaskInfo:
        """Run the task's Lua command on an agent with ``args``; the finished task.

        Raises:
            WorkflowError: the command's text cannot be found or it uses script locals.
        """
        return self._run(task, targets, "lua", self.chunk(task), args, timeout_s, attempt, {})

    def chunk(self, task: TaskSpec) -> str:
        """The Lua chunk that calls the task's command with ``...`` (its lines kept in place)."""
        from slothlab.workflow._lua_source import command_source

        if self.script is None:
            raise WorkflowError(
                f"task {task.name!r}: a Lua function can only be sent to an agent when the "
                "workflow comes from a file (its text is read there); use a shell command string"
            )
        if self._code is None:
            try:
                self._code = self.script.read_text("utf-8")
            except OSError as exc:
                raise WorkflowError(f"cannot read {self.script}: {exc.strerror}") from None
        source = command_source(self._code, task.name)
        pad = "\n" * max(source.line - 1, 0)  # errors on the agent name the script's lines
        return f"local command = {pad}{source.text}\nreturn command(...)\n"

    def _run(
        self,
        task: TaskSpec,
        targets: Targets,
        kind: str,
        source: str,
        args: list[Any],
        timeout_s: float | None,
        attempt: int,
        fields: dict[str, Any],
    ) -> TaskInfo:
        ctl = self.controller
        limit = timeout_s or DEFAULT_REMOTE_TIMEOUT_S
        where = self._where(targets)
        key = f"{self.run_id}:{task.name}:{attempt}"  # a resent submission never runs twice
        info = ctl.submit(
            kind, source, args=args, timeout_s=limit, idempotency_key=key, name=task.name,
            **where, **fields,
        )  # fmt: skip
        with self._lock:
            self._inflight.add(info.id)
        try:
            return ctl.wait(info.id, timeout=limit + _WAIT_MARGIN_S)
        finally:
            with self._lock:
                self._inflight.discard(info.id)

    def cancel_all(self) -> None:
        """Cancel every task still running on an agent (Ctrl-C); their waits end at once."""
        from slothlab.errors import SlothlabError

        with self._lock:
            pending = list(self._inflight)
        for task_id in pending:
            with contextlib.suppress(SlothlabError):
                self.controller.cancel(task_id)

    def _where(self, targets: Targets) -> dict[str, Any]:
        where: dict[str, Any] = {}
        if targets.tags:
            where["tags"] = list(targets.tags)
        if targets.region:
            where["region"] = targets.region
        if len(targets.names) == 1:
            where["agent"] = targets.names[0]
        elif targets.names:  # one of several: ask the master, keeping the others out
            others = [a.name for a in self.controller.agents() if a.name not in targets.names]
            chosen = self.controller.select(
                tags=list(targets.tags), region=targets.region, exclude=others
            )
            if chosen.agent is None:
                raise WorkflowError(
                    f"none of the agents {', '.join(targets.names)} can take the task: "
                    f"{chosen.reason}"
                )
            where = {"agent": chosen.agent.name}
        return where
