"""MetricsHistory in one process: writes, buffering, restart, input checks and life cycle."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from slothlab.errors import HistoryError, HistoryLockedError
from slothlab.metrics import MetricsHistory, Retention, Sample
from slothlab.metrics._history_sql import SCHEMA

T0 = 1_714_521_600.0  # 2024-05-01 00:00:00 UTC


class FakeClock:
    """A clock that moves only when the test says so."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def count(history: MetricsHistory, table: str = "samples") -> int:
    return int(history.sql(f"SELECT count(*) AS n FROM {table}")["n"][0])


def open_history(path: Path, **kwargs: object) -> MetricsHistory:
    kwargs.setdefault("background", False)
    return MetricsHistory(path, **kwargs)  # type: ignore[arg-type]


def test_samples_survive_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "h.duckdb"
    with open_history(path, batch_rows=1000) as history:
        history.write([Sample(T0 + i, "web-1", "load1", float(i)) for i in range(10)])
        assert history.pending_rows == 10  # still buffered: close must flush it
    with open_history(path) as history:
        assert count(history) == 10
        assert history.query("load1")["value"].tolist() == [float(i) for i in range(10)]


def test_dataframe_with_datetimes_and_epoch_seconds(tmp_path: Path) -> None:
    stamps = pd.to_datetime([T0, T0 + 1], unit="s", utc=True)
    frame = pd.DataFrame({"ts": stamps, "host": "a", "metric": "m", "value": [1, 2]})
    epoch = pd.DataFrame({"ts": [T0 + 2, T0 + 3.5], "host": "a", "metric": "m", "value": [3, 4]})
    naive = frame.assign(ts=stamps.tz_localize(None) + pd.Timedelta(seconds=10))
    with open_history(tmp_path / "h.duckdb") as history:
        assert history.write(frame) + history.write(epoch) + history.write(naive) == 6
        got = history.query("m")
    assert got["ts"].dt.tz is not None and str(got["ts"].dt.tz) == "UTC"
    seconds = [t.timestamp() - T0 for t in got["ts"]]
    assert seconds == [0.0, 1.0, 2.0, 3.5, 10.0, 11.0]


def test_arrow_table_with_labels_in_any_key_order(tmp_path: Path) -> None:
    labels = pa.array(
        [[("mount", "/"), ("dev", "sda")], [("dev", "sda"), ("mount", "/")]],
        pa.map_(pa.string(), pa.string()),
    )
    table = pa.table(
        {
            "ts": pa.array([T0, T0 + 1]),
            "host": pa.array(["a", "a"]).dictionary_encode(),
            "metric": ["disk_used_ratio", "disk_used_ratio"],
            "labels": labels,
            "value": [0.5, 0.7],
        }
    )
    with open_history(tmp_path / "h.duckdb") as history:
        history.write(table)
        history.write([Sample(T0 + 2, "a", "disk_used_ratio", 0.9, {"mount": "/", "dev": "sda"})])
        series = history.query("disk_used_ratio", step=60, level="raw")
        by_label = history.query("disk_used_ratio", labels={"mount": "/"})
    assert len(series) == 1, "the same label set in another key order must be one series"
    assert series["labels"][0] == {"dev": "sda", "mount": "/"}
    assert series["value"][0] == pytest.approx(0.7)
    assert len(by_label) == 3


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"timestamp": [T0], "host": ["a"], "metric": ["m"], "value": [1]}), "ts"),
        (pd.DataFrame({"ts": [T0], "host": [None], "metric": ["m"], "value": [1.0]}), "host"),
        (pd.DataFrame({"ts": ["x"], "host": ["a"], "metric": ["m"], "value": [1.0]}), "ts"),
        (pd.DataFrame({"ts": [T0], "host": ["a"], "metric": ["m"], "value": ["high"]}), "value"),
    ],
)
def test_bad_input_says_what_is_wrong(tmp_path: Path, frame: pd.DataFrame, message: str) -> None:
    with open_history(tmp_path / "h.duckdb") as history:
        with pytest.raises(HistoryError, match=message):
            history.write(frame)
        with pytest.raises(HistoryError, match="Samples, a pandas DataFrame or a pyarrow"):
            history.write(42)
        with pytest.raises(HistoryError, match="Sample objects"):
            history.write([(T0, "a", "m", 1.0)])
        with pytest.raises(HistoryError, match="wrong type"):
            history.write([Sample(T0, "a", "m", "high")])  # type: ignore[arg-type]
        assert count(history) == 0


