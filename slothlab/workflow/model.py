"""The plain data of workflows: what a script defines and what a run produced.

Lua callables (commands, hooks, conditions) are kept as opaque objects; only the engine calls
them, through the runtime that created them.

>>> spec = WorkflowSpec("demo", [TaskSpec("a"), TaskSpec("b", depends_on=("a",))])
>>> [t.name for t in spec.tasks], spec.task("b").depends_on
(['a', 'b'], ('a',))
>>> r = TaskResult(name="a", status="success", message="ok", outputs={"n": 1}, attempts=1)
>>> RunResult(workflow="demo", success=True, tasks={"a": r}).to_json()["tasks"]["a"]["status"]
'success'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["RunResult", "TaskResult", "TaskSpec", "TaskStatus", "WorkflowSpec"]

TaskStatus = Literal["success", "failed", "skipped"]
"""How a task ended. A task skipped because its ``run_if`` was false counts as a success."""


@dataclass(frozen=True)
class TaskSpec:
    """One task of a workflow, as the DSL defined it.

    Attributes:
        name: unique within its workflow.
        command: a Lua function ``(this, params, inputs) -> ok, message, outputs``, a shell
            command string, or ``None`` (a task that only groups dependencies).
        description: free text.
        timeout_s: limit of one attempt in seconds (``None``: no limit).
        retries: extra attempts after a failure (waits 1 s, 2 s, 4 s, ... between them).
        depends_on: names of tasks that must succeed first.
        delegate_to: the agent(s) to run on; kept for remote runs, local runs ignore it.
        workdir: working directory of shell commands and ``params.workdir``.
        run_if: a Lua function or shell string; false (non-zero exit) skips the task.
        abort_if: a Lua function or shell string; true (zero exit) stops the workflow.
        pre_exec: ``(this, params)`` called before the command.
        post_exec: ``(this, params, outputs)`` called after the command, whatever its result.
        on_success: ``(this, params, outputs)`` called when the task succeeded.
        on_failure: ``(this, params, err)`` called when it failed; ``err.error`` is the message.
        params: values handed to every callable in ``params`` (with ``task_name``, ``workdir``).
    """

    name: str
    command: Any = None
    description: str = ""
    timeout_s: float | None = None
    retries: int = 0
    depends_on: tuple[str, ...] = ()
    delegate_to: tuple[str, ...] = ()
    workdir: str | None = None
    run_if: Any = None
    abort_if: Any = None
    pre_exec: Any = None
    post_exec: Any = None
    on_success: Any = None
    on_failure: Any = None
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """The task as plain data (the ``this`` argument of its callables)."""
        return {
            "name": self.name,
            "description": self.description,
            "timeout": self.timeout_s,
            "retries": self.retries,
            "depends_on": list(self.depends_on),
            "delegate_to": list(self.delegate_to),
            "workdir": self.workdir,
            "params": dict(self.params),
        }


@dataclass(frozen=True)
class WorkflowSpec:
    """A named set of tasks with their dependencies.

    Attributes:
        name: the workflow's name.
        tasks: its tasks, in the order the script gave them.
        description: free text.
        version: free text (``"1.0.0"``).
        config: the ``config({...})`` table; ``timeout`` (a duration) bounds the whole run.
        on_complete: a Lua function ``(success, results)`` called at the end, or ``None``.
    """

    name: str
    tasks: list[TaskSpec] = field(default_factory=list)
    description: str = ""
    version: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    on_complete: Any = None

    def task(self, name: str) -> TaskSpec:
        """The task called ``name`` (KeyError when there is none)."""
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)


@dataclass
class TaskResult:
    """How one task ended.

    Attributes:
        name: the task's name.
        status: ``"success"``, ``"failed"`` or ``"skipped"``.
        message: the task's message, or why it failed or was skipped.
        outputs: the table the command returned (``{}`` when none).
        attempts: attempts made (0 when it never ran).
        duration_s: time from its start to its end, hooks included.
        started_at: monotonic clock reading at its start (orders tasks; not in JSON).
    """

    name: str
    status: TaskStatus
    message: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    duration_s: float = 0.0
    started_at: float | None = None

    @property
    def ok(self) -> bool:
        """True for a success or a skip (both let dependent tasks run)."""
        return self.status != "failed"

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of ``slothlab run --json``."""
        return {
            "status": self.status,
            "message": self.message,
            "outputs": self.outputs,
            "attempts": self.attempts,
            "duration_s": round(self.duration_s, 6),
        }


@dataclass
class RunResult:
    """The result of one workflow run.

    Attributes:
        workflow: the workflow's name.
        success: True when no task failed and the workflow was not aborted.
        tasks: each task's result, in the workflow's task order.
        aborted_by: the task whose ``abort_if`` stopped the run, if any.
        duration_s: the whole run's duration.
    """

    workflow: str
    success: bool
    tasks: dict[str, TaskResult] = field(default_factory=dict)
    aborted_by: str | None = None
    duration_s: float = 0.0

    def order(self) -> list[str]:
        """Names of the tasks that started, in the order they started."""
        started = [r for r in self.tasks.values() if r.started_at is not None]
        return [r.name for r in sorted(started, key=lambda r: r.started_at or 0.0)]

    def to_json(self) -> dict[str, Any]:
        """``{"workflow", "success", "tasks": {name: {...}}}``, as ``slothlab run --json``."""
        return {
            "workflow": self.workflow,
            "success": self.success,
            "tasks": {name: r.to_json() for name, r in self.tasks.items()},
        }
