"""Every example notebook runs headless in a real ipykernel (nbclient); outputs are checked."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


def kernel_manager(tmp_path: Path) -> KernelManager:
    """A manager for a "python3" kernel on *this* interpreter, whatever kernelspecs exist.

    A kernelspec installed for the user or the system may point at another Python; one written
    to a private folder, naming ``sys.executable``, works the same on a fresh CI machine.
    """
    spec_dir = tmp_path / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (slothlab tests)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(spec_dir.parent)], ensure_native_kernel=False)
    return KernelManager(kernel_name="python3", kernel_spec_manager=specs)


def run_notebook(path: Path, tmp_path: Path, home: Path) -> Any:
    nb = nbformat.read(path, as_version=4)
    work = tmp_path / "work"
    work.mkdir()
    client = NotebookClient(
        nb,
        km=kernel_manager(tmp_path),
        timeout=120,
        startup_timeout=120,
        shutdown_kernel="immediate",
        resources={"metadata": {"path": str(work)}},
    )
    env = {**os.environ, "SLOTHLAB_HOME": str(home), "PYTHONWARNINGS": "ignore"}
    client.execute(cleanup_kc=True, env=env)  # we made the manager, so nbclient would not stop it
    return nb


def outputs(nb: Any) -> dict[str, list[Any]]:
    return {cell.id: cell.get("outputs", []) for cell in nb.cells}


def text(cell_outputs: list[Any], name: str = "stdout") -> str:
    return "".join(o["text"] for o in cell_outputs if o.get("name") == name)


def result(cell_outputs: list[Any], mime: str = "text/plain") -> str:
    (shown,) = [o for o in cell_outputs if o["output_type"] == "execute_result"]
    return str(shown["data"][mime])


def test_every_notebook_is_checked_here() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == ["01_local_lua.ipynb"]


def test_local_lua_notebook(tmp_path: Path, slothlab_home: Path) -> None:
    nb = run_notebook(NOTEBOOKS / "01_local_lua.ipynb", tmp_path, slothlab_home)
    out = outputs(nb)
    assert out["load"] == []
    assert text(out["hello"]) == "hello from Lua 5.4\n"
    assert result(out["hello"]) == "42"
    assert result(out["persist"]) == "'hello from Lua 5.4!'"
    assert out["busy"] == []  # -o stores instead of showing
    assert result(out["py-busy"]) == "['db-1', 'web-2']"
    html = result(out["df"], "text/html")
    assert "<th>cpu_sum</th>" in html and "<td>eu</td>" in html and "<td>us</td>" in html
    assert result(out["state"]) == "[1, 'hello from Lua 5.4']"
    assert (slothlab_home / "state.db").exists()  # the kernel used the test's home
    assert out["define"] == []
    run_lines = text(out["run"]).splitlines()
    assert run_lines[0].startswith("✓ build (")
    assert run_lines[1].startswith("✓ ship (") and run_lines[1].endswith("shipped app-1.4.2.tar.gz")
    assert run_lines[2].startswith("workflow release succeeded")
    assert result(out["py-release"]) == "(True, 'shipped app-1.4.2.tar.gz')"
    assert text(out["error"], "stderr") == (
        "UsageError: Lua error: cell:2: no agent answered (3 hosts tried)\n"
    )
    assert not any(o["output_type"] == "error" for o in out["error"])  # no Python traceback
    assert "SlothMagics.show_traceback=<Bool>" in text(out["config"])
