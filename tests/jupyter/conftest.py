"""A bare IPython shell with slothlab's extension loaded, one fresh runtime per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from slothlab.jupyter.magics import SlothMagics, load_ipython_extension, unload_ipython_extension


@pytest.fixture(scope="session")
def bare_shell() -> InteractiveShell:
    """One InteractiveShell for the session (IPython keeps it as a singleton)."""
    config = Config()
    config.HistoryAccessor.enabled = False
    return InteractiveShell.instance(config=config)


@pytest.fixture
def shell(bare_shell: InteractiveShell, slothlab_home: Path) -> Iterator[InteractiveShell]:
    """The shell with a fresh :class:`SlothMagics` (so a fresh Lua runtime) for this test."""
    before = set(bare_shell.user_ns)
    load_ipython_extension(bare_shell)
    yield bare_shell
    unload_ipython_extension(bare_shell)
    bare_shell.config.pop("SlothMagics", None)  # %config writes here; the next test starts clean
    for name in set(bare_shell.user_ns) - before:
        del bare_shell.user_ns[name]


@pytest.fixture
def magics(shell: InteractiveShell) -> SlothMagics:
    """The SlothMagics instance registered on ``shell``."""
    instance = shell.magics_manager.registry["SlothMagics"]
    assert isinstance(instance, SlothMagics)
    return instance
