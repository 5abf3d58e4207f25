"""MetricsHistory across real processes: one owner, Parquet readers, crash and exit bounds."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from slothlab.errors import HistoryLockedError
from slothlab.metrics import MetricsHistory, Sample

T0 = 1_714_521_600.0


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@contextmanager
def holder(path: Path) -> Iterator[subprocess.Popen[str]]:
    """A child process that opens the history and keeps it until its stdin closes."""
    code = """
        import sys
        from slothlab.metrics import MetricsHistory
        with MetricsHistory(sys.argv[1], background=False):
            print("ready", flush=True)
            sys.stdin.read()
    """
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # blocks until the child holds the file (or dies)
        assert line.strip() == "ready", child.stderr.read() if child.stderr else line
        yield child
    finally:
        child.communicate(timeout=60)  # closes stdin (the child's cue to exit) and the pipes


def test_second_process_gets_a_message_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "h.duckdb"
    with holder(path) as child:
        with pytest.raises(HistoryLockedError) as caught:
            MetricsHistory(path, background=False)
        error = caught.value
        assert error.pid == child.pid
        assert "python" in error.command
        message = str(error)
        assert f"PID {child.pid}" in message and "over HTTP" in message and "Parquet" in message
        # The same process may try again once the failed attempt let go of its claim.
        with pytest.raises(HistoryLockedError):
            MetricsHistory(path, background=False)
    MetricsHistory(path, background=False).close()  # free once the holder is gone


def test_describe_process_is_injectable(tmp_path: Path) -> None:
    path = tmp_path / "h.duckdb"
    with holder(path) as child, pytest.raises(HistoryLockedError) as caught:
        MetricsHistory(path, background=False, describe_process=lambda pid: f"agent #{pid}")
    assert caught.value.command == f"agent #{child.pid}"


def test_parquet_readers_work_while_the_writer_runs(tmp_path: Path) -> None:
    path, out = tmp_path / "h.duckdb", tmp_path / "export"
    with MetricsHistory(path, background=False) as history:
        history.write([Sample(T0 + i, "a", "m", float(i)) for i in range(100)])
        history.export_parquet(out)
        reader = run_python(
            """
            import sys
            from slothlab.metrics import read_export
            import duckdb
            print(len(read_export(sys.argv[1])))
            glob = sys.argv[1] + "/**/*.parquet"
            print(duckdb.sql(f"SELECT sum(value) FROM read_parquet('{glob}')").fetchall()[0][0])
            """,
            str(out),
        )
        assert reader.returncode == 0, reader.stderr
        assert reader.stdout.split() == ["100", str(float(sum(range(100))))]
        history.write(Sample(T0 + 1000, "a", "m", 1.0))  # the writer is still fine
        assert history.flush() == 1


def test_sigkill_loses_at_most_the_unflushed_batch(tmp_path: Path) -> None:
    path, batch, batches = tmp_path / "h.duckdb", 500, 4
    child = run_python(
        """
        import os, signal, sys
        from slothlab.metrics import MetricsHistory, Sample
        batch, batches = int(sys.argv[2]), int(sys.argv[3])
        history = MetricsHistory(sys.argv[1], batch_rows=batch, flush_interval_s=3600,
                                 background=False)
        n = 0
        for _ in range(batches):
            history.write([Sample(1.7e9 + (n := n + 1), "a", "m", 1.0) for _ in range(batch)])
        assert history.pending_rows == 0
        history.write([Sample(1.7e9 + (n := n + 1), "a", "m", 2.0) for _ in range(batch - 1)])
        assert history.pending_rows == batch - 1
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        str(path),
        str(batch),
        str(batches),
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    with MetricsHistory(path, background=False) as history:
        counts = history.sql("SELECT value, count(*) AS n FROM samples GROUP BY value")
        assert counts.set_index("value")["n"].to_dict() == {1.0: batch * batches}
        assert history.rollup() == batches  # dirty ranges of every flushed batch survived too


def test_normal_exit_without_close_flushes_through_atexit(tmp_path: Path) -> None:
    path = tmp_path / "h.duckdb"
    child = run_python(
        """
        import sys
        from slothlab.metrics import MetricsHistory, Sample
        history = MetricsHistory(sys.argv[1], batch_rows=10_000)
        history.write([Sample(1.7e9 + i, "a", "m", 1.0) for i in range(123)])
        assert history.pending_rows == 123
        """,
        str(path),
    )
    assert child.returncode == 0, child.stderr
    with MetricsHistory(path, background=False) as history:
        assert int(history.sql("SELECT count(*) AS n FROM samples")["n"][0]) == 123
