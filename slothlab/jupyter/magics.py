"""``%load_ext slothlab``: the ``%%sloth`` cell magic and the ``%sloth`` line magic.

The magic is thin: it parses its arguments into a :class:`~slothlab.jupyter.base.CellRequest`,
hands it to an executor (:class:`~slothlab.jupyter.local.LocalExecutor` today) and formats the
result. Errors are one ``UsageError`` line; ``%config SlothMagics`` lists the settings.
"""

from __future__ import annotations

import keyword
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from IPython.core import magic as _magic
from IPython.core import magic_arguments as _margs
from IPython.core.error import UsageError
from IPython.core.magic import Magics, magics_class
from traitlets import Bool, Float, Int, default
from traitlets.config import Configurable

from slothlab.config import load_settings
from slothlab.errors import NotebookError, SlothlabError
from slothlab.jupyter._display import (
    Rows,
    error_text,
    event_line,
    workflow_failure,
    workflow_summary,
)
from slothlab.jupyter.base import CellRequest, Executor
from slothlab.jupyter.local import LocalExecutor, notebook_output
from slothlab.jupyter.tables import is_tabular, to_dataframe
from slothlab.lua import Capabilities, Runtime

if TYPE_CHECKING:
    from slothlab.workflow import TaskEvent

__all__ = ["SlothMagics", "load_ipython_extension", "unload_ipython_extension"]

_TRUE = {"1", "true", "yes", "on"}

# IPython's decorators are untyped (or typed loosely); typed names for them keep mypy strict.
_Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
argument: Callable[..., _Decorator] = _margs.argument
magic_arguments: Callable[..., _Decorator] = _margs.magic_arguments
parse_argstring: Callable[[Callable[..., Any], str], Any] = _margs.parse_argstring
cell_magic: Callable[[str], _Decorator] = _magic.cell_magic  # type: ignore[assignment]
line_magic: Callable[[str], _Decorator] = _magic.line_magic  # type: ignore[assignment]


