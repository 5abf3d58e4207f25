"""The ``system`` Lua module: feature flags from Lua, host facts, an allow-listed ``env``."""

from __future__ import annotations

import os
import platform
import re
import socket
from pathlib import Path
from typing import Any

import psutil
import pytest

import slothlab
from slothlab.config import Settings, config_path, set_value
from slothlab.features import FEATURES, FeatureFlags, process_flags
from slothlab.lua import Runtime
from slothlab.lua.modules import registry
from slothlab.lua.modules.system import INFO_FIELDS, SystemModule


def _rt(**context: Any) -> Runtime:
    return Runtime(instruction_limit=1_000_000, max_memory_mb=32, context=context)


def test_registered_as_a_builtin() -> None:
    assert "system" in registry.names()
    assert isinstance(registry.get("system"), SystemModule)


def test_available_features_from_lua(slothlab_home: Path) -> None:
    (states,) = _rt().execute("return system.available_features()")
    assert set(states) == set(FEATURES)
    assert states["ai_optimization"] == "beta"
    assert states["load_balancing"] == "enabled"
    assert states["multi_cloud"] == "disabled"


def test_available_features_follow_the_settings_file(slothlab_home: Path) -> None:
    set_value(config_path(), "features.predictive_scaling", True)
    set_value(config_path(), "features.health_monitoring", False)
    (states,) = _rt().execute("return system.available_features()")
    assert states["predictive_scaling"] == "enabled"
    assert states["health_monitoring"] == "disabled"


def test_enable_beta_features_in_one_runtime_only(slothlab_home: Path) -> None:
    rt = _rt()
    ok = rt.execute(
        'local ok, err = system.enable_beta_features({"ai_optimization", "plugins"})\n'
        "local s = system.available_features()\n"
        "return ok, err, s.ai_optimization, s.plugins, system.is_enabled('plugins')"
    )
    assert ok == [True, None, "enabled", "enabled", True]
    # another runtime and the process are untouched, and nothing was written
    assert _rt().execute("return system.available_features().ai_optimization") == ["beta"]
    assert process_flags().state("ai_optimization") == "beta"
    assert not config_path().exists()


@pytest.mark.parametrize(
    "call",
    [
        'system.enable_beta_features("web_dashboard")',
        'system.enable_beta_features("web_dashboard", "plugins")',
        "system.enable_beta_features({web_dashboard = true})",
    ],
)
def test_enable_beta_features_argument_shapes(slothlab_home: Path, call: str) -> None:
    rt = _rt()
    assert rt.execute(f"return {call}") == [True]
    assert rt.execute("return system.is_enabled('web_dashboard')") == [True]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ('{"ai_optimisation"}', "unknown feature 'ai_optimisation'; known features: ai_opt"),
        ('{"multi_cloud"}', "not available in this version"),
        ('{"distributed_state"}', "on when a master is configured"),
        ("", "give at least one feature name"),
        ("{}", "give at least one feature name"),
        ("42", "not a number"),
        ("{1, 2}", "feature names are strings"),
    ],
)
def test_enable_beta_features_failures_are_nil_and_message(
    slothlab_home: Path, call: str, message: str
) -> None:
    result = _rt().execute(f"return system.enable_beta_features({call})")
    assert result[0] is None
    assert result[1].startswith("system.enable_beta_features: ")
    assert message in result[1]


def test_a_feature_turned_off_in_settings_cannot_be_switched_on(slothlab_home: Path) -> None:
    set_value(config_path(), "features.plugins", False)
    ok, message = _rt().execute('return system.enable_beta_features({"plugins"})')
    assert ok is None
    assert "slothlab config set features.plugins=true" in message


def test_a_host_given_flag_set_is_shared(tmp_path: Path) -> None:
    flags = FeatureFlags(Settings(None, environ={}))
    rt = _rt(features=flags)
    assert rt.execute('return system.enable_beta_features({"plugins"})') == [True]
    assert flags.state("plugins") == "enabled"


def test_is_enabled_errors(slothlab_home: Path) -> None:
    assert (
        _rt()
        .execute("return system.is_enabled('nope')")[1]
        .startswith("system.is_enabled: unknown feature 'nope'")
    )
    assert _rt().execute("return system.is_enabled()") == [
        None,
        "system.is_enabled: give a feature name (a string)",
    ]


def test_info_matches_the_host() -> None:
    (info,) = _rt().execute("return system.info()")
    assert sorted(info) == sorted(INFO_FIELDS)
    assert info["hostname"] == socket.gethostname()
    assert info["os"] == platform.system().lower()
    assert info["arch"] == platform.machine()
    assert info["cpus"] == os.cpu_count()
    assert info["memory_total_mb"] == psutil.virtual_memory().total // (1024 * 1024)
    assert info["python"] == platform.python_version()
    assert info["slothlab_version"] == slothlab.__version__
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["boot_time"])
    # whole numbers stay integers in Lua (no "24105.0" in messages)
    assert _rt().execute("return tostring(system.info().cpus)") == [str(os.cpu_count())]
    assert _rt().execute("return system.hostname()") == [socket.gethostname()]


def test_info_source_is_injectable() -> None:
    module = SystemModule(facts=lambda: {"hostname": "web-1", "cpus": 4})
    rt = Runtime(modules=[])
    module.install(rt)
    assert rt.execute("return system.hostname(), system.info().cpus") == ["web-1", 4]


def test_env_is_closed_by_default(slothlab_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOTHLAB_TEST_SECRET", "s3cret")
    result = _rt().execute("return system.env('SLOTHLAB_TEST_SECRET')")
    assert result[0] is None
    assert "not on the allow-list" in result[1] and "lua.env_allow" in result[1]
    assert "s3cret" not in result[1]


def test_env_reads_only_allow_listed_names(
    slothlab_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOY_ENV", "staging")
    monkeypatch.setenv("OTHER", "x")
    set_value(config_path(), "lua.env_allow", ["DEPLOY_ENV", "MISSING_ONE"])
    rt = _rt()
    assert rt.execute("return system.env('DEPLOY_ENV')") == ["staging"]
    assert rt.execute("return system.env('MISSING_ONE')") == [
        None,
        "system.env: MISSING_ONE is not set",
    ]
    assert rt.execute("return system.env('OTHER')")[0] is None
    assert rt.execute("return system.env()") == [
        None,
        "system.env: give the variable's name (a string)",
    ]


def test_env_from_the_host_context() -> None:
    rt = _rt(env_allow=["REGION"], environ={"REGION": "eu-1", "TOKEN": "t"})
    assert rt.execute("return system.env('REGION')") == ["eu-1"]
    assert rt.execute("return system.env('TOKEN')")[0] is None


def test_module_functions_do_not_expose_python_objects(slothlab_home: Path) -> None:
    result = _rt().execute(
        "local ok = pcall(function() return system.info.__class__ end)\n"
        "return ok, type(system.available_features())"
    )
    assert result == [False, "table"]
