"""Tabular Lua results: rows of tables, columns of arrays, and their pandas DataFrame.

A Lua table has no key order, so columns come out sorted by name; reorder them in pandas.

>>> rows = [{"host": "a", "cpu": 0.5}, {"host": "b", "cpu": 0.25}]
>>> is_tabular(rows)
True
>>> columns(rows)
['cpu', 'host']
>>> to_dataframe(rows).to_dict(orient="list")
{'cpu': [0.5, 0.25], 'host': ['a', 'b']}
>>> to_dataframe({"x": [1, 2], "y": [3, 4]}).shape
(2, 2)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slothlab.errors import MissingDependencyError, NotebookError

if TYPE_CHECKING:
    import pandas

__all__ = ["columns", "is_columnar", "is_tabular", "to_dataframe"]


def is_tabular(value: Any) -> bool:
    """True for a non-empty list whose items are all tables with string keys (rows)."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(row, dict) and all(isinstance(k, str) for k in row) for row in value)
    )


def is_columnar(value: Any) -> bool:
    """True for a non-empty table of equal-length arrays keyed by column name."""
    if not (isinstance(value, dict) and value and all(isinstance(k, str) for k in value)):
        return False
    lengths = {len(v) if isinstance(v, list) else -1 for v in value.values()}
    return len(lengths) == 1 and -1 not in lengths


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """Every key that appears in any row, sorted."""
    return sorted({key for row in rows for key in row})


def to_dataframe(value: Any) -> pandas.DataFrame:
    """A DataFrame from rows (a list of tables) or columns (a table of equal-length arrays).

    An empty table or list gives an empty DataFrame. Anything else raises
    :class:`~slothlab.errors.NotebookError` saying what shape is expected.
    """
    try:
        import pandas as pd
    except ImportError:
        raise MissingDependencyError("pandas", "jupyter") from None
    if value in ({}, [], None):
        return pd.DataFrame()
    if is_tabular(value):
        return pd.DataFrame.from_records(value, columns=columns(value))
    if is_columnar(value):
        return pd.DataFrame({name: value[name] for name in sorted(value)})
    raise NotebookError(
        "--df needs rows (a list of tables with named fields) or columns (a table of "
        f"equal-length arrays); the cell returned {_describe(value)}"
    )


def _describe(value: Any) -> str:
    if isinstance(value, list):
        kinds = sorted({type(v).__name__ for v in value})
        return f"a list of {', '.join(kinds)}"
    return f"a {type(value).__name__}"
