"""The serving loop: start-up heap frozen out of the cycle collector's sight."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import gc, os, signal
from slothlab.agent.server import bind, serve

async def app(scope, receive, send):
    pass

def ready():
    print("frozen", gc.get_freeze_count(), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

serve(app, bind("127.0.0.1", 0), on_ready=ready)
print("stopped", flush=True)
"""


def test_serve_freezes_the_start_up_heap_then_stops_on_sigterm() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    frozen, stopped = done.stdout.split()[:2], done.stdout.split()[2:]
    assert frozen[0] == "frozen" and int(frozen[1]) > 10_000, done.stdout  # modules, app, ...
    assert stopped == ["stopped"]
