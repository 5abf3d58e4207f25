"""Feature flags: which parts of slothlab are on, which are beta, and switching beta ones on.

Every feature has a stage. A **stable** feature is ``enabled`` unless the setting
``features.<name> = false`` turns it off. A **beta** feature reports ``beta`` (available, off)
until ``features.<name> = true`` or :func:`enable_beta_features` switches it on for this
process. ``distributed_state`` follows the cluster: ``enabled`` when a master is configured
(``master.url``), and the setting can only turn it off. A feature that is
not in this version (``multi_cloud``) is always ``disabled``.

Settings come from the settings file and ``SLOTHLAB_FEATURES_<NAME>`` environment variables
(see :mod:`slothlab.config`).

>>> from slothlab.config import Settings
>>> flags = FeatureFlags(Settings(None, environ={}))
>>> flags.state("ai_optimization"), flags.state("load_balancing"), flags.state("multi_cloud")
('beta', 'enabled', 'disabled')
>>> flags.enable_beta(["ai_optimization"])
['ai_optimization']
>>> flags.state("ai_optimization")
'enabled'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from slothlab.errors import FeatureError

if TYPE_CHECKING:
    from slothlab.config import Settings

__all__ = [
    "FEATURES",
    "Feature",
    "FeatureFlags",
    "FeatureInfo",
    "State",
    "available_features",
    "check_feature_setting",
    "enable_beta_features",
    "feature_defaults",
    "is_enabled",
    "process_flags",
]

State = Literal["enabled", "disabled", "beta"]
"""What :func:`available_features` reports for a feature."""

Stage = Literal["stable", "beta", "cluster", "unavailable"]


@dataclass(frozen=True)
class Feature:
    """One feature flag.

    Attributes:
        name: the flag's name (the setting is ``features.<name>``).
        stage: ``stable`` (on unless turned off), ``beta`` (off unless turned on), ``cluster``
            (on when a master is configured) or ``unavailable`` (not in this version).
        description: one line on what it covers.
    """

    name: str
    stage: Stage
    description: str

    @property
    def setting(self) -> str:
        """The settings key of this flag."""
        return f"features.{self.name}"


@dataclass(frozen=True)
class FeatureInfo:
    """A feature's state now and why (what :meth:`FeatureFlags.describe` lists)."""

    name: str
    state: State
    stage: Stage
    description: str
    reason: str


FEATURES: dict[str, Feature] = {
    f.name: f
    for f in (
        Feature("ai_optimization", "beta", "suggestions from task history (timeouts, placement)"),
        Feature("predictive_scaling", "beta", "forecast load and recommend capacity ahead of it"),
        Feature("distributed_state", "cluster", "state shared by every agent through the master"),
        Feature("load_balancing", "stable", "master picks agents by strategy and live metrics"),
        Feature("health_monitoring", "stable", "health checks on /health and in the registry"),
        Feature("metrics_history", "stable", "metrics kept in the DuckDB history with rollups"),
        Feature("workflow_engine", "stable", "workflows with dependencies, retries, delegation"),
        Feature("plugins", "beta", "Lua modules, detectors and backends from entry points"),
        Feature("web_dashboard", "beta", "the master's web dashboard"),
        Feature("multi_cloud", "unavailable", "agents provisioned across cloud providers"),
    )
}
"""Every known feature, by name."""

_MASTER_KEYS = ("master.url",)


def feature_defaults() -> dict[str, bool]:
    """The default of each ``features.<name>`` setting (stable and cluster ones on).

    >>> feature_defaults()["features.load_balancing"], feature_defaults()["features.plugins"]
    (True, False)
    """
    return {f.setting: f.stage in {"stable", "cluster"} for f in FEATURES.values()}


def _feature(name: str) -> Feature:
    try:
        return FEATURES[name]
    except KeyError:
        known = ", ".join(sorted(FEATURES))
        raise FeatureError(f"unknown feature {name!r}; known features: {known}") from None


