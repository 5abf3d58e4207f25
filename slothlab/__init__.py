"""slothlab: Jupyter as the control room of a fleet of machines.

Importing this package is cheap: heavy libraries (lupa, duckdb, pandas, scikit-learn, plotly) are
imported by the subpackages that use them. ``%load_ext slothlab`` registers the ``%%sloth`` magic.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0.dev0"

__all__ = ["__version__", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """Register slothlab's magics with an IPython shell (``%load_ext slothlab``)."""
    from slothlab.jupyter.magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove what :func:`load_ipython_extension` added."""
    from slothlab.jupyter.magics import unload_ipython_extension as _unload

    _unload(ipython)
