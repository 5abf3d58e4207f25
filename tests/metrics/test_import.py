"""import_series: CSV and Parquet series into the history, generated files and the shared traces."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from slothlab.errors import HistoryError
from slothlab.metrics import MetricsHistory, import_series


@pytest.fixture
def history(tmp_path: Path) -> Iterator[MetricsHistory]:
    with MetricsHistory(tmp_path / "h.duckdb", background=False) as h:
        yield h


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_with_local_times_and_labels(history: MetricsHistory, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "s.csv", "timestamp,value\n2024-01-15 12:00:00,1.5\n2024-01-15 12:05:00,2.5\n"
    )
    rows = import_series(
        history, path, metric="temp", host="lab", labels={"room": "b2"}, tz="Europe/Paris"
    )
    assert rows == 2
    got = history.query("temp", labels={"room": "b2"})
    assert [t.isoformat() for t in got["ts"]] == [
        "2024-01-15T11:00:00+00:00",
        "2024-01-15T11:05:00+00:00",
    ]
    assert got["value"].tolist() == [1.5, 2.5] and set(got["host"]) == {"lab"}


def test_parquet_with_epoch_seconds_and_other_column_names(
    history: MetricsHistory, tmp_path: Path
) -> None:
    path = tmp_path / "s.parquet"
    pd.DataFrame({"t": [1_700_000_000, 1_700_000_060], "cpu": [0.25, 0.75]}).to_parquet(path)
    assert (
        import_series(
            history, path, metric="cpu", host="h", timestamp_column="t", value_column="cpu"
        )
        == 2
    )
    got = history.query("cpu")
    assert got["ts"].iloc[0].timestamp() == 1_700_000_000
    assert history.pending_rows == 0, "import flushes"


def test_numeric_times_after_an_origin(history: MetricsHistory, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "s.csv", "timestamp,v\n0,1\n300,2\n600,3\n")
    import_series(history, path, metric="m", host="h", value_column="v", origin="2019-07-01")
    got = history.query("m")
    assert got["ts"].iloc[-1].isoformat() == "2019-07-01T00:10:00+00:00"


def test_tz_aware_text_is_kept(history: MetricsHistory, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "s.csv", "timestamp,value\n2024-01-15T12:00:00+02:00,1\n")
    import_series(history, path, metric="m", host="h", tz="America/New_York")
    assert history.query("m")["ts"].iloc[0].isoformat() == "2024-01-15T10:00:00+00:00"


@pytest.mark.parametrize(
    ("name", "text", "kwargs", "message"),
    [
        ("s.csv", "time,value\n2024-01-01,1\n", {}, "no column timestamp"),
        ("s.csv", "timestamp,value\nnot a time,1\n", {}, "does not hold times"),
        ("s.csv", "timestamp,value\n2024-01-01,high\n", {}, "not numeric"),
        ("s.txt", "timestamp,value\n", {}, r"\.csv, \.csv\.gz or \.parquet"),
        ("s.csv", 'timestamp,value\n"2024-01-01,1\n', {}, "cannot read"),
    ],
)
def test_bad_files_say_what_is_wrong(
    history: MetricsHistory,
    tmp_path: Path,
    name: str,
    text: str,
    kwargs: dict[str, str],
    message: str,
) -> None:
    path = write_csv(tmp_path / name, text)
    with pytest.raises(HistoryError, match=message):
        import_series(history, path, metric="m", host="h", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tz": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"origin": "garbage"}, "not a time"),
    ],
)
def test_bad_tz_or_origin_is_a_history_error(
    history: MetricsHistory, tmp_path: Path, kwargs: dict[str, str], message: str
) -> None:
    path = tmp_path / "n.csv"
    path.write_text("timestamp,value\n0,1\n")
    with pytest.raises(HistoryError, match=message):
        import_series(history, path, metric="m", host="h", **kwargs)


def test_missing_file(history: MetricsHistory, tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="no such file"):
        import_series(history, tmp_path / "nope.csv", metric="m", host="h")


def test_the_whole_nab_corpus_loads(history: MetricsHistory, shared_dir: Path) -> None:
    files = sorted((shared_dir / "data" / "nab" / "data").glob("*/*.csv"))
    assert len(files) >= 30
    total = 0
    for path in files:
        lines = len(path.read_text().splitlines()) - 1
        rows = import_series(history, path, metric=path.stem, host=path.parent.name)
        assert rows == lines, path
        total += rows
    catalogue = history.metrics()
    assert len(catalogue) == len({p.stem for p in files})
    assert history.sql("SELECT count(*) AS n FROM samples")["n"][0] == total
    one = files[0]
    raw = pd.read_csv(one)
    got = history.query(one.stem, host=one.parent.name)
    assert got["value"].tolist() == pytest.approx(raw["value"].tolist())
    assert got["ts"].iloc[0] == pd.Timestamp(raw["timestamp"].iloc[0], tz="UTC")


def test_azure_cluster_trace_loads_both_columns(history: MetricsHistory, shared_dir: Path) -> None:
    path = (
        shared_dir
        / "data"
        / "azure_v2_cluster_5min"
        / "vm_cpu_readings_month_aggregated_cpu_mem.csv"
    )
    for column in ("cpu_usage", "assigned_mem"):
        rows = import_series(
            history,
            path,
            metric=f"azure_{column}",
            host="azure-v2",
            value_column=column,
            origin="2019-01-01",
        )
        assert rows == 8640
    hourly = history.query("azure_cpu_usage", step="1h")
    assert len(hourly) == 720  # 30 days
    raw = pd.read_csv(path)
    assert hourly["value"].iloc[0] == pytest.approx(raw["cpu_usage"].iloc[:12].mean())
    assert history.hosts()["metrics"].tolist() == [2]