def test_flushes_by_size(tmp_path: Path) -> None:
    with open_history(tmp_path / "h.duckdb", batch_rows=5) as history:
        history.write([Sample(T0 + i, "a", "m", 1.0) for i in range(4)])
        assert history.pending_rows == 4
        history.write(Sample(T0 + 4, "a", "m", 1.0))
        assert history.pending_rows == 0


def test_flushes_by_age_on_write(tmp_path: Path) -> None:
    clock = FakeClock()
    with open_history(tmp_path / "h.duckdb", clock=clock, flush_interval_s=5) as history:
        history.write(Sample(T0, "a", "m", 1.0))
        clock.now += 4.9
        history.write(Sample(T0 + 1, "a", "m", 1.0))
        assert history.pending_rows == 2
        clock.now += 0.1
        history.write(Sample(T0 + 2, "a", "m", 1.0))
        assert history.pending_rows == 0


def test_background_flusher_writes_when_writes_stop(tmp_path: Path) -> None:
    import time

    history = MetricsHistory(tmp_path / "h.duckdb", flush_interval_s=0.05)
    try:
        history.write(Sample(T0, "a", "m", 1.0))
        deadline = time.monotonic() + 10
        while history.pending_rows and time.monotonic() < deadline:
            time.sleep(0.01)  # polling the state the flusher changes, with a deadline
        assert history.pending_rows == 0
    finally:
        history.close()


def test_second_owner_in_the_same_process_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.duckdb"
    with open_history(path), pytest.raises(HistoryLockedError, match="already open in this"):
        open_history(path)
    open_history(path).close()  # released on close


def test_closed_history_refuses_writes_and_close_twice_is_fine(tmp_path: Path) -> None:
    history = open_history(tmp_path / "h.duckdb")
    history.close()
    history.close()
    assert history.closed
    with pytest.raises(HistoryError, match="closed"):
        history.write(Sample(T0, "a", "m", 1.0))


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="batch_rows"):
        MetricsHistory(tmp_path / "h.duckdb", batch_rows=0)


def test_from_settings_uses_home_and_retention(slothlab_home: Path) -> None:
    from slothlab.config import Settings

    settings = Settings(None, {"SLOTHLAB_HOME": str(slothlab_home)})
    settings_env = {"SLOTHLAB_HOME": str(slothlab_home), "SLOTHLAB_METRICS_RETENTION_RAW_DAYS": "0"}
    with MetricsHistory.from_settings(settings, background=False) as history:
        assert history.path == (slothlab_home / "metrics.duckdb").resolve()
        assert history.retention == Retention()
    with MetricsHistory.from_settings(Settings(None, settings_env), background=False) as history:
        assert history.retention.raw_s is None
        assert history.retention.minute_s == 90 * 86400


def test_empty_write_is_a_no_op(tmp_path: Path) -> None:
    with open_history(tmp_path / "h.duckdb") as history:
        assert history.write([]) == 0
        assert history.flush() == 0
        assert history.query("m").empty
        assert repr(history).endswith("(0 rows pending)>")


