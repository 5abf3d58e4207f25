"""Values across the Lua boundary, both ways."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from slothlab.errors import LuaError
from slothlab.lua import Runtime, convert
from slothlab.lua.convert import MAX_DEPTH


@pytest.fixture(scope="module")
def rt() -> Runtime:
    return Runtime()


def roundtrip(rt: Runtime, value: Any) -> Any:
    return rt.call(rt.load("return ..."), value)[0]


@pytest.mark.parametrize(
    "value",
    [
        1,
        -(2**63),
        2**63 - 1,
        2.0,
        0.5,
        "é",
        b"\xff\x00\xfe",
        True,
        [1, 2, 3],
        [1, None, 3],
        {"a": {"b": [1, {"c": 2.5}]}},
        {1: "x", "1": "y"},
        {1.5: "half", True: "yes"},
        [],
    ],
)
def test_round_trip(rt: Runtime, value: Any) -> None:
    back = roundtrip(rt, value)
    assert back == ({} if value == [] else value)
    if isinstance(value, float):
        assert isinstance(back, float)


def test_int_and_float_stay_apart(rt: Runtime) -> None:
    assert rt.execute("return 2, 2.0, 7 // 2, 7 / 2") == [2, 2.0, 3, 3.5]
    kinds = rt.call(rt.load("local a, b = ... return math.type(a), math.type(b)"), 3, 3.0)
    assert kinds == ["integer", "float"]


def test_nan_and_inf(rt: Runtime) -> None:
    nan, inf = rt.execute("return 0/0, 1/0")
    assert math.isnan(nan) and inf == math.inf
    assert math.isnan(roundtrip(rt, math.nan))


def test_arrays_with_holes(rt: Runtime) -> None:
    assert rt.execute("return {1, nil, 3}") == [[1, None, 3]]
    assert rt.execute("return {[1] = 'a', [4] = 'd'}") == [["a", None, None, "d"]]
    assert rt.execute("return {[1] = 'a', [100] = 'z'}") == [{1: "a", 100: "z"}]
    assert rt.execute("return {[0] = 'zero', 'one'}") == [{0: "zero", 1: "one"}]
    assert roundtrip(rt, [1, None]) == [1]  # a trailing nil vanishes, as in Lua


def test_mixed_keys(rt: Runtime) -> None:
    assert rt.execute("return {1, 2, x = 3}") == [{1: 1, 2: 2, "x": 3}]


def test_non_utf8_strings_come_back_as_bytes(rt: Runtime) -> None:
    assert rt.execute("return '\\xff', 'ok', {['\\xfe'] = 1}") == [b"\xff", "ok", {b"\xfe": 1}]


def test_big_int_is_a_clear_error(rt: Runtime) -> None:
    with pytest.raises(ValueError, match="64-bit"):
        rt.to_lua(2**64)
    with pytest.raises(ValueError, match="64-bit"):
        rt.set_global("x", {"n": [-(2**63) - 1]})


def test_python_cycle_is_a_clear_error(rt: Runtime) -> None:
    data: dict[str, Any] = {}
    data["self"] = data
    with pytest.raises(ValueError, match="cycle"):
        rt.to_lua(data)
    shared = [1]
    assert roundtrip(rt, [shared, shared]) == [[1], [1]]  # shared is not a cycle


def test_python_depth_limit(rt: Runtime) -> None:
    value: Any = 1
    for _ in range(MAX_DEPTH + 1):
        value = [value]
    with pytest.raises(ValueError, match="deeper"):
        rt.to_lua(value)


def test_lua_cycle_is_a_clear_error(rt: Runtime) -> None:
    with pytest.raises(LuaError, match="cycle"):
        rt.execute("local t = {} t.t = t return t")


def test_lua_dag_blowup_is_bounded(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(convert, "MAX_ITEMS", 10_000)  # the default (1e6) makes a slow test
    code = "local t = {1} for i = 1, 60 do t = {t, t} end return t"
    with pytest.raises(LuaError, match="too large"):
        rt.execute(code)


def test_table_key_is_a_clear_error(rt: Runtime) -> None:
    with pytest.raises(LuaError, match="table used as a table key"):
        rt.execute("return {[{}] = 1}")


def test_bad_keys_and_types(rt: Runtime) -> None:
    with pytest.raises(ValueError, match="key cannot be None"):
        rt.to_lua({None: 1})
    with pytest.raises(ValueError, match="key cannot be nan"):
        rt.to_lua({math.nan: 1})
    with pytest.raises(TypeError, match="cannot pass a object"):
        rt.to_lua(object())
    with pytest.raises(ValueError, match="not valid Unicode"):
        rt.to_lua("\ud800")


def test_functions_and_other_types(rt: Runtime) -> None:
    fn = rt.execute("return function(x) return x * 2 end")[0]
    assert fn(21) == 42
    raw = rt.call_raw(rt.load("return {f = print}"))[0]
    assert rt.to_python(raw, keep_functions=False) == {"f": "<function>"}
    assert roundtrip(rt, (1, 2)) == [1, 2]
    assert roundtrip(rt, bytearray(b"ab")) == "ab"
    assert roundtrip(rt, memoryview(b"\xff")) == b"\xff"


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda inner: (
        st.lists(inner.filter(lambda v: v is not None), min_size=1, max_size=5)
        | st.dictionaries(st.text(min_size=1), inner.filter(lambda v: v is not None), min_size=1)
    ),
    max_leaves=20,
)


def normal(value: Any) -> Any:
    """What a round trip gives: valid UTF-8 bytes come back as str."""
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value
    if isinstance(value, list):
        return [normal(v) for v in value]
    if isinstance(value, dict):
        return {k: normal(v) for k, v in value.items()}
    return value


@settings(max_examples=150, deadline=None)
@given(json_like)
def test_round_trip_property(value: Any) -> None:
    rt = Runtime()
    assert roundtrip(rt, value) == normal(value)
