"""Tabular results, the HTML table and the one-line error texts."""

from __future__ import annotations

import pandas as pd
import pytest

from slothlab.errors import (
    LuaError,
    LuaMemoryError,
    LuaSyntaxError,
    LuaTimeoutError,
    NotebookError,
)
from slothlab.jupyter import columns, is_columnar, is_tabular, to_dataframe
from slothlab.jupyter._display import Rows, error_text, html_table


def test_rows_become_a_frame_with_sorted_columns() -> None:
    rows = [{"host": "a", "cpu": 1}, {"host": "b", "mem": 2.5}]
    frame = to_dataframe(rows)
    assert list(frame.columns) == ["cpu", "host", "mem"]
    assert frame["host"].tolist() == ["a", "b"]
    assert frame["mem"].isna().tolist() == [True, False]


def test_columns_become_a_frame() -> None:
    frame = to_dataframe({"y": [3, 4], "x": [1, 2]})
    pd.testing.assert_frame_equal(frame, pd.DataFrame({"x": [1, 2], "y": [3, 4]}))


@pytest.mark.parametrize("empty", [{}, [], None])
def test_empty_results_give_an_empty_frame(empty: object) -> None:
    assert to_dataframe(empty).empty


@pytest.mark.parametrize(
    ("value", "described"),
    [
        (42, "a int"),
        ([1, "a"], "a list of int, str"),
        ({"x": [1, 2], "y": [1]}, "a dict"),
        ({"x": 1}, "a dict"),
    ],
)
def test_other_shapes_are_refused_with_the_expected_shape(value: object, described: str) -> None:
    with pytest.raises(NotebookError, match=f"--df needs rows .* the cell returned {described}$"):
        to_dataframe(value)


def test_shape_checks() -> None:
    assert is_tabular([{"a": 1}, {}])
    assert not is_tabular([{"a": 1}, 2])
    assert not is_tabular([])
    assert not is_tabular([{1: "a"}])
    assert is_columnar({"a": [], "b": []})
    assert not is_columnar({"a": [1], "b": 2})
    assert columns([{"b": 1}, {"a": 2, "b": 3}]) == ["a", "b"]


def test_html_table_escapes_and_limits() -> None:
    text = html_table([{"n": i, "s": "<x>"} for i in range(5)], limit=2)
    assert text.count("<tr>") == 3  # header and two rows
    assert "&lt;x&gt;" in text and "<x>" not in text
    assert "3 more rows" in text
    assert Rows([{"a": None}])._repr_html_().count("<td></td>") == 1


@pytest.mark.parametrize(
    ("exc", "start"),
    [
        (LuaSyntaxError("cell:1: unexpected symbol"), "Lua syntax error: cell:1:"),
        (LuaError("cell:3: boom"), "Lua error: cell:3: boom"),
        (LuaTimeoutError("time limit exceeded"), "Lua stopped: time limit exceeded; raise"),
        (LuaTimeoutError("interrupted"), "Lua interrupted (Ctrl-C)"),
        (LuaMemoryError("not enough memory"), "Lua stopped: not enough memory; raise %config"),
        (NotebookError("-i x: nope"), "-i x: nope"),
    ],
)
def test_error_text_is_one_line(exc: Exception, start: str) -> None:
    text = error_text(exc)
    assert text.startswith(start)
    assert "\n" not in text


def test_error_text_with_traceback() -> None:
    exc = LuaError("cell:2: boom", traceback="cell:2: boom\nstack traceback:\n\tcell:2: in main")
    assert error_text(exc, traceback=True).splitlines() == [
        "Lua error: cell:2: boom",
        "stack traceback:",
        "    cell:2: in main",
    ]
    assert error_text(NotebookError("x"), traceback=True) == "x"