@magics_class
class SlothMagics(Magics, Configurable):
    """Run Lua from notebook cells on slothlab's sandboxed runtime.

    Args:
        shell: the IPython shell.
        executor: where cells run (default: a :class:`LocalExecutor` whose runtimes follow
            :attr:`max_memory_mb`).
    """

    timeout = Float(
        0.0,
        min=0.0,
        help="Seconds a cell may run before it is stopped (0: no limit); --timeout overrides.",
    ).tag(config=True)
    max_memory_mb = Int(
        min=1, help="Memory cap of the Lua runtime in MB; applies from the next %sloth reset."
    ).tag(config=True)
    show_traceback = Bool(False, help="Show the Lua traceback under a Lua error.").tag(config=True)
    interactive = Bool(
        help="Rich output (HTML tables); SLOTHLAB_NONINTERACTIVE=1 turns it off for plain text."
    ).tag(config=True)

    @default("max_memory_mb")
    def _default_max_memory_mb(self) -> int:
        return int(load_settings().get("lua.max_memory_mb"))

    @default("interactive")
    def _default_interactive(self) -> bool:
        return os.environ.get("SLOTHLAB_NONINTERACTIVE", "").strip().lower() not in _TRUE

    def __init__(self, shell: Any, executor: Executor | None = None) -> None:
        super().__init__(shell=shell)
        self.executor: Executor = executor or LocalExecutor(self._new_runtime)

    def _new_runtime(self) -> Runtime:
        return Runtime(
            capabilities=Capabilities.local(),
            max_memory_mb=self.max_memory_mb,
            output=notebook_output,
        )

    @magic_arguments(name="%sloth")  # the usage line then reads %%sloth
    @argument(
        "-i",
        "--in",
        dest="inputs",
        action="append",
        default=[],
        metavar="NAME",
        help="Pass the Python variable NAME in as a Lua global (repeat, or NAME1,NAME2).",
    )
    @argument(
        "-o", "--out", metavar="NAME", help="Store the returned value in the Python variable NAME."
    )
    @argument("--df", action="store_true", help="Turn a tabular result into a pandas DataFrame.")
    @argument("--timeout", type=float, metavar="S", help="Stop the cell after S seconds (0: none).")
    @argument("--fresh", action="store_true", help="Run in a new runtime, not the shared one.")
    @cell_magic("sloth")
    def sloth_cell(self, line: str, cell: str) -> Any:
        """Run the cell as Lua; globals persist from cell to cell.

        The value the cell returns is shown (several values as a list) unless -o stores it.
        """
        args = parse_argstring(self.sloth_cell, line)
        try:
            request = self._request(args, cell)
            result = self.executor.run(request)
            value = to_dataframe(result.value) if args.df else result.value
        except SlothlabError as exc:
            raise UsageError(error_text(exc, traceback=self.show_traceback)) from None
        if args.out:
            self._user_ns()[args.out] = value
            return None
        if self.interactive and is_tabular(value):
            return Rows(value)
        return value

    @magic_arguments(name="sloth")
    @argument(
        "command",
        choices=["reset", "run"],
        help="reset: start a new Lua runtime (no globals); run: run a workflow defined in a cell.",
    )
    @argument(
        "workflow", nargs="?", help="run: the workflow's name (needed when there are several)."
    )
    @argument("-o", "--out", metavar="NAME", help="run: store the RunResult in the variable NAME.")
    @line_magic("sloth")
    def sloth_line(self, line: str) -> None:
        """slothlab commands; run Lua with a %%sloth cell."""
        args = parse_argstring(self.sloth_line, line)
        try:
            if args.command == "reset":
                self._reset(args)
            else:
                self._run_workflow(args)
        except SlothlabError as exc:
            raise UsageError(error_text(exc, traceback=self.show_traceback)) from None

    def _reset(self, args: Any) -> None:
        if args.workflow is not None or args.out is not None:
            raise NotebookError("%sloth reset takes no arguments")
        self.executor.reset()
        print("slothlab: new Lua runtime; globals cleared")

    def _run_workflow(self, args: Any) -> None:
        if args.out is not None:
            _check_python_name(args.out)
        result = self.executor.run_workflow(args.workflow, listener=_print_event)
        print(workflow_summary(result))
        if args.out is not None:
            self._user_ns()[args.out] = result
        if not result.success:
            raise NotebookError(workflow_failure(result))

    def _request(self, args: Any, cell: str) -> CellRequest:
        if args.out is not None:
            _check_python_name(args.out)
        timeout = self.timeout if args.timeout is None else args.timeout
        if timeout < 0:
            raise NotebookError(f"--timeout {timeout:g}: give a number of seconds >= 0")
        return CellRequest(
            code=cell,
            inputs={name: self._lookup(name) for name in _split_names(args.inputs)},
            timeout_s=timeout or None,
            fresh=args.fresh,
        )

    def _user_ns(self) -> dict[str, Any]:
        assert self.shell is not None, "SlothMagics needs a shell"
        return self.shell.user_ns  # type: ignore[no-any-return]

    def _lookup(self, name: str) -> Any:
        try:
            return self._user_ns()[name]
        except KeyError:
            raise NotebookError(
                f"-i {name}: there is no Python variable {name!r}; define it in a cell first"
            ) from None


def _print_event(event: TaskEvent) -> None:
    line = event_line(event)
    if line is not None:
        print(line, flush=True)


def _split_names(values: list[str]) -> list[str]:
    names = [n.strip() for value in values for n in value.split(",")]
    return list(dict.fromkeys(n for n in names if n))


def _check_python_name(name: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise NotebookError(f"-o {name}: not a valid Python variable name")


def load_ipython_extension(ipython: Any) -> None:
    """Register :class:`SlothMagics` (and its settings) with ``ipython``."""
    ipython.register_magics(SlothMagics(ipython))


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics and settings :func:`load_ipython_extension` added."""
    manager = ipython.magics_manager
    for kind in ("line", "cell"):
        manager.magics[kind].pop("sloth", None)
    instance = manager.registry.pop("SlothMagics", None)
    if instance is not None and instance in ipython.configurables:
        ipython.configurables.remove(instance)
