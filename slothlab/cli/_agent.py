"""``slothlab agent start``: run an agent on this host (API, metrics, health, registration)."""

from __future__ import annotations

import asyncio
import re
import socket
import sys
from pathlib import Path
from typing import Any

import click

from slothlab._rlimits import raise_open_files_limit
from slothlab.errors import SlothlabError

__all__ = ["agent_group"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")


@click.group("agent")
def agent_group() -> None:
    """Run an agent: it executes shell and Lua tasks sent by the master or a client."""


@agent_group.command("start")
@click.option("--name", help="Agent name (default: this host's name).")
@click.option("--host", help="Address to listen on (default: setting agent.host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (0: a free one; default 8701).")
@click.option("--url", "advertise", help="URL others reach the agent at (default from host:port).")
@click.option("--master", help="Master URL to register with (default: setting master.url).")
@click.option("--tags", default="", help="Comma-separated tags, e.g. web,eu (default: agent.tags).")
@click.option("--region", help="Region label used by the master's affinity strategy.")
@click.option("--capacity", type=click.IntRange(1, 10_000), help="Tasks run at once.")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Also serve /metrics and /health without a token on this port.",
)
@click.option(
    "--health-checks",
    "health_checks",
    is_flag=False,
    flag_value="default",
    default=None,
    metavar="[FILE]",
    help="Run health checks: the default CPU/memory/disk set, or those of FILE.",
)
@click.option("--token", help="Cluster token (default: SLOTHLAB_TOKEN or <home>/token).")
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the cluster token from this file.",
)
def start_command(**options: Any) -> None:
    """Start an agent and serve until SIGTERM or Ctrl-C.

    With --port 0 it prints "agent NAME listening on http://HOST:PORT" once it accepts
    connections.
    """
    try:
        _start(options)
    except SlothlabError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot start the agent: {exc.strerror or exc}") from None


def _start(opts: dict[str, Any]) -> None:
    from slothlab.config import load_settings

    raise_open_files_limit()  # keep-alive clients, task pipes and log streams add up
    settings = load_settings()
    name = opts["name"] or socket.gethostname().split(".")[0] or "agent"
    if not _NAME.match(name):
        raise click.BadParameter(
            "use letters, digits, '_', '.', ':' or '-' (at most 63), starting with a letter "
            "or digit",
            param_hint="--name",
        )
    token = _token(opts)
    host = opts["host"] or settings.get("agent.host")
    port = opts["port"] if opts["port"] is not None else int(settings.get("agent.port"))
    capacity = opts["capacity"] or int(settings.get("agent.capacity"))
    if not 0 <= port <= 65535 or capacity < 1:  # the settings file or environment said so
        raise click.ClickException(
            f"agent.port={port} / agent.capacity={capacity}: the port must be 0 to 65535 and "
            "the capacity at least 1; fix the setting or give --port / --capacity"
        )
    tags = [t.strip() for t in opts["tags"].split(",") if t.strip()]
    tags = tags or [str(t) for t in settings.get("agent.tags")]
    _run(settings, opts, name=name, token=token, host=host, port=port, cap=capacity, tags=tags)


def _token(opts: dict[str, Any]) -> str:
    from slothlab.security import load_or_create_token

    if opts["token"]:
        return str(opts["token"])
    if opts["token_file"] is not None:
        text = str(opts["token_file"].read_text(encoding="utf-8")).strip()
        if not text:
            raise click.BadParameter("the file is empty", param_hint="--token-file")
        return text
    return load_or_create_token()


def _run(
    settings: Any,
    opts: dict[str, Any],
    *,
    name: str,
    token: str,
    host: str,
    port: int,
    cap: int,
    tags: list[str],
) -> None:
    from slothlab.agent import AgentIdentity, Registrar, create_app, metrics_app
    from slothlab.agent._build import build_executor, build_health
    from slothlab.agent._metrics import with_custom
    from slothlab.agent.server import bind, serve
    from slothlab.metrics import default_collector, default_custom_metrics

    collector = default_collector()
    custom = default_custom_metrics()  # Lua workers hand their tasks' custom metrics back here
    executor = build_executor(settings, name, cap, collector)
    health = build_health(opts["health_checks"], collector)
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    url = opts["advertise"] or f"http://{shown}:{bound}"
    identity = AgentIdentity(name, url, tags, opts["region"])
    app = create_app(
        executor,
        token=token,
        identity=identity,
        collector=collector,
        custom=custom,
        health=health,
    )
    metrics = None
    if opts["metrics_port"] is not None:
        metrics = (metrics_app(app), bind(host, opts["metrics_port"]))
    master = opts["master"] or settings.get("master.url")
    registrar = None
    if master:
        parts = app.state.parts
        interval = float(settings.get("agent.heartbeat_interval_s"))
        beat = with_custom(parts.heartbeat, custom)
        registrar = Registrar(master, token, parts.info, beat, interval_s=interval)
    grace = float(settings.get("agent.shutdown_grace_s"))

    def ready() -> None:  # called on the server's event loop
        executor.attach_loop(asyncio.get_running_loop())
        executor.start()
        if health is not None:
            health.start()
        if registrar is not None:
            registrar.start()
        line = f"agent {name} listening on {url}"
        if metrics is not None:
            line += f" (metrics on http://{shown}:{metrics[1].getsockname()[1]}/metrics)"
        print(line, flush=True)

    def stop() -> None:
        executor.shutdown(grace)
        if registrar is not None:
            registrar.stop()
        if health is not None:
            health.close()

    serve(app, sock, metrics=metrics, on_ready=ready, on_stop=stop)
    print(f"agent {name} stopped", file=sys.stderr, flush=True)