class FeatureFlags:
    """Feature states from settings, plus beta features switched on at run time.

    Args:
        settings: where ``features.<name>`` is read (default: :func:`slothlab.config.
            load_settings`, read again at each question so a change shows at once).
        parent: flags whose run-time switches also count here (a Lua runtime's flags sit on
            the process's, so a script's switch stays in its runtime).
    """

    def __init__(
        self, settings: Settings | None = None, *, parent: FeatureFlags | None = None
    ) -> None:
        self._settings = settings
        self._parent = parent
        self._switched: set[str] = set()

    def settings(self) -> Settings:
        """The settings flags are read from."""
        if self._settings is not None:
            return self._settings
        from slothlab.config import load_settings

        return load_settings()

    def state(self, name: str) -> State:
        """``enabled``, ``disabled`` or ``beta`` for the feature ``name``."""
        return self._info(_feature(name), self.settings()).state

    def is_enabled(self, name: str) -> bool:
        """Whether the feature ``name`` is on."""
        return self.state(name) == "enabled"

    def available(self) -> dict[str, State]:
        """Every feature and its state, sorted by name."""
        settings = self.settings()
        return {n: self._info(FEATURES[n], settings).state for n in sorted(FEATURES)}

    def describe(self) -> list[FeatureInfo]:
        """Every feature with its state, stage, description and the reason for its state."""
        settings = self.settings()
        return [self._info(FEATURES[n], settings) for n in sorted(FEATURES)]

    def switched(self) -> set[str]:
        """Beta features switched on at run time here or in a parent."""
        inherited = self._parent.switched() if self._parent is not None else set()
        return self._switched | inherited

    def enable_beta(self, names: Iterable[str], *, persist: bool = False) -> list[str]:
        """Switch beta features on for this process (and in the settings file with ``persist``).

        A stable feature that is already on is accepted as it is. Nothing is switched unless
        every name can be.

        Returns:
            the names, in the order given.

        Raises:
            FeatureError: a name is unknown (the message lists the known ones), the feature is
                not in this version, follows the cluster, or was turned off in the settings.
        """
        chosen = list(dict.fromkeys(names))
        settings = self.settings()
        for name in chosen:
            self._check_can_enable(_feature(name), settings)
        if persist:
            self._persist(chosen, settings)
        self._switched.update(n for n in chosen if FEATURES[n].stage == "beta")
        return chosen

    def _check_can_enable(self, feature: Feature, settings: Settings) -> None:
        name = feature.name
        if feature.stage == "unavailable":
            raise FeatureError(f"feature {name!r} is not available in this version of slothlab")
        if feature.stage == "cluster":
            raise FeatureError(
                f"feature {name!r} is not a beta feature: it is on when a master is configured "
                "(slothlab config set master.url=http://HOST:8700)"
            )
        if _flag(settings, feature.setting) is False:
            where = settings.source(feature.setting)
            origin = f"{settings.path}" if where == "file" else "the environment"
            raise FeatureError(
                f"feature {name!r} is turned off by {feature.setting} = false in {origin}; "
                f"turn it on with: slothlab config set {feature.setting}=true"
            )

    def _persist(self, names: list[str], settings: Settings) -> None:
        from slothlab.config import config_path, set_value

        path = settings.path or config_path(settings.environ)
        for name in names:
            if FEATURES[name].stage == "beta":
                set_value(path, FEATURES[name].setting, True)

    def _info(self, feature: Feature, settings: Settings) -> FeatureInfo:
        state, reason = self._decide(feature, settings)
        return FeatureInfo(feature.name, state, feature.stage, feature.description, reason)

    def _decide(self, feature: Feature, settings: Settings) -> tuple[State, str]:
        value = _flag(settings, feature.setting)
        if feature.stage == "unavailable":
            return "disabled", "not available in this version"
        if value is False:
            return "disabled", f"{feature.setting} = false"
        if feature.stage == "cluster":
            master = _master(settings)
            if master:
                return "enabled", f"a master is configured ({master})"
            return "disabled", "no master configured (master.url)"
        if feature.stage == "stable":
            return "enabled", "stable"
        if value is True:
            return "enabled", f"{feature.setting} = true"
        if feature.name in self.switched():
            return "enabled", "switched on in this process"
        return "beta", "beta: off until switched on"


def _flag(settings: Settings, key: str) -> bool | None:
    from slothlab.errors import ConfigError

    value = settings.get(key, False) if settings.source(key) == "env" else settings.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise ConfigError(f"setting {key} must be true or false, not {value!r}")


def _master(settings: Settings) -> str:
    for key in _MASTER_KEYS:
        value = settings.get(key, "")
        if value:
            return str(value)
    return ""


_PROCESS = FeatureFlags()


def process_flags() -> FeatureFlags:
    """The flags of this process (settings read afresh, run-time switches kept)."""
    return _PROCESS


def available_features(settings: Settings | None = None) -> dict[str, State]:
    """Every feature and its state in this process: ``enabled``, ``disabled`` or ``beta``.

    ``settings`` replaces the settings file and environment (the process's switches still
    count).
    """
    if settings is None:
        return _PROCESS.available()
    return FeatureFlags(settings, parent=_PROCESS).available()


def enable_beta_features(names: Iterable[str] | str, *, persist: bool = False) -> list[str]:
    """Switch beta features on for this process; ``persist`` also writes them to the settings.

    Raises:
        FeatureError: see :meth:`FeatureFlags.enable_beta`.
    """
    return _PROCESS.enable_beta([names] if isinstance(names, str) else names, persist=persist)


def is_enabled(name: str) -> bool:
    """Whether the feature ``name`` is on in this process."""
    return _PROCESS.is_enabled(name)


def check_feature_setting(key: str, value: object) -> None:
    """Refuse a ``features.*`` setting that names no feature or turns on an unavailable one.

    >>> check_feature_setting("features.ai_optimizaton", True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    slothlab.errors.FeatureError: unknown feature 'ai_optimizaton'; known features: ...
    """
    name = key.split(".", 1)[1]
    feature = _feature(name)
    if feature.stage == "unavailable" and value is True:
        raise FeatureError(f"feature {name!r} is not available in this version of slothlab")
