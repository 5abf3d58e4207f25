"""Anomaly detectors by name: built-ins first, then the ``slothlab.detectors`` entry points.

A factory is any callable returning a fresh :class:`~slothlab.analytics.base.Detector` or
:class:`~slothlab.analytics.base.HostDetector`; a plugin registers one through the entry-point
group ``slothlab.detectors`` (and may replace a built-in of the same name).

>>> get("default").name
'context'
>>> "zscore" in names()
True
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TypeAlias

from slothlab.analytics.base import Detector, HostDetector
from slothlab.analytics.detectors import (
    ContextDetector,
    IsolationForestDetector,
    NoveltyDetector,
    ZScoreDetector,
)
from slothlab.errors import UnknownDetectorError

__all__ = ["DetectorFactory", "get", "names", "register"]

DetectorFactory: TypeAlias = Callable[[], Detector | HostDetector]
"""Makes a fresh detector (a class, or a function with the parameters bound)."""

ENTRY_POINT_GROUP = "slothlab.detectors"

_factories: dict[str, DetectorFactory] = {
    "default": ContextDetector,
    "context": ContextDetector,
    "novelty": NoveltyDetector,
    "zscore": ZScoreDetector,
    "isolation_forest": IsolationForestDetector,
}
_loaded = False
_load_lock = threading.Lock()


def register(name: str, factory: DetectorFactory) -> None:
    """Add ``factory`` under ``name`` (replacing any detector of that name)."""
    _load_entry_points()
    _factories[name] = factory


def get(name: str) -> Detector | HostDetector:
    """A fresh detector called ``name``; the error lists the names there are."""
    _load_entry_points()
    try:
        factory = _factories[name]
    except KeyError:
        known = ", ".join(sorted(_factories))
        raise UnknownDetectorError(
            f"no anomaly detector named {name!r}; known detectors: {known}"
        ) from None
    return factory()


def names() -> list[str]:
    """Every registered detector name, sorted."""
    _load_entry_points()
    return sorted(_factories)


def _load_entry_points() -> None:
    global _loaded
    if _loaded:
        return
    with _load_lock:  # threads asking at once wait for the first to finish loading
        if _loaded:
            return
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            _factories[ep.name] = ep.load()
        _loaded = True