def test_concurrent_writers_and_the_flusher_lose_nothing(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "h.duckdb"
    history = MetricsHistory(path, batch_rows=300, flush_interval_s=0.05)

    def writer(host: str) -> None:
        for i in range(50):
            history.write([Sample(T0 + i * 20 + j, host, "m", 1.0) for j in range(20)])
            if i % 10 == 0:
                history.query("m", host=host, step=60)  # reads interleave with writes

    threads = [threading.Thread(target=writer, args=(f"h{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    history.close()
    with open_history(path) as reopened:
        assert count(reopened) == 4 * 50 * 20
        assert reopened.query("m", step=60, agg="count")["value"].sum() == 4000


def test_a_file_that_is_not_a_database_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "h.duckdb"
    junk = b"not a database " * 1000
    path.write_bytes(junk)
    with pytest.raises(HistoryError, match=r"not a valid DuckDB database.*move it away"):
        open_history(path)
    assert path.read_bytes() == junk
    open_history(tmp_path / "other.duckdb").close()  # the failed open released its claim
    with pytest.raises(HistoryError, match="move it away"):
        open_history(path)


def test_a_failed_flush_keeps_the_buffer(tmp_path: Path) -> None:
    history = open_history(tmp_path / "h.duckdb", batch_rows=1000)
    history.write([Sample(T0, "a", "m", 1.0), Sample(T0 + 1, "a", "m", 2.0)])
    history._con.execute("DROP TABLE samples")  # make the insert fail
    with pytest.raises(HistoryError, match="could not write 2 samples"):
        history.flush()
    assert history.pending_rows == 2
    history._con.execute(SCHEMA[0])  # the disk is back: the next flush writes the same rows
    assert history.flush() == 2
    history.close()
    with open_history(tmp_path / "h.duckdb") as reopened:
        assert reopened.query("m")["value"].tolist() == [1.0, 2.0]


def test_samples_may_carry_datetimes(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    naive = datetime(2024, 5, 1, 0, 0, 1)
    aware = datetime(2024, 5, 1, 0, 0, 2, tzinfo=UTC)
    with open_history(tmp_path / "h.duckdb") as history:
        history.write([Sample(naive, "a", "m", 1.0), Sample(aware, "a", "m", 2.0)])  # type: ignore[arg-type]
        got = history.query("m")
    assert [t.timestamp() - T0 for t in got["ts"]] == [1.0, 2.0]


def test_another_tools_database_is_refused(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE samples (id INTEGER, name VARCHAR)")
    con.close()
    with pytest.raises(HistoryError, match="another shape"):
        open_history(path)
    with pytest.raises(HistoryError, match="another shape"):  # the claim was released
        open_history(path)


def test_samples_stay_plain_until_the_flush_and_keep_their_order(tmp_path: Path) -> None:
    import numpy as np

    with open_history(tmp_path / "h.duckdb") as history:
        history.write([Sample(T0, "a", "m", 1.0, {"z": "1", "a": "2"})])
        history.write(Sample(T0 + 1, "a", "m", np.float64(2.0)))  # numpy numbers are numbers
        history.write(Sample(T0 + 2, "a", "m", 3))
        history.write(s for s in [Sample(T0 + 3, "b", "m", 4.0)])  # any iterable of Samples
        frame = pd.DataFrame({"ts": [T0 + 4], "host": ["a"], "metric": ["m"], "value": [5.0]})
        history.write(frame)  # tables and samples may be mixed in one buffer
        assert history.pending_rows == 5
        assert count(history) == 5  # a read flushes first
        rows = history.query("m")
        assert rows["value"].tolist() == [1.0, 2.0, 3.0, 5.0, 4.0]  # by host, then time
        assert rows["labels"][0] == {"a": "2", "z": "1"}


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (Sample("soon", "a", "m", 1.0), "ts"),  # type: ignore[arg-type]
        (Sample(T0, "a", "m", True), "value"),  # a bool is not a measurement
        (Sample(T0, 7, "m", 1.0), "host"),  # type: ignore[arg-type]
        (Sample(T0, "a", None, 1.0), "metric"),  # type: ignore[arg-type]
    ],
)
def test_one_bad_sample_refuses_the_whole_write(tmp_path: Path, bad: Sample, field: str) -> None:
    with open_history(tmp_path / "h.duckdb") as history:
        good = Sample(T0, "a", "m", 1.0)
        with pytest.raises(HistoryError, match=rf"wrong type \({field}="):
            history.write([good, bad])
        assert history.pending_rows == 0
        history.write([good])
        assert history.flush() == 1
