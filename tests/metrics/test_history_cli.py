"""``slothlab metrics import|query|export`` through click, and once as a real command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from slothlab.cli import main


@pytest.fixture
def series_csv(tmp_path: Path) -> Path:
    path = tmp_path / "cpu_busy.csv"
    lines = ["timestamp,value"] + [f"2024-05-01 00:{m:02d}:00,{m}" for m in range(10)]
    path.write_text("\n".join(lines) + "\n")
    return path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["metrics", *args])
    return result.exit_code, result.stdout, result.stderr


def test_import_query_export(tmp_path: Path, series_csv: Path) -> None:
    db = str(tmp_path / "h.duckdb")
    code, out, err = run(
        "import", str(series_csv), "--host", "db-1", "--label", "dc=eu", "--history", db
    )
    assert code == 0, err
    assert json.loads(out) == {
        "imported": [{"file": str(series_csv), "metric": "cpu_busy", "host": "db-1", "rows": 10}],
        "rows": 10,
    }
    code, out, err = run(
        "query", "cpu_busy", "--step", "5m", "--agg", "max", "--format", "json", "--history", db
    )
    assert code == 0, err
    rows = json.loads(out)
    assert [r["value"] for r in rows] == [4.0, 9.0]
    assert rows[0]["labels"] == {"dc": "eu"} and rows[0]["ts"].startswith("2024-05-01T00:00:00")
    code, out, _ = run(
        "query", "cpu_busy", "--start", "2024-05-01T00:08:00Z", "--format", "csv", "--history", db
    )
    assert out.splitlines()[0] == "ts,host,metric,labels,value" and len(out.splitlines()) == 3
    code, out, err = run("query", "cpu_busy", "--step", "300", "--format", "json", "--history", db)
    assert code == 0, err  # a bare number is seconds, as the error for a bad --step says
    assert [r["value"] for r in json.loads(out)] == [2.0, 7.0]
    code, out, _ = run("query", "--sql", "SELECT count(*) AS n FROM samples", "--history", db)
    assert code == 0 and out.split() == ["n", "10"]
    code, out, err = run("export", str(tmp_path / "pq"), "--history", db)
    assert code == 0, err
    assert json.loads(out)["days"] == ["2024-05-01"]
    assert (tmp_path / "pq" / "day=2024-05-01").is_dir()


def test_errors_are_one_line(tmp_path: Path) -> None:
    from slothlab.metrics import MetricsHistory

    db = str(tmp_path / "h.duckdb")
    MetricsHistory(db, background=False).close()
    code, _, err = run("query", "--sql", "DELETE FROM samples", "--history", db)
    assert code == 1 and err.startswith("error: sql() runs read-only") and "Traceback" not in err
    code, _, err = run("import", str(tmp_path / "missing.csv"), "--host", "h", "--history", db)
    assert code == 1 and "no such file" in err
    code, _, err = run("query", "--history", db)
    assert code == 2 and "METRIC or --sql" in err
    code, _, err = run("import", "x.csv", "--host", "h", "--label", "novalue", "--history", db)
    assert code == 2 and "KEY=VALUE" in err
    code, out, _ = run("query", "nothing", "--history", db)
    assert code == 0 and out.strip() == "(no rows)"


def test_reading_a_missing_history_is_an_error_not_an_empty_file(tmp_path: Path) -> None:
    db = tmp_path / "typo.duckdb"
    for args in (["query", "cpu"], ["query", "--sql", "SELECT 1"], ["export", str(tmp_path / "o")]):
        code, _, err = run(*args, "--history", str(db))
        assert code == 1, (args, err)
        assert err.startswith(f"error: no metrics history at {db}") and err.count("\n") == 1
    assert not db.exists()


def test_default_history_lives_in_slothlab_home(slothlab_home: Path, series_csv: Path) -> None:
    code, _, err = run("import", str(series_csv), "--host", "h")
    assert code == 0, err
    assert (slothlab_home / "metrics.duckdb").is_file()


def test_held_history_names_the_holder_without_a_traceback(tmp_path: Path) -> None:
    from slothlab.metrics import MetricsHistory

    db = tmp_path / "h.duckdb"
    code = "from slothlab.cli import main; main()"
    args = ["metrics", "query", "m", "--history", str(db)]
    with MetricsHistory(db, background=False):
        done = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: the metrics history") and "PID" in done.stderr
