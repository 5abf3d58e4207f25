"""Serving an agent: uvicorn (httptools, uvloop) on bound sockets, graceful shutdown on SIGTERM.

:func:`bind` opens the listening socket first, so port 0 resolves to a real port before anything
else (the URL the agent registers and prints). :func:`serve` runs the API server, and the
token-free metrics server when asked, in one event loop until SIGTERM or SIGINT; then the agent
stops taking tasks (``/health`` answers 503), lets running tasks finish for ``grace_s``, kills
what is left, and closes the servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["bind", "serve"]

log = logging.getLogger("slothlab.agent")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``(host, port)``; port 0 picks a free one.

    >>> sock = bind("127.0.0.1", 0)
    >>> sock.getsockname()[1] > 0
    True
    >>> sock.close()
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _server(app: Any) -> Any:
    import uvicorn

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # the agent handles signals itself

    config = uvicorn.Config(
        app,
        http=_pick("httptools", "h11"),
        lifespan="off",
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # nothing here reads the client's address: no X-Forwarded-* pass
        timeout_graceful_shutdown=3,
        timeout_keep_alive=30,
    )
    return _Server(config)


def _pick(preferred: str, fallback: str) -> str:
    try:
        __import__(preferred)
    except ImportError:
        return fallback
    return preferred


def serve(
    app: Any,
    sock: socket.socket,
    *,
    metrics: tuple[Any, socket.socket] | None = None,
    on_ready: Callable[[], None] = lambda: None,
    on_stop: Callable[[], None] = lambda: None,
) -> None:
    """Serve until SIGTERM/SIGINT; then call ``on_stop`` (in a thread) and close the servers.

    Args:
        app: the agent's ASGI app.
        sock: its listening socket (:func:`bind`).
        metrics: ``(app, socket)`` of the token-free metrics server, or None.
        on_ready: called once the servers accept connections.
        on_stop: the graceful part of shutting down (the executor's drain); the servers keep
            answering while it runs.
    """
    servers = [(_server(app), sock)]
    if metrics is not None:
        servers.append((_server(metrics[0]), metrics[1]))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        tasks = [asyncio.create_task(s.serve(sockets=[k])) for s, k in servers]
        while not all(s.started for s, _ in servers):
            if any(t.done() for t in tasks):  # one failed to start: let it raise
                await asyncio.gather(*tasks)
                return
            await asyncio.sleep(0.01)
        _freeze_startup_heap()
        on_ready()
        await stopping.wait()
        log.info("shutting down: finishing running tasks")
        await asyncio.to_thread(on_stop)
        for server, _ in servers:
            server.should_exit = True
        await asyncio.gather(*tasks)

    _run(main)


def _freeze_startup_heap() -> None:
    """Move what start-up made (modules, app, settings: most of the heap) out of the cycle
    collector's sight.

    A full collection walks every tracked object; with FastAPI, pydantic, numpy and DuckDB
    loaded that is hundreds of thousands of objects that live as long as the process, and the
    walk stalls the event loop (the master's p99 at 10,000 keep-alive connections was ~250 ms
    from these passes). Frozen objects are never collected, so only what lives for good is
    frozen: the start-up heap, once, after a collection.
    """
    gc.collect()
    gc.freeze()


def _run(main: Callable[[], Any]) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
