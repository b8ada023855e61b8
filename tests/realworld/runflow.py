"""Run a converted notebook headless, or its exported module, and print the digests of the
top-level variables it leaves (as the kernel would hold them after the run).

    python -m tests.realworld.runflow headless NOTEBOOK.ipynb
    python -m tests.realworld.runflow export MODULE.py

Runs with nbflow's defaults, in the current directory; the last line is
``DIGESTS <json>``; the exit code is the run's.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from nbflow.cells.ipynb import flow_from_notebook
from nbflow.terminal.headless import run_notebook_flow
from tests.realworld.digest import namespace_digests


def _flow(mode: str, path: Path) -> Any:
    if mode == "headless":
        return flow_from_notebook(path)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.nb.notebook_flow()  # what `python MODULE.py` runs


def main(mode: str, path: str) -> int:
    code, state = run_notebook_flow(_flow(mode, Path(path)), quiet=True)
    namespace: dict[str, Any] = {}
    for task_state in (state.result if state is not None else {}).values():
        if task_state.is_successful() and isinstance(task_state.result, dict):
            namespace.update(task_state.result)
    print("DIGESTS " + json.dumps(namespace_digests(namespace)))
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2]))
