"""The master's task table: one transaction for several writes, rolled back on an error."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from slothlab.master.tasks import TaskTable
from slothlab.protocol import TaskInfo

REQUEST = {"kind": "shell", "source": "true"}


def test_batch_commits_once_and_nests(tmp_path: Path) -> None:
    table = TaskTable(tmp_path / "master.db")
    other = sqlite3.connect(tmp_path / "master.db")  # what another process would see
    with table.batch():
        table.create("t1", "k1", REQUEST, now=1.0)
        with table.batch():
            table.sending("t1", "a1", now=2.0)
            assert table.create("t2", "k1", REQUEST, now=2.0) == "t1"  # a known key, same tx
        assert other.execute("SELECT count(*) FROM tasks").fetchone() == (0,)  # not yet
    assert other.execute("SELECT id, agent, state FROM tasks").fetchall() == [
        ("t1", "a1", "sending")
    ]
    info = TaskInfo(id="t1", agent="a1", kind="shell", state="succeeded", submitted_at=1.0)
    table.record("t1", info, now=3.0)  # outside a batch: its own commit, as before
    row = table.get("t1")
    assert row is not None and row.state == "succeeded" and row.attempts == 1
    other.close()
    table.close()


def test_an_error_inside_a_batch_rolls_it_back(tmp_path: Path) -> None:
    table = TaskTable(tmp_path / "master.db")
    table.create("t0", "k0", REQUEST, now=0.0)
    with pytest.raises(RuntimeError), table.batch():
        table.create("t1", "k1", REQUEST, now=1.0)
        table.sending("t0", "a1", now=1.0)
        raise RuntimeError("boom")
    assert table.get("t1") is None
    row = table.get("t0")
    assert row is not None and (row.state, row.agent) == ("sending", None)
    with table.batch():  # the table is usable afterwards
        table.create("t1", "k1", REQUEST, now=2.0)
    assert table.get("t1") is not None
    table.close()
