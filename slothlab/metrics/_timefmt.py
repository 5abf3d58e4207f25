"""RFC 3339 timestamps for JSON documents (``/health``, alert payloads)."""

from __future__ import annotations

import datetime as _dt

__all__ = ["ZERO_TIME", "rfc3339"]

ZERO_TIME = "0001-01-01T00:00:00Z"
"""What Alertmanager's webhook sends as ``endsAt`` of an alert that has not ended."""


def rfc3339(ts: float) -> str:
    """Seconds since the epoch as an RFC 3339 UTC time with milliseconds.

    >>> rfc3339(0)
    '1970-01-01T00:00:00.000Z'
    >>> rfc3339(1700000000.25)
    '2023-11-14T22:13:20.250Z'
    """
    moment = _dt.datetime.fromtimestamp(ts, _dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
