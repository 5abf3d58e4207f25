"""Raise the soft limit on open files to the hard limit, for the long-running servers.

A master with 10,000 keep-alive agents holds a socket per agent, far past the usual soft limit
of 1,024 open files; the hard limit (what an unprivileged process may raise itself to) is
usually much higher. ``slothlab master`` and ``slothlab agent start`` call
:func:`raise_open_files_limit` at start, as nginx (``worker_rlimit_nofile``) and systemd
services do.

The limits are injected (``getrlimit``/``setrlimit``), so tests need not change the process:

>>> limits = {"now": (1024, 4096)}
>>> def set_limit(which: int, value: tuple[int, int]) -> None:
...     limits["now"] = value
>>> raise_open_files_limit(getrlimit=lambda which: limits["now"], setrlimit=set_limit)
OpenFiles(before=1024, after=4096, hard=4096)
>>> limits["now"]
(4096, 4096)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["MACOS_OPEN_MAX", "OpenFiles", "raise_open_files_limit"]

log = logging.getLogger("slothlab.rlimits")

MACOS_OPEN_MAX = 10240
"""Where macOS stops a soft limit when the hard one is unlimited (``OPEN_MAX``)."""

_UNLIMITED_TARGET = 1 << 20
"""The soft limit asked for when the hard limit is unlimited (Linux's default ``nr_open``)."""


class OpenFiles(NamedTuple):
    """The soft limit on open files before and after :func:`raise_open_files_limit`.

    ``after == before`` when it could not be raised (or was already as high as it goes);
    ``resource.RLIM_INFINITY`` stands for "unlimited".
    """

    before: int
    after: int
    hard: int


GetLimit = Callable[[int], tuple[int, int]]
SetLimit = Callable[[int, tuple[int, int]], None]


def raise_open_files_limit(
    *, getrlimit: GetLimit | None = None, setrlimit: SetLimit | None = None
) -> OpenFiles | None:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; None where there are no rlimits.

    Never raises: a server that cannot raise it still runs, with the limit it has (logged).
    When the hard limit is unlimited, asks for 2**20, then macOS's 10,240.

    Args:
        getrlimit: ``resource.getrlimit`` (default).
        setrlimit: ``resource.setrlimit`` (default).
    """
    try:
        import resource
    except ImportError:  # Windows: no rlimits, and no such limit on sockets
        return None
    get = getrlimit or resource.getrlimit
    put = setrlimit or resource.setrlimit
    which, unlimited = resource.RLIMIT_NOFILE, resource.RLIM_INFINITY
    soft, hard = get(which)
    if soft == hard:
        return OpenFiles(soft, soft, hard)
    wanted = [hard] if hard != unlimited else [_UNLIMITED_TARGET, MACOS_OPEN_MAX]
    wanted = [t for t in wanted if soft != unlimited and t > soft]
    if not wanted:
        return OpenFiles(soft, soft, hard)
    for target in wanted:
        try:
            put(which, (target, hard))
        except (ValueError, OSError) as exc:
            log.debug("cannot raise the open files limit to %d: %s", target, exc)
            continue
        log.debug("open files limit raised from %d to %d", soft, target)
        return OpenFiles(soft, target, hard)
    log.warning("the open files limit stays at %d (hard limit %d)", soft, hard)
    return OpenFiles(soft, soft, hard)
