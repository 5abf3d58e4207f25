"""MetricsHistory reads: query levels and aggregates, rollups, retention, catalogue, SQL, export."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slothlab.errors import HistoryError
from slothlab.metrics import MetricsHistory, Retention, Sample, read_export

T0 = 1_714_521_600.0  # 2024-05-01 00:00:00 UTC, a Wednesday
DAY = 86400.0


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def series(
    hours: float, *, host: str = "a", metric: str = "m", every: float = 10.0
) -> pd.DataFrame:
    """A sample every ``every`` s for ``hours`` from T0, values 0, 1, 2, ..."""
    n = int(hours * 3600 / every)
    ts = T0 + np.arange(n) * every
    return pd.DataFrame(
        {"ts": ts, "host": host, "metric": metric, "value": np.arange(n, dtype=float)}
    )


def expected(frame: pd.DataFrame, step: float, agg: str) -> list[float]:
    buckets = (frame["ts"] // step) * step
    grouped = frame.groupby(buckets)["value"]
    names = {"avg": "mean", "count": "size"}
    result = grouped.agg(names.get(agg, agg))
    return [float(v) for v in result]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0 + 3 * 3600)


@pytest.fixture
def history(tmp_path: Path, clock: FakeClock) -> Iterator[MetricsHistory]:
    with MetricsHistory(tmp_path / "h.duckdb", clock=clock, background=False) as h:
        yield h


@pytest.mark.parametrize("step", [60, 300, 3600, 90])
def test_every_level_gives_the_raw_answer(history: MetricsHistory, step: int) -> None:
    """1m serves 60/300, 1h serves 3600, raw serves 90: all must equal pandas on raw rows."""
    frame = series(2.5)
    history.write(frame)
    for agg in ("avg", "min", "max", "sum", "count", "last"):
        got = history.query("m", step=step, agg=agg)
        assert got["value"].tolist() == pytest.approx(expected(frame, step, agg)), agg
        assert got["ts"].iloc[0].timestamp() == T0
        from_raw = history.query("m", step=step, agg=agg, level="raw")
        assert from_raw["value"].tolist() == pytest.approx(got["value"].tolist()), agg


def test_step_picks_the_coarsest_level_that_divides_it(history: MetricsHistory) -> None:
    history.write(series(2))
    history.rollup()
    # Sabotage the 1h rollup: a query with step 1h must read it, a 1m step must not.
    history._con.execute("UPDATE samples_1h SET sum = -1, count = 1")
    assert set(history.query("m", step="1h")["value"]) == {-1.0}
    assert -1.0 not in set(history.query("m", step="1m")["value"])
    assert -1.0 not in set(history.query("m", step="2h", level="raw")["value"])


def test_explicit_level_without_step_returns_the_rollup_rows(history: MetricsHistory) -> None:
    history.write(series(1))
    got = history.query("m", level="1m", agg="max")
    assert len(got) == 60
    assert got["value"].tolist() == expected(series(1), 60, "max")


def test_bad_query_arguments(history: MetricsHistory) -> None:
    with pytest.raises(HistoryError, match="unknown agg"):
        history.query("m", step=60, agg="median")
    with pytest.raises(HistoryError, match="multiple of 3600"):
        history.query("m", step=60, level="1h")
    with pytest.raises(HistoryError, match="unknown level"):
        history.query("m", level="5m")
    with pytest.raises(HistoryError, match="not a duration"):
        history.query("m", step="soon")
    with pytest.raises(HistoryError, match="not a time"):
        history.query("m", start="yesterday-ish")


def test_rollup_is_incremental_and_takes_late_samples(history: MetricsHistory) -> None:
    history.write(series(1))
    assert history.rollup() == 1
    assert history.rollup() == 0  # nothing new: nothing recomputed
    before = history.query("m", step=60, agg="count")["value"].tolist()
    history.write([Sample(T0 + 5, "a", "m", 1000.0)])  # late sample into the first minute
    after = history.query("m", step=60, agg="count")["value"].tolist()
    assert after[0] == before[0] + 1 and after[1:] == before[1:]
    assert history.query("m", step=3600, agg="max")["value"].tolist() == [1000.0]


def test_filters_by_host_labels_and_time(history: MetricsHistory, clock: FakeClock) -> None:
    history.write(pd.concat([series(1, host="a"), series(1, host="b")]))
    history.write(
        [Sample(T0, "c", "m", 1.0, {"mount": "/"}), Sample(T0, "c", "m", 2.0, {"mount": "/x"})]
    )
    assert set(history.query("m", host="a")["host"]) == {"a"}
    assert set(history.query("m", host=["a", "c"])["host"]) == {"a", "c"}
    assert history.query("m", labels={"mount": "/x"})["value"].tolist() == [2.0]
    window = history.query("m", host="a", start=T0 + 60, end="2024-05-01T00:02:00+00:00")
    assert len(window) == 6 and window["ts"].iloc[0].timestamp() == T0 + 60
    clock.now = T0 + 3600 + 30
    recent = history.query("m", host="a", start="-60s")
    assert recent["ts"].iloc[0].timestamp() == T0 + 3600 - 30


def test_retention_keeps_each_level_for_its_own_time(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    retention = Retention(raw_s=DAY, minute_s=3 * DAY, hour_s=10 * DAY)
    with MetricsHistory(
        tmp_path / "h.duckdb", clock=clock, retention=retention, background=False
    ) as history:
        history.write(series(2))
        clock.now = T0 + 2 * DAY
        deleted = history.apply_retention()
        assert deleted["raw"] == 720 and deleted["1m"] == 0 and deleted["1h"] == 0
        assert history.query("m").empty
        assert len(history.query("m", step=60)) == 120, "1m rollup outlives the raw rows"
        # A late sample in a pruned raw range must not wipe the rollup built before.
        history.write([Sample(T0 + 5, "a", "m", 1.0)])
        assert len(history.query("m", step=60)) == 120
        clock.now = T0 + 5 * DAY
        assert history.apply_retention()["1m"] == 120
        assert history.query("m", step=3600)["value"].tolist() == expected(series(2), 3600, "avg")
        clock.now = T0 + 20 * DAY
        history.apply_retention()
        assert history.query("m", step=3600).empty


def test_retention_none_keeps_for_ever(tmp_path: Path) -> None:
    clock = FakeClock(T0 + 1000 * DAY)
    with MetricsHistory(
        tmp_path / "h.duckdb", clock=clock, retention=Retention(None, None, None), background=False
    ) as history:
        history.write(series(1))
        assert history.apply_retention() == {"raw": 0, "1m": 0, "1h": 0}
        assert len(history.query("m")) == 360


def test_catalogue_and_latest(history: MetricsHistory) -> None:
    history.write(pd.concat([series(1, host="a"), series(1, host="b"), series(1, metric="n")]))
    history.write([Sample(T0, "a", "m", 7.0, {"core": "1"})])
    metrics = history.metrics()
    assert metrics["metric"].tolist() == ["m", "n"]
    assert metrics["hosts"].tolist() == [2, 1]
    assert metrics["last"].iloc[0].timestamp() == T0 + 3590
    hosts = history.hosts()
    assert hosts["host"].tolist() == ["a", "b"] and hosts["metrics"].tolist() == [2, 1]
    latest = history.latest("m")
    assert latest[["host", "value"]].values.tolist() == [["a", 7.0], ["a", 359.0], ["b", 359.0]]
    assert history.latest("m", host="b")["value"].tolist() == [359.0]


def test_sql_reads_and_refuses_writes(history: MetricsHistory) -> None:
    history.write(series(1))
    got = history.sql("SELECT count(*) AS n FROM samples WHERE value >= ?", [100])
    assert got["n"][0] == 260
    assert not history.sql("DESCRIBE samples").empty
    assert not history.sql("WITH x AS (SELECT 1 AS a) SELECT * FROM x").empty
    for bad in (
        "DELETE FROM samples",
        "DROP TABLE samples",
        "EXPLAIN ANALYZE DELETE FROM samples",
        "SELECT 1; DELETE FROM samples",
        "COPY samples TO 'x.csv'",
        "ATTACH 'other.db'",
        "SET threads = 1",
    ):
        with pytest.raises(HistoryError, match=r"read-only|one statement"):
            history.sql(bad)
    with pytest.raises(HistoryError, match="parse"):
        history.sql("SELEC 1")
    with pytest.raises(HistoryError, match="query failed"):
        history.sql("SELECT * FROM no_such_table")
    assert history.sql("SELECT count(*) AS n FROM samples")["n"][0] == 360
    table = history.sql(
        "SELECT ts, value FROM samples WHERE value < ? ORDER BY ts", [2], arrow=True
    )
    assert table.column("value").to_pylist() == [0.0, 1.0]
    assert str(table.schema.field("ts").type) == "timestamp[us, tz=UTC]"


def test_export_is_partitioned_by_day_and_idempotent(
    history: MetricsHistory, tmp_path: Path
) -> None:
    history.write(series(1))
    history.write(series(1).assign(ts=lambda f: f["ts"] + DAY))
    out = tmp_path / "export"
    assert history.export_parquet(out) == ["2024-05-01", "2024-05-02"]
    assert sorted(p.name for p in out.iterdir()) == ["day=2024-05-01", "day=2024-05-02"]
    assert history.export_parquet(out, start=T0 + DAY) == ["2024-05-02"]
    back = read_export(out)
    assert len(back) == 720
    assert back["value"].sum() == pytest.approx(2 * series(1)["value"].sum())
    assert str(back["ts"].dt.tz) == "UTC"
    assert len(read_export(out, metric="none")) == 0
    hourly = tmp_path / "hourly"
    assert history.export_parquet(hourly, level="1h") == ["2024-05-01", "2024-05-02"]
    assert len(read_export(hourly)) == 2


def test_export_bad_level_and_missing_folder(history: MetricsHistory, tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="unknown level"):
        history.export_parquet(tmp_path / "x", level="5m")
    assert history.export_parquet(tmp_path / "x") == []
    with pytest.raises(HistoryError, match="cannot read the export"):
        read_export(tmp_path / "nothing-here")
