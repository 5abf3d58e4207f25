"""Host and custom metrics into a local history: the embedded mode (a notebook, ``slothlab run``).

With no master, the process owns the history itself. A :class:`Recorder` hands every tick of a
:class:`~slothlab.metrics.Collector` to :meth:`MetricsHistory.write
<slothlab.metrics.MetricsHistory.write>` (cheap: the history keeps plain samples and builds one
Arrow batch per flush) and, every ``interval_s`` seconds, the value of every custom metric
(gauges and counters as they are, histograms and timers as ``<name>_count`` and
``<name>_sum``). :meth:`Recorder.stop` records the custom metrics one last time and flushes the
history, so nothing set before it is lost; a crash loses what the history had not flushed yet
(see its durability bound).

In cluster mode the master is the history's single writer: agents send custom metrics with
their heartbeats instead (see ``slothlab.agent._metrics``).

>>> from slothlab.metrics import CustomMetrics, MetricsHistory
>>> custom, history = CustomMetrics(), MetricsHistory(":memory:", background=False)
>>> recorder = Recorder(None, custom, history, host="nb", clock=lambda: 60.0)
>>> custom.counter("jobs_total", 3)
3
>>> recorder.record_custom()
1
>>> history.latest("jobs_total")[["host", "value"]].to_dict("records")
[{'host': 'nb', 'value': 3.0}]
>>> recorder.stop()
>>> history.close()
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import TYPE_CHECKING

from slothlab._types import Clock
from slothlab.errors import HistoryError

if TYPE_CHECKING:
    from slothlab.metrics.collector import Collector
    from slothlab.metrics.custom import CustomMetrics
    from slothlab.metrics.history import MetricsHistory
    from slothlab.metrics.sample import Sample

__all__ = ["DEFAULT_INTERVAL_S", "Recorder"]

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 5.0
"""Seconds between two recordings of the custom metrics (the history's default flush interval)."""


class Recorder:
    """Writes a collector's ticks and, every ``interval_s``, the custom metrics to a history.

    Args:
        collector: the host collector whose ticks are written (None: custom metrics only).
            The recorder does not start or stop it.
        custom: the custom metrics to record (None: host metrics only).
        history: the history to write to; the recorder flushes it on :meth:`stop` but does not
            close it.
        interval_s: seconds between two recordings of the custom metrics.
        host: the host the custom samples carry (default: the collector's, else this host).
        clock: epoch seconds now, the custom samples' timestamp.

    Use :meth:`start` / :meth:`stop` or ``with Recorder(...):``.
    """

    def __init__(
        self,
        collector: Collector | None,
        custom: CustomMetrics | None,
        history: MetricsHistory,
        interval_s: float = DEFAULT_INTERVAL_S,
        *,
        host: str | None = None,
        clock: Clock = time.time,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be a positive number of seconds, not {interval_s}")
        self.collector, self.custom, self.history = collector, custom, history
        self.interval_s = float(interval_s)
        self.host = host or (collector.host if collector is not None else socket.gethostname())
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False
        self._active = False

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> Recorder:
        """Write the collector's ticks from now on and record custom metrics in a daemon
        thread; idempotent."""
        if self.running:
            return self
        self._stop.clear()
        self._active = True
        if self.collector is not None:
            self.collector.add_listener(self.write_tick)
        if self.custom is not None:
            self._thread = threading.Thread(
                target=self._loop, name="slothlab-recorder", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop recording, record the custom metrics once more and flush the history."""
        self._stop.set()
        self._active = False
        if self.collector is not None:
            self.collector.remove_listener(self.write_tick)
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
        if self.history.closed:
            return
        self.record_custom()
        self.history.flush()

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._active

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.record_custom()
            except Exception:  # one bad recording must not end the recorder
                log.exception("recording custom metrics into %s failed", self.history.path)

    # -- one recording ----------------------------------------------------------------------

    def write_tick(self, samples: list[Sample]) -> None:
        """Hand one collector tick to the history (the collector calls this)."""
        try:
            self.history.write(samples)
        except HistoryError as exc:  # closed under us, or a flush failed: say so once
            if not self._warned:
                log.warning("host metrics not recorded: %s", exc)
                self._warned = True

    def record_custom(self) -> int:
        """Write every custom metric's current value now; returns the samples written."""
        if self.custom is None:
            return 0
        samples = self.custom.samples(self.host, self._clock())
        return self.history.write(samples) if samples else 0
