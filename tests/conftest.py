"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from slothlab.config import shared_dir as _shared_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared public data folder (``$SLOTHLAB_SHARED_DIR``).

    Absent, the test is skipped with a message naming the setting; under CI its absence fails.
    """
    path = _shared_dir()
    if path is None or not path.is_dir():
        message = "set SLOTHLAB_SHARED_DIR to the shared folder (../shared next to the project)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"shared data missing under CI: {message}")
        pytest.skip(message)
    return path


@pytest.fixture
def slothlab_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh SLOTHLAB_HOME for one test, so nothing touches the user's real files."""
    home = tmp_path / "slothlab-home"
    home.mkdir()
    monkeypatch.setenv("SLOTHLAB_HOME", str(home))
    monkeypatch.delenv("SLOTHLAB_CONFIG", raising=False)
    return home
