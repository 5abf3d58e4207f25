"""The contract between the notebook front end and whatever runs a cell.

The ``%%sloth`` magic parses its arguments into a :class:`CellRequest`, hands it to an
:class:`Executor` and formats the :class:`CellResult` it gets back. Today the executor runs the
Lua on this machine (:class:`~slothlab.jupyter.local.LocalExecutor`); an executor that sends the
request to agents slots in behind the same two methods.

>>> result = CellResult(values=[1, "two"], elapsed_s=0.01)
>>> result.value
[1, 'two']
>>> CellResult(values=[], elapsed_s=0.0).value is None
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from slothlab.workflow import RunResult, TaskEvent

__all__ = ["CellRequest", "CellResult", "Executor"]


@dataclass(frozen=True)
class CellRequest:
    """What one ``%%sloth`` cell asks for.

    Attributes:
        code: the Lua source of the cell, exactly as typed (never interpolated).
        inputs: Python values that become Lua globals, by name.
        timeout_s: wall-clock limit of the run; ``None`` means no limit.
        fresh: run in a new runtime of its own instead of the shared one.
    """

    code: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float | None = None
    fresh: bool = False


@dataclass(frozen=True)
class CellResult:
    """What a cell returned.

    Attributes:
        values: every value of the chunk's ``return``, converted to Python.
        elapsed_s: how long the chunk ran, in seconds.
    """

    values: list[Any]
    elapsed_s: float

    @property
    def value(self) -> Any:
        """``None`` when nothing was returned, the value when one was, else the list of them."""
        if not self.values:
            return None
        return self.values[0] if len(self.values) == 1 else list(self.values)


class Executor(Protocol):
    """Runs cells somewhere (here, or later on agents) and keeps whatever state they share."""

    def run(self, request: CellRequest) -> CellResult:
        """Run one cell; a failure raises a :class:`~slothlab.errors.SlothlabError`."""

    def run_workflow(
        self, name: str | None, listener: Callable[[TaskEvent], None] | None = None
    ) -> RunResult:
        """Run a workflow that earlier cells defined (``name`` may be omitted when one is)."""

    def reset(self) -> None:
        """Forget the state cells share (the Lua globals), so the next cell starts clean."""
