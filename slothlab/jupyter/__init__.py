"""slothlab in Jupyter: the ``%%sloth`` magic and the library it is a thin face of.

``%load_ext slothlab`` registers the magics (:mod:`slothlab.jupyter.magics`, which imports
IPython). The names here do not need IPython: :func:`run_cell` runs a cell's Lua with inputs and
returns a :class:`CellResult`; :class:`LocalExecutor` keeps one runtime per notebook session;
:func:`to_dataframe` turns tabular results into pandas.
"""

from __future__ import annotations

from slothlab.jupyter.base import CellRequest, CellResult, Executor
from slothlab.jupyter.local import (
    LocalExecutor,
    check_lua_name,
    notebook_output,
    run_cell,
    run_workflow,
)
from slothlab.jupyter.tables import columns, is_columnar, is_tabular, to_dataframe

__all__ = [
    "CellRequest",
    "CellResult",
    "Executor",
    "LocalExecutor",
    "check_lua_name",
    "columns",
    "is_columnar",
    "is_tabular",
    "notebook_output",
    "run_cell",
    "run_workflow",
    "to_dataframe",
]
