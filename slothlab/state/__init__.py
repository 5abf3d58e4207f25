"""The persistent ``state`` store: typed values, TTLs, atomic operations, lists and locks.

SQLite in WAL mode underneath; the same operations as the Lua ``state`` module (see
``docs/state.md``).

>>> import tempfile, pathlib
>>> store = Store(pathlib.Path(tempfile.mkdtemp()) / "state.db")
>>> store.set("config", {"replicas": 3}), store.get("config")
(True, {'replicas': 3})
"""

from __future__ import annotations

from slothlab.state.base import LockInfo, StateBackend, StoreStats
from slothlab.state.sqlite import Store, open_store

__all__ = ["LockInfo", "StateBackend", "Store", "StoreStats", "open_store"]
