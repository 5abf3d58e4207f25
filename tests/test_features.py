"""Feature flags: states from settings, beta switches per process, clear errors."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from slothlab.config import Settings, config_path, set_value
from slothlab.errors import ConfigError, FeatureError
from slothlab.features import (
    FEATURES,
    FeatureFlags,
    available_features,
    check_feature_setting,
    enable_beta_features,
    feature_defaults,
    is_enabled,
)

REQUIRED = {
    "ai_optimization": "beta",
    "predictive_scaling": "beta",
    "distributed_state": "disabled",
    "load_balancing": "enabled",
    "health_monitoring": "enabled",
    "metrics_history": "enabled",
    "workflow_engine": "enabled",
    "plugins": "beta",
    "web_dashboard": "beta",
    "multi_cloud": "disabled",
}


def _flags(tmp_path: Path, text: str = "", **environ: str) -> FeatureFlags:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return FeatureFlags(Settings(path, environ=environ))


def test_defaults_without_settings(tmp_path: Path) -> None:
    assert _flags(tmp_path).available() == REQUIRED
    assert list(_flags(tmp_path).available()) == sorted(REQUIRED)


def test_every_feature_has_a_description() -> None:
    assert set(FEATURES) == set(REQUIRED)
    assert all(f.description and f.setting == f"features.{f.name}" for f in FEATURES.values())
    assert feature_defaults()["features.distributed_state"] is True


def test_settings_turn_features_on_and_off(tmp_path: Path) -> None:
    flags = _flags(
        tmp_path, "[features]\nai_optimization = true\nload_balancing = false\nplugins = false\n"
    )
    states = flags.available()
    assert states["ai_optimization"] == "enabled"
    assert states["load_balancing"] == "disabled"
    assert states["plugins"] == "disabled"
    assert states["web_dashboard"] == "beta"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    flags = _flags(
        tmp_path,
        "[features]\nai_optimization = true\n",
        SLOTHLAB_FEATURES_AI_OPTIMIZATION="false",
        SLOTHLAB_FEATURES_WEB_DASHBOARD="on",
    )
    assert flags.state("ai_optimization") == "disabled"
    assert flags.state("web_dashboard") == "enabled"


def test_distributed_state_follows_the_master(tmp_path: Path) -> None:
    assert _flags(tmp_path).state("distributed_state") == "disabled"
    with_master = '[master]\nurl = "http://10.0.0.5:8700"\n'
    assert _flags(tmp_path, with_master).state("distributed_state") == "enabled"
    env = {"SLOTHLAB_MASTER_URL": "http://m:8700"}
    assert _flags(tmp_path, **env).state("distributed_state") == "enabled"
    off = with_master + "[features]\ndistributed_state = false\n"
    assert _flags(tmp_path, off).state("distributed_state") == "disabled"
    reason = {i.name: i.reason for i in _flags(tmp_path, with_master).describe()}
    assert "10.0.0.5" in reason["distributed_state"]


def test_multi_cloud_stays_disabled_even_when_set(tmp_path: Path) -> None:
    flags = _flags(tmp_path, "[features]\nmulti_cloud = true\n")
    assert flags.state("multi_cloud") == "disabled"
    with pytest.raises(FeatureError, match="not available in this version"):
        flags.enable_beta(["multi_cloud"])


def test_a_non_boolean_flag_in_the_file_is_explained(tmp_path: Path) -> None:
    flags = _flags(tmp_path, '[features]\nplugins = "yes"\n')
    with pytest.raises(ConfigError, match=r"features\.plugins must be true or false"):
        flags.available()


def test_enable_beta_for_this_instance_only(tmp_path: Path) -> None:
    flags = _flags(tmp_path)
    assert flags.enable_beta(["ai_optimization", "plugins", "ai_optimization"]) == [
        "ai_optimization",
        "plugins",
    ]
    assert flags.is_enabled("ai_optimization") and flags.is_enabled("plugins")
    assert _flags(tmp_path).state("ai_optimization") == "beta"  # a fresh one is untouched
    assert not (tmp_path / "config.toml").read_text()  # nothing written


def test_children_see_the_parents_switches_not_the_reverse(tmp_path: Path) -> None:
    parent = _flags(tmp_path)
    child = FeatureFlags(parent.settings(), parent=parent)
    parent.enable_beta(["plugins"])
    child.enable_beta(["web_dashboard"])
    assert child.is_enabled("plugins") and child.is_enabled("web_dashboard")
    assert parent.state("web_dashboard") == "beta"


def test_enable_accepts_stable_features_that_are_on(tmp_path: Path) -> None:
    assert _flags(tmp_path).enable_beta(["load_balancing"]) == ["load_balancing"]


def test_enable_is_all_or_nothing(tmp_path: Path) -> None:
    flags = _flags(tmp_path)
    with pytest.raises(FeatureError) as info:
        flags.enable_beta(["plugins", "ai_optimisation"])
    message = str(info.value)
    assert "unknown feature 'ai_optimisation'" in message
    assert all(name in message for name in REQUIRED)
    assert flags.state("plugins") == "beta"


def test_enable_refuses_what_settings_turned_off(tmp_path: Path) -> None:
    flags = _flags(tmp_path, "[features]\nweb_dashboard = false\n")
    with pytest.raises(FeatureError, match=r"turned off by features\.web_dashboard = false in /"):
        flags.enable_beta(["web_dashboard"])
    env = _flags(tmp_path, SLOTHLAB_FEATURES_PLUGINS="0")
    with pytest.raises(FeatureError, match="in the environment"):
        env.enable_beta(["plugins"])


def test_enable_refuses_the_cluster_feature(tmp_path: Path) -> None:
    with pytest.raises(FeatureError, match="on when a master is configured"):
        _flags(tmp_path).enable_beta(["distributed_state"])


def test_enable_with_persist_writes_the_settings(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[agent]\nregion = "eu-1"\n')
    flags = FeatureFlags(Settings(path, environ={}))
    flags.enable_beta(["predictive_scaling", "load_balancing"], persist=True)
    assert tomllib.loads(path.read_text()) == {
        "agent": {"region": "eu-1"},
        "features": {"predictive_scaling": True},
    }
    assert FeatureFlags(Settings(path, environ={})).state("predictive_scaling") == "enabled"


def test_process_functions_read_the_home_settings(slothlab_home: Path) -> None:
    set_value(config_path(), "features.web_dashboard", True)
    assert available_features()["web_dashboard"] == "enabled"
    assert is_enabled("web_dashboard")
    explicit = Settings(None, environ={})
    assert available_features(explicit)["web_dashboard"] == "beta"


def test_process_switch_in_a_fresh_interpreter(slothlab_home: Path) -> None:
    code = (
        "from slothlab.features import available_features, enable_beta_features as e\n"
        "before = available_features()['plugins']\n"
        "e('plugins')\n"
        "print(before, available_features()['plugins'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["beta", "enabled"]
    assert not config_path().exists()


def test_enable_beta_features_persists_to_the_home(slothlab_home: Path) -> None:
    code = "from slothlab.features import enable_beta_features as e; e(['plugins'], persist=True)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert tomllib.loads(config_path().read_text()) == {"features": {"plugins": True}}
    assert available_features()["plugins"] == "enabled"


def test_enable_beta_features_unknown_name(slothlab_home: Path) -> None:
    with pytest.raises(FeatureError, match="known features: ai_optimization"):
        enable_beta_features(["nope"])


def test_check_feature_setting() -> None:
    check_feature_setting("features.plugins", True)
    check_feature_setting("features.multi_cloud", False)
    with pytest.raises(FeatureError, match="not available"):
        check_feature_setting("features.multi_cloud", True)
    with pytest.raises(FeatureError, match="unknown feature 'x'"):
        check_feature_setting("features.x", True)
