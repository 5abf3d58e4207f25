"""The price catalogue: instance type -> hourly price and size, per provider and region.

The built-in catalogue is **illustrative**: on-demand Linux list prices as published around
:data:`PRICES_AS_OF`, for a few common types. Real prices differ (discounts, reservations, spot,
other regions, later changes); put yours in the settings file and they win::

    [cost]
    provider = "aws"
    region = "us-east-1"

    [cost.prices.aws.us-east-1]
    "m5.large" = 0.09                                        # a price for a known type
    "m7g.large" = { price = 0.0816, vcpus = 2, memory_gib = 8 }  # a new type with its size

>>> catalogue = PriceCatalogue.builtin()
>>> catalogue.get("m5.large", "aws", "us-east-1")
InstanceType(name='m5.large', hourly_price=0.096, vcpus=2, memory_gib=8.0)
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from slothlab.errors import AnalyticsError, ConfigError

if TYPE_CHECKING:
    from slothlab.config import Settings

__all__ = ["BUILTIN_PRICES", "PRICES_AS_OF", "InstanceType", "PriceCatalogue"]

PRICES_AS_OF = "2024-06"
"""When the built-in list prices were read (illustrative: check your provider's page)."""

# (hourly USD, vCPUs, memory GiB), on-demand Linux list prices around PRICES_AS_OF
BUILTIN_PRICES: dict[str, dict[str, dict[str, tuple[float, int, float]]]] = {
    "aws": {
        "us-east-1": {
            "t3.micro": (0.0104, 2, 1.0),
            "t3.small": (0.0208, 2, 2.0),
            "t3.medium": (0.0416, 2, 4.0),
            "t3.large": (0.0832, 2, 8.0),
            "t3.xlarge": (0.1664, 4, 16.0),
            "c5.large": (0.085, 2, 4.0),
            "c5.xlarge": (0.17, 4, 8.0),
            "c5.2xlarge": (0.34, 8, 16.0),
            "m5.large": (0.096, 2, 8.0),
            "m5.xlarge": (0.192, 4, 16.0),
            "m5.2xlarge": (0.384, 8, 32.0),
            "m5.4xlarge": (0.768, 16, 64.0),
            "r5.large": (0.126, 2, 16.0),
            "r5.xlarge": (0.252, 4, 32.0),
        }
    },
    "gcp": {
        "us-central1": {
            "e2-standard-2": (0.067, 2, 8.0),
            "e2-standard-4": (0.134, 4, 16.0),
            "e2-standard-8": (0.268, 8, 32.0),
            "n2-standard-2": (0.0971, 2, 8.0),
            "n2-standard-4": (0.1942, 4, 16.0),
        }
    },
    "azure": {
        "eastus": {
            "Standard_B2s": (0.0416, 2, 4.0),
            "Standard_D2s_v5": (0.096, 2, 8.0),
            "Standard_D4s_v5": (0.192, 4, 16.0),
            "Standard_D8s_v5": (0.384, 8, 32.0),
        }
    },
}
"""provider -> region -> type -> (hourly price, vCPUs, memory GiB). Illustrative list prices."""


@dataclass(frozen=True)
class InstanceType:
    """One priced instance type.

    Attributes:
        name: the provider's name for it.
        hourly_price: the price of an hour (in the catalogue's currency, USD built in).
        vcpus: virtual CPUs, or ``None`` when unknown (then it is never a rightsizing choice).
        memory_gib: memory in GiB, or ``None`` when unknown.
    """

    name: str
    hourly_price: float
    vcpus: int | None = None
    memory_gib: float | None = None

    @property
    def sized(self) -> bool:
        """True when both vCPUs and memory are known."""
        return self.vcpus is not None and self.memory_gib is not None


class PriceCatalogue:
    """Instance types by provider, region and name.

    Args:
        types: provider -> region -> name -> :class:`InstanceType`.
        provider: the provider used when a call does not name one.
        region: the region used when a call does not name one.
    """

    def __init__(
        self,
        types: Mapping[str, Mapping[str, Mapping[str, InstanceType]]],
        provider: str = "aws",
        region: str = "us-east-1",
    ) -> None:
        self._types = {p: {r: dict(t) for r, t in rs.items()} for p, rs in types.items()}
        self.provider = provider
        self.region = region

    @classmethod
    def builtin(cls) -> PriceCatalogue:
        """The illustrative built-in catalogue (see :data:`PRICES_AS_OF`)."""
        types = {
            p: {r: {n: InstanceType(n, *v) for n, v in ts.items()} for r, ts in rs.items()}
            for p, rs in BUILTIN_PRICES.items()
        }
        return cls(types)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> PriceCatalogue:
        """The built-in catalogue overridden by ``[cost.prices.<provider>.<region>]`` in the
        settings file, with ``cost.provider`` and ``cost.region`` as defaults."""
        from slothlab.config import load_settings

        settings = settings or load_settings()
        base = cls.builtin()
        tree = _read_tree(settings)
        cost = _mapping(tree.get("cost", {}), "cost")
        for provider, regions in _mapping(cost.get("prices", {}), "cost.prices").items():
            for region, entries in _mapping(regions, f"cost.prices.{provider}").items():
                where = f"cost.prices.{provider}.{region}"
                for name, entry in _mapping(entries, where).items():
                    known = base._types.get(provider, {}).get(region, {}).get(name)
                    base._add(provider, region, _entry(name, entry, known, where))
        base.provider = str(settings.get("cost.provider", base.provider))
        base.region = str(settings.get("cost.region", base.region))
        return base

    def _add(self, provider: str, region: str, item: InstanceType) -> None:
        self._types.setdefault(provider, {}).setdefault(region, {})[item.name] = item

    def types(self, provider: str | None = None, region: str | None = None) -> list[InstanceType]:
        """Every type of a provider and region, cheapest first."""
        found = self._types.get(provider or self.provider, {}).get(region or self.region, {})
        return sorted(found.values(), key=lambda t: (t.hourly_price, t.name))

    def get(
        self, name: str, provider: str | None = None, region: str | None = None
    ) -> InstanceType:
        """The type called ``name``; the error lists the known ones."""
        provider, region = provider or self.provider, region or self.region
        found = self._types.get(provider, {}).get(region, {})
        if name not in found:
            known = ", ".join(sorted(found)) or "none"
            raise AnalyticsError(
                f"no price for instance type {name!r} in {provider}/{region} (known: {known}); "
                f"add it under [cost.prices.{provider}.{region}] in the settings file"
            )
        return found[name]

    def __iter__(self) -> Iterator[tuple[str, str, InstanceType]]:
        for provider, regions in sorted(self._types.items()):
            for region, types in sorted(regions.items()):
                for item in sorted(types.values(), key=lambda t: t.name):
                    yield provider, region, item


def _read_tree(settings: Settings) -> dict[str, Any]:
    if settings.path is None or not settings.path.exists():
        return {}
    try:
        with settings.path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"settings file {settings.path} is not valid TOML: {exc}") from exc


def _mapping(node: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(node, Mapping):
        raise ConfigError(f"[{where}] in the settings file must be a table")
    return node


def _entry(name: str, entry: Any, known: InstanceType | None, where: str) -> InstanceType:
    if isinstance(entry, int | float) and not isinstance(entry, bool):
        base = known or InstanceType(name, 0.0)
        return replace(base, hourly_price=_price(entry, name, where))
    if isinstance(entry, Mapping) and "price" in entry:
        vcpus = entry.get("vcpus", known.vcpus if known else None)
        memory = entry.get("memory_gib", known.memory_gib if known else None)
        return InstanceType(
            name,
            _price(entry["price"], name, where),
            None if vcpus is None else int(vcpus),
            None if memory is None else float(memory),
        )
    raise ConfigError(
        f"{where}.{name!r} must be an hourly price or a table like "
        "{ price = 0.096, vcpus = 2, memory_gib = 8 }"
    )


def _price(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where}.{name!r}: the price must be a number >= 0, not {value!r}")
    return float(value)
