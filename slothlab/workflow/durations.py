"""Durations as sloth-runner scripts write them: ``"30s"``, ``"2m"``, ``"1h30m"``, or a number.

Units follow Go's ``time.ParseDuration`` (``ns``, ``us``/``µs``, ``ms``, ``s``, ``m``, ``h``) and
add ``d`` for days; a bare number (or numeric string) is seconds.

>>> parse_duration("1h30m")
5400.0
>>> parse_duration("500ms")
0.5
>>> parse_duration(45)
45.0
>>> parse_duration("2.5m")
150.0
"""

from __future__ import annotations

import math
import re

from slothlab.errors import WorkflowError

__all__ = ["parse_duration"]

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")
_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")


def parse_duration(value: object, what: str = "duration") -> float:
    """Seconds in ``value``: a non-negative number, or a string like ``"1h30m"`` or ``"90"``.

    Args:
        value: the duration as written in the script.
        what: how to name the value in an error (``"timeout of task build"``).

    Raises:
        WorkflowError: the value is not a duration; the message shows accepted forms.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _bad(value, what)
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        seconds = _parse_text(value.strip(), value, what)
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise _bad(value, what)
    return seconds


def _parse_text(text: str, original: str, what: str) -> float:
    if _NUMBER.fullmatch(text):
        return float(text)
    parts = list(_PART.finditer(text))
    if not text or not parts or "".join(p.group(0) for p in parts) != text:
        raise _bad(original, what)
    return sum(float(p.group(1)) * _UNITS[p.group(2)] for p in parts)


def _bad(value: object, what: str) -> WorkflowError:
    return WorkflowError(
        f"{what}: {value!r} is not a duration; write a number of seconds or a string such as "
        '"30s", "2m", "1h30m" or "500ms"'
    )
