"""Built-in anomaly detectors (registered in :mod:`slothlab.analytics.registry`)."""

from __future__ import annotations

from slothlab.analytics.detectors.context import ContextDetector
from slothlab.analytics.detectors.forest import IsolationForestDetector
from slothlab.analytics.detectors.novelty import NoveltyDetector
from slothlab.analytics.detectors.zscore import ZScoreDetector

__all__ = ["ContextDetector", "IsolationForestDetector", "NoveltyDetector", "ZScoreDetector"]
