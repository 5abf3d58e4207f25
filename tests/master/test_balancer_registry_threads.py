"""The strategy registry loads once even when many request threads ask at the same moment."""

from __future__ import annotations

import threading

import pytest

from slothlab.master.balancer import _registry


def test_concurrent_first_lookups_all_find_the_builtins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_registry, "_strategies", {})
    monkeypatch.setattr(_registry, "_loaded", False)
    start = threading.Barrier(8)
    found: list[str] = []
    errors: list[BaseException] = []

    def lookup() -> None:
        start.wait()
        try:
            found.append(_registry.get("least_connections").name)
        except BaseException as exc:  # collected: the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=lookup) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert found == ["least_connections"] * 8
