"""Type aliases shared across slothlab."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

__all__ = ["Clock", "JSONValue"]

JSONValue: TypeAlias = bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None
"""A value that survives a JSON round trip (what Lua tables convert to)."""

Clock: TypeAlias = Callable[[], float]
"""A function returning seconds: ``time.time`` for wall clocks, ``time.monotonic`` for deadlines."""
