"""Checks and helpers shared by the forecasters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["check_series", "future_timestamps"]

MIN_POINTS = 8


def check_series(values: Any, timestamps: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Return ``values`` and ``timestamps`` as float arrays, or say what is wrong with them.

    Missing values (NaN) are filled with the previous value, so a short gap in a scrape does not
    stop a forecast.
    """
    import numpy as np
    import pandas as pd

    y = np.asarray(values, dtype=float)
    ts = np.asarray(timestamps, dtype=float)
    if y.ndim != 1 or ts.ndim != 1 or len(y) != len(ts):
        raise ValueError(
            f"values and timestamps must be one-dimensional and of equal length "
            f"(got shapes {y.shape} and {ts.shape})"
        )
    if len(y) < MIN_POINTS:
        raise ValueError(f"a forecast needs at least {MIN_POINTS} points, got {len(y)}")
    if not np.all(np.diff(ts) > 0):
        raise ValueError("timestamps must be strictly increasing; sort the series first")
    if np.isnan(y).all():
        raise ValueError("every value is missing (NaN); nothing to forecast")
    y = pd.Series(y).ffill().bfill().to_numpy()
    return y, ts


def step_of(timestamps: NDArray[np.float64]) -> float:
    """The series' step in seconds (the median spacing)."""
    import numpy as np

    return float(np.median(np.diff(timestamps)))


def future_timestamps(timestamps: NDArray[np.float64], horizon: int) -> NDArray[np.float64]:
    """The ``horizon`` timestamps after the last one, at the series' step."""
    import numpy as np

    step = step_of(timestamps)
    out: NDArray[np.float64] = timestamps[-1] + step * np.arange(1, horizon + 1, dtype=float)
    return out
