"""Settings: reading with precedence, typed values, atomic writes that keep other keys."""

from __future__ import annotations

import datetime as dt
import os
import stat
import threading
import tomllib
from pathlib import Path

import pytest

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
