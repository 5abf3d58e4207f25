"""Load a workflow script and run it: the library call behind ``slothlab run``.

>>> import tempfile, pathlib
>>> script = pathlib.Path(tempfile.mkdtemp()) / "hello.lua"
>>> _ = script.write_text('''
... workflow.define("hello", {tasks = {
...     {name = "greet", command = function() return true, "hi", {n = 1} end},
... }})''')
>>> result = run_file(script, output=lambda stream, text: None)
>>> result.success, result.tasks["greet"].message, result.tasks["greet"].outputs
(True, 'hi', {'n': 1})
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slothlab.errors import WorkflowError
from slothlab.workflow.dsl import collect
from slothlab.workflow.engine import Engine, Listener
from slothlab.workflow.model import RunResult, WorkflowSpec

if TYPE_CHECKING:
    from slothlab.lua.runtime import Capabilities, OutputSink, Runtime
    from slothlab.workflow.remote import RemoteRunner

__all__ = ["load_file", "run_file", "select_workflow"]


def load_file(path: str | Path, runtime: Runtime) -> list[WorkflowSpec]:
    """Run the script at ``path`` in ``runtime`` and return the workflows it defined.

    Raises:
        WorkflowError: the file cannot be read, or a definition is malformed.
        LuaError: the script failed (syntax error, runtime error).
    """
    file = Path(path)
    try:
        code = file.read_bytes()
    except OSError as exc:
        raise WorkflowError(f"cannot read {file}: {exc.strerror or exc}") from None
    from slothlab.lua.runtime import file_chunk

    runtime.execute(file_chunk(code), file.name)
    return collect(runtime)


def select_workflow(specs: list[WorkflowSpec], name: str | None, source: str) -> WorkflowSpec:
    """The workflow called ``name``, or the only one when ``name`` is None.

    Raises:
        WorkflowError: none defined, ``name`` unknown, or several and no name given.
    """
    names = ", ".join(s.name for s in specs)
    if not specs:
        raise WorkflowError(
            f'{source} defines no workflow; define one with workflow.define("name"):tasks({{...}})'
        )
    if name is None:
        if len(specs) > 1:
            raise WorkflowError(
                f"{source} defines several workflows ({names}); choose one with --workflow NAME"
            )
        return specs[0]
    for spec in specs:
        if spec.name == name:
            return spec
    raise WorkflowError(f"{source} has no workflow {name!r}; it defines: {names}")


def run_file(
    path: str | Path,
    workflow: str | None = None,
    *,
    capabilities: Capabilities | None = None,
    output: OutputSink | None = None,
    listener: Listener | None = None,
    workdir: str | Path | None = None,
    context: Mapping[str, Any] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    delegate_to: tuple[str, ...] = (),
    remote: RemoteRunner | None = None,
) -> RunResult:
    """Run a workflow defined in a Lua file on this machine.

    Args:
        path: the script.
        workflow: which workflow to run (needed when the file defines several).
        capabilities: what the script may reach (default: :meth:`Capabilities.local`).
        output: where ``print`` and ``log`` go (default: stdout / stderr).
        listener: receives progress events (see :class:`~slothlab.workflow.engine.TaskEvent`).
        workdir: default working directory of tasks (default: the current folder).
        context: extra objects for the modules (e.g. ``state_store``).
        sleep: the wait between retries.
        delegate_to: run every task without its own ``delegate_to`` there (``-d AGENT``).
        remote: sends delegated tasks to agents (default: through the local cluster's master
            or ``master.url``, reading Lua commands from ``path``).

    Raises:
        WorkflowError: the file or a definition is bad, or the workflow cannot be chosen.
        LuaError: the script failed while defining its workflows.
    """
    from slothlab.config import load_settings
    from slothlab.lua.runtime import Capabilities, Runtime

    folder = str(Path(workdir) if workdir is not None else Path.cwd())
    runtime = Runtime(
        capabilities=capabilities or Capabilities.local(),
        output=output,
        max_memory_mb=int(load_settings().get("lua.max_memory_mb")),
        context={"workdir": folder, **(context or {})},
    )
    spec = select_workflow(load_file(path, runtime), workflow, Path(path).name)
    from slothlab.workflow.remote import RemoteRunner

    remote = remote or RemoteRunner(script=Path(path))
    engine = Engine(
        runtime, workdir=folder, listener=listener, sleep=sleep, remote=remote,
        delegate_to=delegate_to,
    )  # fmt: skip
    return engine.run(spec)
