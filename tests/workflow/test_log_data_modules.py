"""The log and data modules, and the limited require."""

from __future__ import annotations

import pytest

from slothlab.errors import LuaError
from slothlab.lua import Runtime


def _rt(logs: list[tuple[str, str]]) -> Runtime:
    return Runtime(output=lambda stream, text: logs.append((stream, text)))


def test_log_levels_print_and_table_reach_the_sink() -> None:
    logs: list[tuple[str, str]] = []
    _rt(logs).execute(
        """
        log.info("started", 3)
        log.warn("careful")
        log.error(false)
        log.debug(nil)
        log.print("a", 2.0)
        log.table({b = 1, a = {true}}, "cfg")
        """
    )
    assert logs == [
        ("info", "started 3"),
        ("warn", "careful"),
        ("error", "false"),
        ("debug", "nil"),
        ("stdout", "a\t2.0"),
        ("info", 'cfg:\n{\n  "a": [\n    true\n  ],\n  "b": 1\n}'),
    ]


def test_json_round_trip_keeps_integers_and_floats() -> None:
    out = Runtime().execute(
        """
        local v = data.parse_json('{"n": 2, "f": 2.5, "list": [1, "x"], "t": true}')
        return v.n, math.type(v.n), v.f, data.to_json(v), data.to_json({}, true)
        """
    )
    assert out == [2, "integer", 2.5, '{"f":2.5,"list":[1,"x"],"n":2,"t":true}', "{}"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("data.parse_json('{')", "invalid JSON at line 1"),
        ("data.parse_json('NaN')", "NaN is not allowed"),
        ("data.parse_json(string.rep('[', 100000))", "nested too deeply"),
        ("data.parse_json(5)", "must be a string"),
        ("data.parse_yaml('a: [')", "invalid YAML"),
        ("data.to_json(0/0)", "cannot encode"),
    ],
)
def test_bad_input_returns_nil_and_a_message(call: str, message: str) -> None:
    value, text = Runtime().execute(f"return {call}")
    assert value is None and message in text


def test_yaml_round_trip() -> None:
    out = Runtime().execute(
        """
        local v = data.parse_yaml("name: web\\nports:\\n  - 80\\n  - 443\\n")
        return v.name, v.ports[2], data.to_yaml({b = 1, a = "x"})
        """
    )
    assert out == ["web", 443, "a: x\nb: 1\n"]


def test_require_returns_slothlab_modules_only() -> None:
    rt = Runtime()
    assert rt.execute('local d = require("data"); return d == data, require("log") == log') == [
        True,
        True,
    ]
    with pytest.raises(LuaError, match=r"cell:1: require: no module 'os' here"):
        rt.execute('require("os")')
