"""Times and durations as the history's callers write them, turned into one form.

>>> parse_duration("5m"), parse_duration(90), parse_duration("1.5h"), parse_duration("90")
(300.0, 90.0, 5400.0, 90.0)
>>> to_datetime(0).isoformat()
'1970-01-01T00:00:00+00:00'
>>> to_datetime("-1h", now=7200.0).isoformat()
'1970-01-01T01:00:00+00:00'
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from slothlab.errors import HistoryError

__all__ = ["TimeLike", "parse_duration", "to_datetime"]

TimeLike = datetime | float | int | str
"""A point in time: a datetime (naive means UTC), epoch seconds, ISO text, "now" or "-15m"."""

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def parse_duration(value: float | int | str | timedelta) -> float:
    """Seconds in ``value``: a number, a timedelta, or text like ``30s``, ``5m``, ``1d``, ``90``."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise HistoryError(
            f"{value!r} is not a duration; give seconds, a timedelta or text like '30s', '5m', '1h'"
        )
    if seconds <= 0:
        raise HistoryError(f"duration {value!r} must be positive")
    return seconds


def to_datetime(value: TimeLike, *, now: float | None = None) -> datetime:
    """``value`` as an aware UTC datetime; ``now`` (epoch seconds) anchors "now" and "-15m"."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        return _parse_text(value.strip(), now)
    raise HistoryError(
        f"{value!r} is not a time; give a datetime, epoch seconds, ISO text or '-15m'"
    )


def _parse_text(text: str, now: float | None) -> datetime:
    if text == "now" or text.startswith("-"):
        if now is None:
            raise HistoryError(f"relative time {text!r} needs a clock")
        back = 0.0 if text == "now" else parse_duration(text[1:])
        return datetime.fromtimestamp(now - back, UTC)
    try:
        return to_datetime(datetime.fromisoformat(text))
    except ValueError:
        raise HistoryError(
            f"{text!r} is not a time; use ISO text ('2024-05-01T12:00:00Z'), 'now' or '-15m'"
        ) from None
