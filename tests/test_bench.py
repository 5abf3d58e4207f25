"""Every benchmark script starts: its name shadows no standard module and ``--help`` works.

(``bench/select.py`` once shadowed the standard ``select`` module, so every script that imported
``subprocess`` died on start; the benchmarks themselves are run by hand, not in the suite.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(BENCH.glob("*.py"))


def test_there_are_benchmarks() -> None:
    assert len(SCRIPTS) >= 5


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_script_name_shadows_no_standard_module(script: Path) -> None:
    assert script.stem not in sys.stdlib_module_names, f"rename {script.name}: it hides the stdlib"


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_script_starts(script: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage" in done.stdout.lower()
