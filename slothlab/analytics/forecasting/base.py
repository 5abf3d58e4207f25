"""The forecaster contract: fit a regular series, forecast ``horizon`` steps with bounds."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from numpy.typing import NDArray

__all__ = ["Forecast", "Forecaster"]


@dataclass(frozen=True)
class Forecast:
    """A forecast of the next ``len(mean)`` steps after the end of the fitted series.

    Attributes:
        timestamps: epoch seconds of each forecast step.
        mean: the point forecast (a median for models fitted on absolute error).
        upper: the upper bound at ``quantile`` (what to provision for).
        lower: the lower bound at ``1 - quantile``.
        quantile: the probability the actual stays below ``upper``.
        model: the name of the forecaster that made it.
    """

    timestamps: NDArray[np.float64]
    mean: NDArray[np.float64]
    upper: NDArray[np.float64]
    lower: NDArray[np.float64]
    quantile: float
    model: str

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Forecast:
        """The forecast behind the DataFrame :func:`~slothlab.analytics.forecast` returns.

        >>> import pandas as pd
        >>> frame = pd.DataFrame({"ts": pd.to_datetime([60, 120], unit="s"), "mean": [1, 2],
        ...                       "lower": [0, 1], "upper": [2, 3]})
        >>> Forecast.from_frame(frame).timestamps.tolist()
        [60.0, 120.0]
        """
        from slothlab.analytics.base import seconds

        missing = sorted({"ts", "mean", "lower", "upper"} - set(frame.columns))
        if missing:
            raise ValueError(f"a forecast frame has columns ts, mean, lower, upper; no {missing}")
        return cls(
            seconds(frame["ts"].to_numpy()),
            frame["mean"].to_numpy(dtype="float64"),
            frame["upper"].to_numpy(dtype="float64"),
            frame["lower"].to_numpy(dtype="float64"),
            float(frame.attrs.get("quantile", 0.9)),
            str(frame.attrs.get("model", "forecast")),
        )


class Forecaster(ABC):
    """Fits a regularly spaced series and forecasts what comes next.

    Subclasses implement :meth:`fit` and :meth:`predict`; ``fit`` returns ``self`` so that
    ``Forecaster().fit(y, ts).predict(12)`` reads naturally. A forecaster is refitted, not
    updated: fitting again forgets the previous series.
    """

    name: ClassVar[str]

    def __init__(self, quantile: float = 0.9) -> None:
        if not 0.5 < quantile < 1:
            raise ValueError(f"quantile must be between 0.5 and 1, not {quantile}")
        self.quantile = quantile

    @abstractmethod
    def fit(self, values: NDArray[np.float64], timestamps: NDArray[np.float64]) -> Forecaster:
        """Learn from ``values`` observed at ``timestamps`` (epoch seconds, evenly spaced)."""

    @abstractmethod
    def predict(self, horizon: int) -> Forecast:
        """Forecast the ``horizon`` steps after the fitted series."""

    def extend(self, values: NDArray[np.float64], timestamps: NDArray[np.float64]) -> Forecaster:
        """Forecast from the end of a longer series (same step) without learning again.

        Between two refits, a scaling loop moves the origin forward this way at the cost of a
        prediction, not a fit.
        """
        from slothlab.analytics.forecasting._series import check_series

        if not hasattr(self, "_y"):
            raise ValueError("fit the forecaster before extending its series")
        self._y, self._ts = check_series(values, timestamps)
        return self
