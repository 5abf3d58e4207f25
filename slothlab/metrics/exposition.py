"""Prometheus text exposition (format 0.0.4) of host and custom metrics.

:func:`render` merges the host collector's latest sample, custom metrics and any other
``prometheus_client`` registries into one text document via ``generate_latest``; the agent's
``/metrics`` route and ``slothlab metrics serve`` both call it. A metric name that two sources
both produce is rendered once (the first source wins, the clash is logged), so the document
stays valid whatever the sources hold.

>>> from slothlab.metrics.custom import CustomMetrics
>>> custom = CustomMetrics()
>>> custom.counter("jobs_total", 2, {"kind": 'say "hi"'})
2
>>> print(render(custom=custom).decode(), end="")
# HELP jobs_total Custom counter jobs_total
# TYPE jobs_total counter
jobs_total{kind="say \\"hi\\""} 2.0
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from slothlab.errors import MissingDependencyError
from slothlab.metrics.names import HOST_METRICS

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector as PromCollector

    from slothlab.metrics.collector import Collector, Reading
    from slothlab.metrics.custom import CustomMetrics

__all__ = ["CONTENT_TYPE", "CustomCollector", "HostCollector", "MetricsServer", "render"]

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The content type of :func:`render`'s output."""

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("_count", "_sum", "_created"),
    "info": ("_info",),
}


def _core() -> Any:
    try:
        from prometheus_client import metrics_core
    except ImportError:
        raise MissingDependencyError("prometheus_client", "metrics") from None
    return metrics_core


class HostCollector:
    """A ``prometheus_client`` collector of a host :class:`~slothlab.metrics.collector.Collector`.

    Each scrape renders the collector's latest sample (it never waits for a new one).
    """

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def collect(self) -> Iterator[Metric]:
        """The host metrics, one family per name."""
        core = _core()
        groups: dict[str, list[Reading]] = {}
        for reading in self.collector.readings():  # one family per name, whatever the order
            groups.setdefault(reading.name, []).append(reading)
        for name, readings in groups.items():
            kind, help_text = HOST_METRICS[name]
            labels = list(readings[0].labels)
            if kind == "counter":
                family = core.CounterMetricFamily(name, help_text, labels=labels)
            else:
                family = core.GaugeMetricFamily(name, help_text, labels=labels)
            for r in readings:
                family.add_metric([r.labels[k] for k in labels], r.value)
            yield family


class CustomCollector:
    """A ``prometheus_client`` collector of a :class:`~slothlab.metrics.custom.CustomMetrics`."""

    def __init__(self, custom: CustomMetrics) -> None:
        self.custom = custom

    def collect(self) -> Iterator[Metric]:
        """The custom metrics: gauges, counters, and histograms (timers in seconds)."""
        core = _core()
        from prometheus_client.utils import floatToGoString

        go_float: Any = floatToGoString  # untyped upstream
        for f in self.custom.families():
            name, help_text, labels = f["name"], f["help"], f["label_names"]
            if f["kind"] in {"gauge", "counter"}:
                cls = core.GaugeMetricFamily if f["kind"] == "gauge" else core.CounterMetricFamily
                family = cls(name, help_text, labels=labels)
                for row in f["series"]:
                    family.add_metric(row["labels"], row["value"])
            else:
                family = core.HistogramMetricFamily(name, help_text, labels=labels)
                bounds = [go_float(b) for b in f["bounds"]] + ["+Inf"]
                for row in f["series"]:
                    buckets = list(zip(bounds, row["buckets"], strict=True))
                    family.add_metric(row["labels"], buckets, row["sum"])
            yield family


def _taken(family: Metric) -> set[str]:
    names = {family.name, *(s.name for s in family.samples)}
    names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ()))
    return names


class _Merged:
    """Families of several collectors, each name once (the first source wins)."""

    def __init__(self, sources: Iterable[PromCollector]) -> None:
        self.sources = list(sources)

    def collect(self) -> Iterator[Metric]:
        seen: set[str] = set()
        for source in self.sources:
            for family in source.collect():
                taken = _taken(family)
                if taken & seen:
                    log.warning(
                        "metric %r is produced twice; only the first is exported", family.name
                    )
                    continue
                seen |= taken
                yield family


def render(
    collector: Collector | None = None,
    custom: CustomMetrics | None = None,
    registries: Iterable[PromCollector] = (),
) -> bytes:
    """The Prometheus text (format 0.0.4) of the given sources, in that order.

    Args:
        collector: a host collector (its latest sample), or None.
        custom: custom metrics, or None.
        registries: other ``prometheus_client`` registries or collectors to include.
    """
    try:
        from prometheus_client.exposition import generate_latest
        from prometheus_client.registry import CollectorRegistry
    except ImportError:
        raise MissingDependencyError("prometheus_client", "metrics") from None
    sources: list[PromCollector] = []
    if collector is not None:
        sources.append(HostCollector(collector))
    if custom is not None:
        sources.append(CustomCollector(custom))
    sources.extend(registries)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(sources))
    return generate_latest(registry)


_INDEX = (
    "<!doctype html><html><head><title>slothlab metrics</title></head><body>"
    "<h1>slothlab metrics exporter</h1>"
    '<p><a href="/metrics">/metrics</a> (Prometheus text format 0.0.4) · '
    '<a href="/v1/metrics">/v1/metrics</a> (JSON snapshot)</p></body></html>\n'
)


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Nagle plus delayed ACK costs ~40 ms a response on a keep-alive connection
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            body = render(self.server.collector, self.server.custom)
            self._send(200, CONTENT_TYPE, body)
        elif path == "/v1/metrics":
            snap = self.server.collector.snapshot()
            self._send(200, "application/json", json.dumps(snap).encode())
        elif path == "/":
            self._send(200, "text/html; charset=utf-8", _INDEX.encode())
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics\n")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class MetricsServer(ThreadingHTTPServer):
    """A small standalone exporter: ``/metrics``, ``/v1/metrics`` (JSON) and ``/``.

    Args:
        address: ``(host, port)``; port 0 picks a free one (see :attr:`url`).
        collector: the host collector to export (the caller starts and stops it).
        custom: custom metrics to export too, or None.

    >>> from slothlab.metrics.collector import Collector
    >>> server = MetricsServer(("127.0.0.1", 0), Collector())
    >>> server.url.startswith("http://127.0.0.1:")
    True
    >>> server.server_close()
    """

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        collector: Collector,
        custom: CustomMetrics | None = None,
    ) -> None:
        self.collector, self.custom = collector, custom
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        """The address of ``/metrics``."""
        host, port = self.socket.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/metrics"
