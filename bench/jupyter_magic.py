"""What the %%sloth magic costs over calling the Lua runtime directly.

Runs the same chunks through ``shell.run_cell_magic("sloth", ...)`` on a bare IPython shell and
through ``Runtime.execute`` (the raw baseline) in the same process, and prints one JSON document
with the per-cell times and their ratio:

    .venv/bin/python bench/jupyter_magic.py [--cells 1000] [--rows 1000] [--repeat 5]

Two cases: a trivial cell (``return 1``: the magic's fixed cost) and a cell passing ``--rows``
row dicts in with ``-i`` and back out with ``-o`` (conversion cost, which both paths pay).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any


def best_per_call(
    first: Callable[[], Any], second: Callable[[], Any], n: int, repeat: int
) -> tuple[float, float]:
    """Best seconds per call of each, over ``repeat`` interleaved runs of ``n`` calls."""
    best = [float("inf"), float("inf")]
    for _ in range(repeat):
        for i, fn in enumerate((first, second)):
            start = time.perf_counter()
            for _ in range(n):
                fn()
            best[i] = min(best[i], (time.perf_counter() - start) / n)
    return best[0], best[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1000, help="cells per timed run")
    parser.add_argument("--rows", type=int, default=1000, help="rows passed in and out")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs; the best is kept")
    args = parser.parse_args()
    os.environ["SLOTHLAB_HOME"] = tempfile.mkdtemp(prefix="slothlab-bench-")

    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    from slothlab.lua import Capabilities, Runtime

    config = Config()
    config.HistoryAccessor.enabled = False
    shell = InteractiveShell.instance(config=config)
    shell.run_line_magic("load_ext", "slothlab")
    runtime = Runtime(capabilities=Capabilities.local())
    rows = [{"host": f"h{i}", "cpu": i / args.rows, "ok": i % 2 == 0} for i in range(args.rows)]
    shell.user_ns["rows"] = rows
    row_cells = max(1, args.cells // 50)  # 20 by default

    def raw_rows() -> Any:
        runtime.set_global("rows", rows)
        return runtime.execute("return rows")[0]

    cases = {
        "trivial_cell": (
            lambda: shell.run_cell_magic("sloth", "", "return 1"),
            lambda: runtime.execute("return 1"),
            args.cells,
        ),
        "rows_in_and_out": (
            lambda: shell.run_cell_magic("sloth", "-i rows -o back", "return rows"),
            raw_rows,
            row_cells,
        ),
    }
    assert shell.run_cell_magic("sloth", "-i rows", "return rows") == rows
    report: dict[str, Any] = {"benchmark": "jupyter_magic", "params": vars(args)}
    for name, (magic, raw, n) in cases.items():
        magic_s, raw_s = best_per_call(magic, raw, n, args.repeat)
        report[name] = {
            "calls": n,
            "magic_us_per_cell": round(magic_s * 1e6, 1),
            "raw_runtime_us_per_cell": round(raw_s * 1e6, 1),
            "ratio_magic_over_raw": round(magic_s / raw_s, 2),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
