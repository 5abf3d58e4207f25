"""``slothlab state ...`` through click's runner, on a real file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from slothlab.cli import main


@pytest.fixture
def cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "cli.db"

    def invoke(*args: str) -> tuple[int, object, str]:
        result = CliRunner().invoke(main, ["state", "--path", str(path), *args])
        out = json.loads(result.stdout) if result.exit_code == 0 else None
        return result.exit_code, out, result.stderr

    return invoke


def test_set_get_keys_del(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("set", "k", '{"a": 1}', "--ttl", "60")[1] is True
    assert cli("get", "k")[1] == {"a": 1}
    assert cli("set", "n", "42")[1] is True
    assert cli("get", "n")[1] == 42
    assert cli("set", "s", "plain text")[1] is True
    assert cli("get", "s")[1] == "plain text"
    assert cli("get", "missing")[1] is None
    assert cli("get", "missing", "--default", "[1]")[1] == [1]
    assert cli("keys")[1] == ["k", "n", "s"]
    assert cli("keys", "?")[1] == ["k", "n", "s"]
    assert cli("del", "k", "n")[1] is True
    assert cli("keys")[1] == ["s"]
    assert cli("set", "huge", "1e400")[1] is True  # not a JSON number: kept as text, like NaN
    assert cli("get", "huge")[1] == "1e400"


def test_infinity_from_lua_prints_as_json_null(tmp_path: Path) -> None:
    from slothlab.state import Store

    with Store(tmp_path / "cli.db") as store:
        store.set("inf", float("inf"))  # what state.set("inf", math.huge) stores
    result = CliRunner().invoke(main, ["state", "--path", str(tmp_path / "cli.db"), "get", "inf"])
    assert result.stdout == "null\n"


def test_ttl(cli) -> None:  # type: ignore[no-untyped-def]
    cli("set", "k", "1", "--ttl", "100")
    assert 99 < cli("ttl", "k")[1] <= 100  # type: ignore[operator]
    assert cli("ttl", "k", "--persist")[1] is True
    assert cli("ttl", "k")[1] == -1
    assert cli("ttl", "nope")[1] == -2
    assert cli("ttl", "k", "--set", "5")[1] is True


def test_locks_and_stats(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from slothlab.state import Store

    with Store(tmp_path / "cli.db", owner="me") as s:
        s.try_lock("deploy")
        code, locks, _ = cli("locks")
        assert code == 0 and [(x["name"], x["owner"]) for x in locks] == [("deploy", "me")]
    code, stats, _ = cli("stats")
    assert stats["active_locks"] == 1 and stats["db_path"] == str(tmp_path / "cli.db")


def test_errors_are_one_line_and_exit_1(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("set", "k", "1", "--ttl", "-3")
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1
    cli("set", "k", '"text"')
    code, _, err = cli("ttl", "k", "--set", "0")
    assert code == 1 and "TTL" in err
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"garbage" * 100)
    result = CliRunner().invoke(main, ["state", "--path", str(bad), "get", "k"])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: state store {bad} is corrupt")
    assert "Traceback" not in result.output


def test_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "env" / "state.db"
    monkeypatch.setenv("SLOTHLAB_STATE_PATH", str(target))
    assert CliRunner().invoke(main, ["state", "set", "k", "1"]).exit_code == 0
    assert target.exists()
