"""Each family's ``__all__`` is sorted and names exactly its public members (httpx's check)."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

import slothlab

PACKAGES = sorted(
    m.name
    for m in pkgutil.walk_packages(slothlab.__path__, "slothlab.")
    if m.ispkg and not any(part.startswith("_") for part in m.name.split("."))
)


def _isort_key(name: str) -> tuple[int, str]:
    """ruff's RUF022 order: CONSTANTS, then CamelCase, then the rest, each alphabetical."""
    if name.isupper() and len(name) > 1:
        return (0, name)
    return (1 if name[:1].isupper() else 2, name)


@pytest.mark.parametrize("name", ["slothlab", *PACKAGES])
def test_all_is_sorted_and_complete(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(getattr(module, "__all__", []))
    in_order = exported in (sorted(exported), sorted(exported, key=_isort_key))
    assert in_order, f"{name}.__all__ is not sorted (plainly or in ruff's RUF022 order)"
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_")
        and not isinstance(v, types.ModuleType)
        and (getattr(v, "__module__", name) + ".").startswith(name + ".")
        and n not in {"annotations", "TYPE_CHECKING"}
    }
    assert public <= set(exported) | {"annotations"}, f"{name}: public but not in __all__"
    for n in exported:
        assert hasattr(module, n), f"{name}.__all__ names {n}, which does not exist"


def test_import_is_cheap() -> None:
    import subprocess
    import sys

    code = "import sys, slothlab; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    heavy = {"lupa", "duckdb", "pandas", "sklearn", "plotly", "IPython"}
    assert heavy.isdisjoint(loaded.stdout.split()), "import slothlab pulled in a heavy library"
