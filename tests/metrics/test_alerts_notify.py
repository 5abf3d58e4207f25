"""Notifications: a webhook against a real receiver on loopback, retries, the log notifier."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from slothlab.metrics.alerts import AlertManager, AlertRule
from slothlab.metrics.notify import LogNotifier, Notification, Notifier, WebhookNotifier


@dataclass
class Receiver:
    """A tiny webhook receiver: answers with the queued codes (then 200), keeps the bodies."""

    url: str
    codes: list[int] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    hits: int = 0
    hold: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.bodies) >= count:
                    return list(self.bodies)
            time.sleep(0.01)
        raise AssertionError(f"the receiver got {len(self.bodies)} of {count} POSTs in time")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with state.lock:
                state.hits += 1
                code = state.codes.pop(0) if state.codes else 200
            if code == 0:  # hang until the test lets go (a receiver that times out)
                state.hold.wait(10)
                code = 200
            if code == 200:
                with state.lock:
                    state.bodies.append(json.loads(body))
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield state
    state.hold.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


def _manager(notifier: Notifier) -> AlertManager:
    rules = [AlertRule("DiskFull", "disk_used_ratio", ">", 0.9, severity="critical",
                       summary="{labels[mount]} is {value:.0%} full")]  # fmt: skip
    return AlertManager(rules, notifiers=[notifier], clock=lambda: 1_700_000_000.0)


def test_webhook_posts_alertmanager_payloads(receiver: Receiver) -> None:
    notifier = WebhookNotifier(receiver.url, timeout_s=5)
    manager = _manager(notifier)
    manager.evaluate({'disk_used_ratio{mount="/"}': 0.95, 'disk_used_ratio{mount="/d"}': 0.97})
    (firing,) = receiver.wait_for(1)
    assert firing["version"] == "4"
    assert firing["status"] == "firing"
    assert firing["receiver"] == "slothlab"
    assert firing["commonLabels"] == {"alertname": "DiskFull", "severity": "critical"}
    assert firing["groupLabels"] == {"alertname": "DiskFull"}
    alerts = sorted(firing["alerts"], key=lambda a: a["labels"]["mount"])
    assert [a["annotations"]["summary"] for a in alerts] == ["/ is 95% full", "/d is 97% full"]
    first = alerts[0]
    assert set(first) == {"status", "labels", "annotations", "startsAt", "endsAt",
                          "generatorURL", "fingerprint"}  # fmt: skip
    assert first["startsAt"] == "2023-11-14T22:13:20.000Z"
    assert first["endsAt"] == "0001-01-01T00:00:00Z"
    manager.evaluate({'disk_used_ratio{mount="/"}': 0.5, 'disk_used_ratio{mount="/d"}': 0.5})
    resolved = receiver.wait_for(2)[1]
    assert resolved["status"] == "resolved"
    assert all(a["endsAt"] == "2023-11-14T22:13:20.000Z" for a in resolved["alerts"])
    manager.close()
    assert (notifier.sent, notifier.failed, notifier.dropped) == (2, 0, 0)


def test_webhook_retries_server_errors(receiver: Receiver) -> None:
    receiver.codes = [500, 503]
    notifier = WebhookNotifier(receiver.url, retries=3, backoff_s=0.01)
    manager = _manager(notifier)
    manager.evaluate({"disk_used_ratio": 0.99})
    (body,) = receiver.wait_for(1)
    assert body["status"] == "firing"
    assert notifier.flush(10)
    assert (receiver.hits, notifier.sent, notifier.failed) == (3, 1, 0)
    manager.close()


def test_webhook_gives_up_after_bounded_retries(receiver: Receiver) -> None:
    receiver.codes = [500] * 10
    notifier = WebhookNotifier(receiver.url, retries=2, backoff_s=0.01)
    notifier.notify(Notification("firing", (), 0.0))
    assert notifier.flush(10)
    assert (receiver.hits, notifier.sent, notifier.failed) == (3, 0, 1)
    notifier.close()


def test_webhook_does_not_retry_a_refused_payload(receiver: Receiver) -> None:
    receiver.codes = [400]
    notifier = WebhookNotifier(receiver.url, retries=3, backoff_s=0.01)
    notifier.notify(Notification("firing", (), 0.0))
    assert notifier.flush(10)
    assert (receiver.hits, notifier.failed) == (1, 1)
    notifier.close()


def test_evaluation_does_not_wait_for_the_receiver(receiver: Receiver) -> None:
    receiver.codes = [0]  # the POST is held until the test lets go
    notifier = WebhookNotifier(receiver.url, timeout_s=30, retries=0)
    manager = _manager(notifier)
    manager.evaluate({"disk_used_ratio": 0.99})
    # Had evaluate waited for the POST, the receiver would have answered (after its 10 s hold).
    assert receiver.bodies == []
    deadline = time.monotonic() + 10
    while receiver.hits < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert receiver.hits == 1
    receiver.hold.set()
    assert receiver.wait_for(1)[0]["status"] == "firing"
    manager.close()
    assert notifier.sent == 1


def test_a_receiver_that_times_out_is_retried(receiver: Receiver) -> None:
    receiver.codes = [0, 0]  # the first two POSTs hang past the timeout
    notifier = WebhookNotifier(receiver.url, timeout_s=0.2, retries=2, backoff_s=0.01)
    notifier.notify(Notification("firing", (), 0.0))
    assert notifier.flush(10)
    assert (receiver.hits, notifier.sent, notifier.failed) == (3, 1, 0)
    notifier.close()


def test_a_closed_port_counts_as_failed(receiver: Receiver) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    notifier = WebhookNotifier(f"http://127.0.0.1:{port}/", retries=1, backoff_s=0.01)
    notifier.notify(Notification("resolved", (), 0.0))
    assert notifier.flush(10)
    assert notifier.failed == 1
    notifier.close()


def test_queue_is_bounded_and_drops_the_oldest(receiver: Receiver) -> None:
    receiver.codes = [0]  # the first POST holds the worker
    notifier = WebhookNotifier(receiver.url, timeout_s=5, queue_size=2, retries=0)
    for i in range(5):
        notifier.notify(Notification("firing", (), float(i)))
    assert notifier.dropped >= 2
    receiver.hold.set()
    assert notifier.flush(10)
    assert notifier.sent + notifier.dropped == 5
    notifier.close()


def test_bad_webhook_url() -> None:
    with pytest.raises(ValueError, match="http://"):
        WebhookNotifier("mailto:ops@example.com")


def test_log_notifier(caplog: pytest.LogCaptureFixture) -> None:
    manager = _manager(LogNotifier())
    with caplog.at_level(logging.INFO, logger="slothlab.alerts"):
        manager.evaluate({'disk_used_ratio{mount="/"}': 0.95})
        manager.evaluate({'disk_used_ratio{mount="/"}': 0.10})
    records = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert records == [
        ("ERROR", "alert DiskFull firing [critical]: / is 95% full"),
        ("INFO", "alert DiskFull resolved [critical]: / is 95% full"),
    ]


def test_a_broken_notifier_does_not_stop_the_others() -> None:
    class Broken:
        def notify(self, notification: Notification) -> None:
            raise RuntimeError("smtp down")

    got: list[Notification] = []

    class Collect:
        def notify(self, notification: Notification) -> None:
            got.append(notification)

    manager = AlertManager([AlertRule("Down", "up", "==", 0)], notifiers=[Broken(), Collect()])
    manager.evaluate({"up": 0})
    assert len(got) == 1
