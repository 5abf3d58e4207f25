"""``slothlab metrics ...``: the metrics commands (``serve`` runs a standalone exporter)."""

from __future__ import annotations

import signal
import sys
from types import FrameType

import click

__all__ = ["metrics_group"]


@click.group("metrics")
def metrics_group() -> None:
    """Host metrics: a Prometheus exporter and the metrics history."""


@metrics_group.command("serve")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=9464,
    show_default=True,
    help="Port to listen on (0: any free port; the URL is printed).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0 for every interface).",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="Seconds between two samples of the host.",
)
def serve_command(port: int, host: str, interval: float) -> None:
    """Serve this host's metrics for Prometheus at http://HOST:PORT/metrics until stopped."""
    from slothlab.errors import MissingDependencyError
    from slothlab.metrics.collector import Collector
    from slothlab.metrics.exposition import MetricsServer

    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        missing = MissingDependencyError("prometheus_client", "metrics")
        raise click.ClickException(str(missing)) from None
    collector = Collector(interval_s=interval)
    try:
        server = MetricsServer((host, port), collector)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port "
            "or --host"
        ) from None
    signal.signal(signal.SIGTERM, _stop_on_signal)
    collector.start()
    click.echo(f"serving {server.url} (every {interval:g} s); Ctrl-C to stop", err=False)
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        collector.stop()


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
