"""Settings: reading with precedence, typed values, atomic writes that keep other keys."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import threading
import tomllib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from slothlab.config import (
    DEFAULTS,
    Settings,
    check_key,
    config_path,
    env_name,
    format_value,
    load_settings,
    parse_value,
    set_value,
    unset_value,
)
from slothlab.errors import ConfigError


def _read(path: Path) -> dict[str, object]:
    return tomllib.loads(path.read_text())


# -- reading -------------------------------------------------------------------------------------


def test_precedence_env_over_file_over_default(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[lua]\npool_size = 3\nmax_memory_mb = 64\n")
    settings = Settings(path, environ={"SLOTHLAB_LUA_POOL_SIZE": "5"})
    assert settings.get("lua.pool_size") == 5
    assert settings.source("lua.pool_size") == "env"
    assert settings.get("lua.max_memory_mb") == 64
    assert settings.source("lua.max_memory_mb") == "file"
    assert settings.get("lua.task_cpu_s") == DEFAULTS["lua.task_cpu_s"]
    assert settings.source("lua.task_cpu_s") == "default"
    assert settings.source("no.such") == "unset"
    assert settings.get("no.such") is None


def test_existing_keys_others_read_are_kept() -> None:
    for key in ("state.path", "lua.max_memory_mb", "metrics.history_path", "master.port"):
        assert key in DEFAULTS


def test_load_settings_and_config_path_follow_home(slothlab_home: Path) -> None:
    assert config_path() == slothlab_home / "config.toml"
    assert load_settings().path is None  # no file yet: defaults only
    set_value(config_path(), "lua.pool_size", 7)
    settings = load_settings()
    assert settings.path == slothlab_home / "config.toml"
    assert settings.get("lua.pool_size") == 7
    assert settings.state_path() == slothlab_home / "state.db"


def test_slothlab_config_names_another_file(
    slothlab_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "elsewhere" / "settings.toml"
    monkeypatch.setenv("SLOTHLAB_CONFIG", str(other))
    assert config_path() == other
    set_value(config_path(), "agent.region", "eu-1")
    assert load_settings().get("agent.region") == "eu-1"
    assert not (slothlab_home / "config.toml").exists()


def test_env_override_of_a_list_default_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(None, environ={"SLOTHLAB_AGENT_TAGS": '["web", "eu"]'})
    assert settings.get("agent.tags", []) == ["web", "eu"]


def test_env_override_with_a_bad_number_names_the_variable() -> None:
    settings = Settings(None, environ={"SLOTHLAB_LUA_POOL_SIZE": "two"})
    with pytest.raises(ConfigError, match="SLOTHLAB_LUA_POOL_SIZE='two' is not a number"):
        settings.get("lua.pool_size")


def test_env_name() -> None:
    assert env_name("metrics.history_path") == "SLOTHLAB_METRICS_HISTORY_PATH"


# -- bad files -----------------------------------------------------------------------------------


def test_bad_toml_names_file_and_line_and_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    broken = "[lua]\npool_size = 2\nmax_memory_mb = = 3\n"
    path.write_text(broken)
    with pytest.raises(ConfigError) as info:
        Settings(path)
    message = str(info.value)
    assert str(path) in message and "line 3" in message
    with pytest.raises(ConfigError, match="line 3"):
        set_value(path, "lua.pool_size", 4)
    with pytest.raises(ConfigError, match="line 3"):
        unset_value(path, "lua.pool_size")
    assert path.read_text() == broken


# -- keys and values -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["agent.port", "features.ai_optimization", "a.b.c", "x-y.z_1"])
def test_good_keys(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("port", "needs a section"),
        ("agent.", "invalid part ''"),
        ("agent..port", "invalid part ''"),
        ("agent.po rt", "invalid part 'po rt'"),
        ("agent.pört", "invalid part"),
    ],
)
def test_bad_keys_say_what_is_allowed(key: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_key(key)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("false", False),
        ("8080", 8080),
        ("-3", -3),
        ("1_000", 1000),
        ("0.25", 0.25),
        ("1e3", 1000.0),
        ("hello", "hello"),
        ("hello world", "hello world"),
        ("", ""),
        ('"42"', "42"),
        ("'true'", "true"),
        ('["web", "eu"]', ["web", "eu"]),
        ("[1, 2.5]", [1, 2.5]),
        ("{cpu = 0.5}", {"cpu": 0.5}),
        ("2024-01-31", dt.date(2024, 1, 31)),
        ("http://127.0.0.1:8700", "http://127.0.0.1:8700"),
        ("1\nother = 2", "1\nother = 2"),
    ],
)
def test_parse_value_is_toml_with_plain_text_fallback(text: str, value: object) -> None:
    parsed = parse_value(text)
    assert parsed == value
    assert type(parsed) is type(value)


@pytest.mark.parametrize("text", ["[1, 2", '"open', "{a = "])
def test_broken_toml_looking_values_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="not a valid TOML value"):
        parse_value(text, key="x.y")


@pytest.mark.parametrize(
    ("text", "like", "value"),
    [
        ("yes", False, True),
        ("OFF", True, False),
        ("4", 2, 4),
        ("4", 1.5, 4.0),
        ("0.5", 1.5, 0.5),
        ("8080", "", "8080"),
        ('"quoted"', "", "quoted"),
        ('["a"]', [], ["a"]),
    ],
)
def test_known_keys_are_typed_like_their_default(text: str, like: object, value: object) -> None:
    parsed = parse_value(text, like)
    assert parsed == value
    assert type(parsed) is type(value)


@pytest.mark.parametrize(
    ("text", "like", "message"),
    [
        ("maybe", True, "not a boolean"),
        ("2.5", 2, "not a whole number"),
        ("true", 2, "not a whole number"),
        ("fast", 1.5, "not a number"),
        ("a", [], "not a list"),
        ("-5", 8701, "0 or more"),
        ("-0.5", 1.5, "0 or more"),
        ("nan", 1.5, "finite"),
        ("inf", 1.5, "finite"),
    ],
)
def test_wrong_type_for_a_known_key(text: str, like: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_value(text, like, key="k.k")


def test_format_value_round_trips_through_parse_value() -> None:
    for value in (True, 3, 0.5, "a b", ["x", 1], {"a": [1, 2]}, 'quote"d', dt.date(2024, 1, 2)):
        assert parse_value(format_value(value)) == value


# -- writing -------------------------------------------------------------------------------------


def test_set_keeps_other_keys_and_sections(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[lua]\npool_size = 2\n\n[metrics]\nhistory_path = "/data/h.duckdb"\n')
    set_value(path, "lua.max_memory_mb", 128)
    set_value(path, "features.ai_optimization", True)
    set_value(path, "lua.pool_size", 6)
    assert _read(path) == {
        "lua": {"pool_size": 6, "max_memory_mb": 128},
        "metrics": {"history_path": "/data/h.duckdb"},
        "features": {"ai_optimization": True},
    }


def test_set_creates_the_file_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "config.toml"
    set_value(path, "agent.tags", ["web", "eu"])
    assert _read(path) == {"agent": {"tags": ["web", "eu"]}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_set_keeps_the_mode_of_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("")
    path.chmod(0o644)
    set_value(path, "a.b", 1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_set_replaces_the_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    set_value(path, "a.b", 1)
    before = path.stat().st_ino
    set_value(path, "a.c", 2)
    assert path.stat().st_ino != before  # a new file renamed over the old one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]  # no temp left


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    set_value(path, "a.b", 1)
    with pytest.raises(TypeError):
        set_value(path, "a.c", object())  # tomli-w cannot write it
    assert _read(path) == {"a": {"b": 1}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


def test_section_and_value_clashes_are_explained(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    set_value(path, "agent.port", 8701)
    with pytest.raises(ConfigError, match=r"agent\.port is a value .* not a section"):
        set_value(path, "agent.port.x", 1)
    set_value(path, "a.b.c", 1)
    with pytest.raises(ConfigError, match="it is a section"):
        set_value(path, "a.b", 2)
    assert _read(path)["agent"] == {"port": 8701}


def test_unset_removes_the_key_and_empty_sections(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    set_value(path, "agent.port", 8701)
    set_value(path, "a.b.c", 1)
    assert unset_value(path, "a.b.c") is True
    assert _read(path) == {"agent": {"port": 8701}}
    assert unset_value(path, "a.b.c") is False
    with pytest.raises(ConfigError, match="needs a section"):
        unset_value(path, "agent")
    assert unset_value(path, "agent.nope") is False
    assert unset_value(tmp_path / "missing.toml", "agent.port") is False


def test_concurrent_writers_lose_no_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for j in range(10):
                set_value(path, f"w{i}.k{j}", j)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    tree = _read(path)
    assert all(tree[f"w{i}"] == {f"k{j}": j for j in range(10)} for i in range(4))


def test_real_home_is_not_touched(slothlab_home: Path) -> None:
    assert os.environ["SLOTHLAB_HOME"] == str(slothlab_home)
    assert config_path().is_relative_to(slothlab_home)


# -- the `slothlab config` command ---------------------------------------------------------------


def _cli(*args: str) -> Result:
    from slothlab.cli import main

    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_cli_set_then_get_both_spellings(slothlab_home: Path) -> None:
    assert _cli("config", "set", "features.ai_optimization=true").exit_code == 0
    assert _cli("config", "set", "agent.tags", '["web", "eu"]').exit_code == 0
    assert _cli("config", "set", "master.url", "http://10.0.0.5:8700").exit_code == 0
    assert _cli("config", "get", "features.ai_optimization").output == "true\n"
    assert _cli("config", "get", "agent.tags").output == '["web", "eu"]\n'
    assert _cli("config", "get", "master.url").output == "http://10.0.0.5:8700\n"
    assert _read(slothlab_home / "config.toml") == {
        "features": {"ai_optimization": True},
        "agent": {"tags": ["web", "eu"]},
        "master": {"url": "http://10.0.0.5:8700"},
    }


def test_cli_get_default_and_source(slothlab_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _cli("config", "get", "lua.pool_size", "--source").output == "2\t(default)\n"
    monkeypatch.setenv("SLOTHLAB_LUA_POOL_SIZE", "9")
    assert _cli("config", "get", "lua.pool_size", "--source").output == "9\t(env)\n"


def test_cli_get_of_an_unset_unknown_key_exits_1(slothlab_home: Path) -> None:
    result = CliRunner().invoke(_main(), ["config", "get", "plugin.colour"])
    assert result.exit_code == 1
    assert "not set and has no default" in result.output


def test_cli_set_typed_by_default_and_string_flag(slothlab_home: Path) -> None:
    _cli("config", "set", "lua.task_wall_s=90")
    _cli("config", "set", "state.path=123")
    _cli("config", "set", "--string", "plugin.version", "1.10")
    assert _read(slothlab_home / "config.toml") == {
        "lua": {"task_wall_s": 90},
        "state": {"path": "123"},
        "plugin": {"version": "1.10"},
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["lua.pool_size=many"], "not a whole number"),
        (["features.ai_optimisation=true"], "known features: ai_optimization"),
        (["features.multi_cloud=true"], "not available in this version"),
        (["features.plugins=maybe"], "not a boolean"),
        (["pool_size=2"], "needs a section"),
        (["agent.tags=[1,"], "not a valid TOML value"),
    ],
)
def test_cli_set_refuses_bad_input_without_traceback(
    slothlab_home: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(_main(), ["config", "set", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (slothlab_home / "config.toml").exists()


def test_cli_set_without_value_says_how(slothlab_home: Path) -> None:
    result = CliRunner().invoke(_main(), ["config", "set", "agent.port"])
    assert result.exit_code == 2
    assert "config set agent.port=VALUE" in result.output


def test_cli_set_warns_when_the_environment_wins(
    slothlab_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLOTHLAB_LUA_POOL_SIZE", "9")
    result = _cli("config", "set", "lua.pool_size=3")
    assert "SLOTHLAB_LUA_POOL_SIZE in the environment overrides" in result.output


def test_cli_bad_file_is_reported_and_kept(slothlab_home: Path) -> None:
    path = slothlab_home / "config.toml"
    path.write_text("[agent\nport = 1\n")
    for args in (["set", "agent.port=2"], ["list"], ["get", "agent.port"], ["unset", "a.b"]):
        result = CliRunner().invoke(_main(), ["config", *args])
        assert result.exit_code == 2, args
        assert f"{path}, line 1" in result.output
        assert "Traceback" not in result.output
    assert path.read_text() == "[agent\nport = 1\n"


def test_cli_unset(slothlab_home: Path) -> None:
    _cli("config", "set", "agent.port=8702")
    assert "removed" in _cli("config", "unset", "agent.port").output
    assert "was not set" in _cli("config", "unset", "agent.port").output
    default = DEFAULTS["agent.port"]
    assert _cli("config", "get", "agent.port", "--source").output == f"{default}\t(default)\n"
    _cli("config", "set", "plugin.colour=blue")
    _cli("config", "unset", "plugin.colour")
    assert _cli("config", "get", "plugin.colour").exit_code == 1


def test_cli_list_marks_known_keys_sources_and_defaults(
    slothlab_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cli("config", "set", "lua.pool_size=4")
    _cli("config", "set", "plugin.colour=blue")
    monkeypatch.setenv("SLOTHLAB_LUA_TASK_CPU_S", "5")
    rows = {r["key"]: r for r in json.loads(_cli("config", "list", "--json").output)}
    assert rows["lua.pool_size"] == {
        "key": "lua.pool_size",
        "value": 4,
        "source": "file",
        "known": True,
        "default": 2,
    }
    assert rows["plugin.colour"]["known"] is False
    assert rows["plugin.colour"]["source"] == "file"
    assert rows["lua.task_cpu_s"]["source"] == "env" and rows["lua.task_cpu_s"]["value"] == 5
    assert rows["lua.max_memory_mb"]["source"] == "default"
    assert rows["features.ai_optimization"]["default"] is False
    assert set(DEFAULTS) <= set(rows)
    table = _cli("config", "list").output
    assert "(unknown key)" in table and "plugin.colour" in table


def test_cli_path_and_features(slothlab_home: Path) -> None:
    assert _cli("config", "path").output.splitlines()[0] == str(slothlab_home / "config.toml")
    _cli("config", "set", "features.plugins=true")
    states = json.loads(_cli("config", "features", "--json").output)
    assert states["plugins"] == "enabled" and states["web_dashboard"] == "beta"
    assert "web_dashboard" in _cli("config", "features").output


def _main() -> click.Group:
    from slothlab.cli import main

    return main


def test_a_port_setting_must_be_a_port() -> None:
    assert parse_value("0", 8701, key="agent.port") == 0
    with pytest.raises(ConfigError, match="not a port; give one from 0 to 65535"):
        parse_value("70000", 8701, key="agent.port")


def test_a_hand_edited_wrong_type_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[agent]\nport = "abc"\nheartbeat_interval_s = 3\nnew_thing = "x"\n')
    settings = Settings(path, environ={})
    assert settings.get("agent.heartbeat_interval_s") == 3.0  # an int for a float key is fine
    assert settings.get("agent.new_thing") == "x"  # unknown keys stay as they are
    with pytest.raises(
        ConfigError, match=r'agent.port in .* is "abc", but it takes a whole number like 8701'
    ):
        settings.get("agent.port")


def test_string_flag_is_refused_for_a_number_setting(slothlab_home: Path) -> None:
    from click.testing import CliRunner

    from slothlab.cli import main

    result = CliRunner().invoke(main, ["config", "set", "agent.port", "abc", "--string"])
    assert result.exit_code == 2 and "not text; drop --string" in result.stderr
    assert not (slothlab_home / "config.toml").exists()
