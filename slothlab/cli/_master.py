"""``slothlab master``: run the master (registry, dispatch, state, metrics history)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from slothlab._rlimits import raise_open_files_limit
from slothlab.errors import SlothlabError

__all__ = ["master_command"]


@click.command("master")
@click.option("--host", help="Address to listen on (default: setting master.host, 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (0: a free one; default 8700).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where master.db, state.db and history.duckdb live (default: setting master.data_dir, "
    "else the slothlab home).",
)
@click.option(
    "--dashboard-port",
    type=click.IntRange(0, 65535),
    help="Also serve a minimal agents page on this port (the full dashboard comes later).",
)
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the cluster token from this file (default: SLOTHLAB_TOKEN or <home>/token).",
)
def master_command(**options: Any) -> None:
    """Start the master and serve until SIGTERM or Ctrl-C.

    Prints "master listening on http://HOST:PORT" once it accepts connections; on shutdown it
    flushes the metrics history and the registry.
    """
    try:
        _start(options)
    except SlothlabError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot start the master: {exc.strerror or exc}") from None


def _token(token_file: Path | None) -> str:
    from slothlab.security import load_or_create_token

    if token_file is None:
        return load_or_create_token()
    text = token_file.read_text(encoding="utf-8").strip()
    if not text:
        raise click.BadParameter("the file is empty", param_hint="--token-file")
    return text


def _start(opts: dict[str, Any]) -> None:
    from slothlab.agent.server import bind, serve
    from slothlab.config import load_settings
    from slothlab.master import Master, MasterConfig, create_app, dashboard_app

    raise_open_files_limit()  # a socket per keep-alive agent: 10,000 agents need > 1,024
    settings = load_settings()
    token = _token(opts["token_file"])
    host = opts["host"] or settings.get("master.host")
    port = opts["port"] if opts["port"] is not None else int(settings.get("master.port"))
    sock = bind(host, port)
    config = MasterConfig.from_settings(settings, data_dir=opts["data_dir"], token=token)
    master = Master(config)
    dash = None
    if opts["dashboard_port"] is not None:
        dash = (dashboard_app(master), bind(host, opts["dashboard_port"]))
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)

    def ready() -> None:
        line = f"master listening on http://{shown}:{sock.getsockname()[1]}"
        if dash is not None:
            line += f" (agents page on http://{shown}:{dash[1].getsockname()[1]}/)"
        print(line, flush=True)

    master.start()
    try:
        serve(create_app(master), sock, metrics=dash, on_ready=ready)
    finally:
        master.close()
    print("master stopped; history and registry flushed", flush=True)
