"""The task DSL: the Lua builders (``_dsl.lua``) and their Python face.

A script defines workflows with ``task(...)`` builders and ``workflow.define`` (builder or
table form, see notes in docs/workflows.md); the ``workflow`` Lua module installs the builders
and keeps the definitions in the runtime. :func:`collect` reads them back as
:class:`~slothlab.workflow.model.WorkflowSpec` objects, checking every field.

>>> spec = parse_workflow({"name": "ci", "tasks": {"test": {"depends_on": "build"},
...                                               "build": {"command": "make", "timeout": "2m"}}})
>>> [(t.name, t.depends_on, t.timeout_s) for t in spec.tasks]
[('build', (), 120.0), ('test', ('build',), None)]
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

from slothlab.errors import WorkflowError
from slothlab.workflow.durations import parse_duration
from slothlab.workflow.model import TaskSpec, WorkflowSpec

if TYPE_CHECKING:
    from slothlab.lua.runtime import Runtime

__all__ = ["LUA_SOURCE", "REGISTRY_KEY", "collect", "parse_task", "parse_workflow"]

LUA_SOURCE = resources.files("slothlab.workflow").joinpath("_dsl.lua").read_text("utf-8")
"""The Lua builders (``task``, ``workflow.define``) installed by the ``workflow`` module."""

REGISTRY_KEY = "workflow.registry"
"""Key in ``runtime.context`` of the Lua function listing the defined workflows."""

_CALLABLE_FIELDS = ("run_if", "abort_if", "pre_exec", "post_exec", "on_success", "on_failure")
_TASK_FIELDS = {
    "name",
    "description",
    "command",
    "timeout",
    "retries",
    "depends_on",
    "delegate_to",
    "workdir",
    "params",
    *_CALLABLE_FIELDS,
}


def collect(runtime: Runtime) -> list[WorkflowSpec]:
    """The workflows the scripts run in ``runtime`` have defined, in definition order.

    Raises:
        WorkflowError: a definition is malformed, or the runtime has no ``workflow`` module.
    """
    runtime.env[b"workflow"]
    lister = runtime.context.get(REGISTRY_KEY)
    if lister is None:
        raise WorkflowError(
            "this runtime has no workflow module; create it with the default modules"
        )
    (defs,) = runtime.call(lister) or [[]]
    return [parse_workflow(d) for d in _as_list(defs)]


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [] if value in (None, {}) else [value]


def parse_workflow(data: Mapping[str, Any]) -> WorkflowSpec:
    """A :class:`WorkflowSpec` from a definition table (as Python data).

    Raises:
        WorkflowError: a field is malformed; the message names the workflow, task and field.
    """
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise WorkflowError("a workflow needs a non-empty string name")
    tasks = [parse_task(t, name) for t in _task_entries(data.get("tasks"), name)]
    seen: set[str] = set()
    for task in tasks:
        if task.name in seen:
            raise WorkflowError(f"workflow {name!r}: two tasks are called {task.name!r}")
        seen.add(task.name)
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise WorkflowError(f"workflow {name!r}: config must be a table")
    return WorkflowSpec(
        name=name,
        tasks=tasks,
        description=_text(data.get("description"), name, "description"),
        version=_text(data.get("version"), name, "version"),
        config=config,
        on_complete=_callable(data.get("on_complete"), f"workflow {name!r}", "on_complete"),
    )


def _task_entries(tasks: Any, workflow: str) -> list[dict[str, Any]]:
    if tasks in (None, {}):
        return []
    if isinstance(tasks, list):
        if any(not isinstance(t, dict) for t in tasks):
            raise WorkflowError(f"workflow {workflow!r}: every task must be a table (a hole?)")
        return tasks
    if isinstance(tasks, dict):  # a map keyed by task name: sorted for a stable order
        out: list[dict[str, Any]] = []
        for key in sorted(tasks, key=str):
            entry = tasks[key]
            if not isinstance(entry, dict):
                raise WorkflowError(f"workflow {workflow!r}: task {key!r} must be a table")
            out.append({"name": key, **entry})
        return out
    raise WorkflowError(f"workflow {workflow!r}: tasks must be a table of tasks")


def parse_task(data: Mapping[str, Any], workflow: str = "?") -> TaskSpec:
    """A :class:`TaskSpec` from a task table.

    Raises:
        WorkflowError: a field is malformed or unknown.
    """
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise WorkflowError(f"workflow {workflow!r}: every task needs a non-empty string name")
    where = f"workflow {workflow!r}, task {name!r}"
    unknown = sorted(str(k) for k in data if k not in _TASK_FIELDS)
    if unknown:
        fields = ", ".join(sorted(_TASK_FIELDS))
        raise WorkflowError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {fields}")
    command = data.get("command")
    if command is not None and not (isinstance(command, str) or callable(command)):
        raise WorkflowError(f"{where}: command must be a function or a shell command string")
    timeout = data.get("timeout")
    return TaskSpec(
        name=name,
        command=command,
        description=_text(data.get("description"), where, "description"),
        timeout_s=parse_duration(timeout, f"{where}: timeout") if timeout is not None else None,
        retries=_retries(data.get("retries"), where),
        depends_on=_names(data.get("depends_on"), where, "depends_on"),
        delegate_to=_names(data.get("delegate_to"), where, "delegate_to"),
        workdir=_text(data.get("workdir"), where, "workdir") or None,
        params=_params(data.get("params"), where),
        **{f: _condition(data.get(f), where, f) for f in _CALLABLE_FIELDS},
    )


def _text(value: Any, where: str, field: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    raise WorkflowError(f"{where}: {field} must be a string")


def _retries(value: Any, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
        raise WorkflowError(f"{where}: retries must be a whole number from 0 to 100")
    return value


def _names(value: Any, where: str, field: str) -> tuple[str, ...]:
    if value is None or value == {}:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v for v in items):
        raise WorkflowError(f"{where}: {field} must be a name or a list of names")
    return tuple(dict.fromkeys(items))


def _params(value: Any, where: str) -> dict[str, Any]:
    if value is None or value == [] or value == {}:
        return {}
    if not isinstance(value, dict):
        raise WorkflowError(f"{where}: params must be a table of name = value")
    return {str(k): v for k, v in value.items()}


def _callable(value: Any, where: str, field: str) -> Any:
    if value is not None and not callable(value):
        raise WorkflowError(f"{where}: {field} must be a function")
    return value


def _condition(value: Any, where: str, field: str) -> Any:
    if field in ("run_if", "abort_if") and isinstance(value, str):
        return value
    hint = " or a shell command string" if field in ("run_if", "abort_if") else ""
    if value is not None and not callable(value):
        raise WorkflowError(f"{where}: {field} must be a function{hint}")
    return value
