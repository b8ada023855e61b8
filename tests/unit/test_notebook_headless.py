"""Headless runs (`nbflow run`), exported modules, and the same flow in all three places."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import DF_CELLS, Kernel, edges, write_notebook  # noqa: E402
from notebook_helpers import kernel as _kernel  # noqa: E402

import nbflow  # noqa: E402
from nbflow.cells.export import export_module  # noqa: E402
from nbflow.cells.ipynb import flow_from_notebook  # noqa: E402
from nbflow.core.errors import NotebookError  # noqa: E402
from nbflow.terminal.headless import run_notebook_flow  # noqa: E402

NBFLOW = [sys.executable, "-m", "nbflow.cli"]


@pytest.fixture
def k() -> Kernel:
    yield from _kernel()


def outputs_by_task(state: object) -> dict[str, str]:
    # repr: each run defines its own Frame class in its setup namespace.
    return {slug: repr(st.result) for slug, st in state.result.by_slug().items()}  # type: ignore[attr-defined]


def import_module(path: Path) -> object:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_same_edges_and_results_in_kernel_headless_and_exported_module(k: Kernel, tmp_path: Path) -> None:
    # In the kernel.
    k.run_all(DF_CELLS)
    kernel_flow, _ = k.session.build()
    k.run("%flow run --quiet")
    kernel_results = outputs_by_task(k.session.last_state)

    # Headless, from the .ipynb file.
    notebook = write_notebook(tmp_path / "frames.ipynb", DF_CELLS)
    headless = flow_from_notebook(notebook, name="notebook")
    headless_flow, _ = headless.build()
    code, state = run_notebook_flow(headless, quiet=True)
    assert code == 0
    headless_results = outputs_by_task(state)

    # From the exported module (importing runs nothing; build_flow() rebuilds it).
    module_path = tmp_path / "frames_flow.py"
    module_path.write_text(export_module(headless, source="frames.ipynb"))
    module = import_module(module_path)
    exported_flow = module.build_flow()  # type: ignore[attr-defined]
    exported_results = outputs_by_task(exported_flow.run(echo=False))

    expected_edges = {("load_data", "clean", "df"), ("clean", "summary", "df"), ("clean", "n_plotted", "df")}
    assert edges(kernel_flow.structure()) == expected_edges
    assert edges(headless_flow.structure()) == expected_edges
    assert edges(exported_flow.structure()) == expected_edges
    # In the kernel, clean rebinds df: load_data's frame goes once clean has read it, as in a
    # plain run; the kernel's df is clean's.
    assert kernel_results.pop("load_data") == "None"
    assert repr({"df": k.ns["df"]}) == kernel_results["clean"]
    assert headless_results == exported_results
    assert kernel_results == {t: r for t, r in headless_results.items() if t != "load_data"}
    assert headless_results["summary"] == repr({"summary": {"count": 3, "sum": 8}})


def test_importing_an_exported_module_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    cells = [f"%%task touch\nopen({str(marker)!r}, 'w').write('ran')\ndone = True"]
    notebook = flow_from_notebook(write_notebook(tmp_path / "t.ipynb", cells))
    module_path = tmp_path / "t_flow.py"
    module_path.write_text(export_module(notebook))
    import_module(module_path)
    assert not marker.exists()


def test_nbflow_run_prints_progress_and_exit_codes(tmp_path: Path) -> None:
    ok = write_notebook(tmp_path / "ok.ipynb", [*DF_CELLS, "%flow run"])
    done = subprocess.run([*NBFLOW, "run", str(ok)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "nbflow: running flow 'ok': 4 tasks" in done.stdout
    assert "n_plotted     running" in done.stdout and "n_plotted     ok in" in done.stdout
    assert "flow 'ok' Success: 4 tasks (4 Success)" in done.stdout

    failing = write_notebook(
        tmp_path / "fail.ipynb",
        [
            "%%params\nlimit = 1",
            "%%task check\nif limit > 2:\n    raise ValueError(f'limit {limit} too high')\nok = True",
        ],
    )
    assert subprocess.run([*NBFLOW, "run", str(failing), "--quiet"], timeout=120).returncode == 0
    done = subprocess.run(
        [*NBFLOW, "run", str(failing), "-p", "limit=5"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert "ValueError: limit 5 too high" in done.stdout
    assert "check: Failed: ValueError: limit 5 too high" in done.stdout


def test_hidden_dependency_refuses_a_headless_run_naming_task_name_and_cell(tmp_path: Path) -> None:
    path = write_notebook(
        tmp_path / "hidden.ipynb", ["%load_ext nbflow", "threshold = 3", "%%task\nbig = threshold > 2"]
    )
    done = subprocess.run([*NBFLOW, "run", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "refusing to run flow 'hidden'" in done.stderr
    assert (
        "task 'big' uses 'threshold': defined in cell 2 of hidden.ipynb, which is not a %%task, %%setup or %%params cell"
        in done.stderr
    )
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such notebook: "),
        ("{not json", "is not a valid notebook: malformed JSON at line 1, column 2"),
        ('{"cells": 3}', "is not a Jupyter notebook: it has no list of 'cells'"),
        ("[1, 2]", "is not a Jupyter notebook"),
    ],
)
def test_malformed_or_missing_notebook_is_a_clear_error(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "bad.ipynb"
    if content is not None:
        path.write_text(content)
    done = subprocess.run([*NBFLOW, "run", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_syntax_error_in_a_task_cell_names_the_cell(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "syntax.ipynb", ["%%task ok\nx = 1", "%%task broken\ny = (x +"])
    with pytest.raises(
        NotebookError, match=r"syntax error in cell 2 of syntax.ipynb, line 2: '\(' was never closed"
    ):
        flow_from_notebook(path)


def test_unknown_option_and_unknown_parameter_in_a_headless_run(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "opts.ipynb", ["%%task a --retrys 2\nx = 1"])
    done = subprocess.run([*NBFLOW, "run", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "cell 1 of opts.ipynb: unrecognized arguments: --retrys 2" in done.stderr
    path = write_notebook(tmp_path / "params.ipynb", ["%%params\nn = 1", "%%task a\nx = n"])
    done = subprocess.run(
        [*NBFLOW, "run", str(path), "-p", "m=2"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "unknown parameter 'm'; this flow's parameters are: n" in done.stderr


def test_upstream_errors_in_a_notebook(tmp_path: Path) -> None:
    missing = flow_from_notebook(write_notebook(tmp_path / "m.ipynb", ["%%task a --upstream ghost\nx = 1"]))
    with pytest.raises(NotebookError, match="cell 1 of m.ipynb: --upstream names no task 'ghost'; tasks: a"):
        missing.build()
    cyclic = flow_from_notebook(
        write_notebook(tmp_path / "c.ipynb", ["%%task a --upstream b\nx = 1", "%%task b\ny = x"])
    )
    with pytest.raises(NotebookError, match="the explicit --upstream edges make a cycle: "):
        cyclic.build()
    # A forward --upstream without a cycle is fine in document order.
    forward = flow_from_notebook(
        write_notebook(tmp_path / "f.ipynb", ["%%task a --upstream b\nx = 1", "%%task b\ny = 2"])
    )
    flow, _ = forward.build()
    assert edges(flow.structure()) == {("b", "a", None)}


def test_nbflow_export_cli_writes_a_runnable_module(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "frames.ipynb", [*DF_CELLS, "%%params\nunused = 1"])
    out = tmp_path / "frames_flow.py"
    done = subprocess.run(
        [*NBFLOW, "export", str(path), "-o", str(out)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "nb.task('clean', r'''\ndf = df.dropna()\n''')" in text
    run = subprocess.run(
        [sys.executable, str(out), "-p", "unused=2"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert "flow 'frames' Success: 4 tasks" in run.stdout


def test_notebook_metadata_names_the_flow(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "x.ipynb", ["%%task a\nx = 1"], nbflow={"name": "nightly-etl"})
    assert flow_from_notebook(path).name == "nightly-etl"
    data = json.loads(path.read_text())
    assert data["metadata"]["nbflow"]["name"] == "nightly-etl"


def test_a_plain_cell_only_symtable_rejects_never_crashes_a_headless_run(tmp_path: Path) -> None:
    # `ast.parse` accepts it; compiling it fails (`global` after assignment). A plain cell is not
    # part of the flow, so the run goes on; the same code in a task cell is a clear error.
    bad = "def f():\n    x = 1\n    global x"
    path = write_notebook(tmp_path / "odd.ipynb", ["%load_ext nbflow", bad, "%%task\ny = 1"])
    done = subprocess.run([*NBFLOW, "run", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Success: 1 task (1 Success)" in done.stdout
    task_path = write_notebook(tmp_path / "odd_task.ipynb", ["%load_ext nbflow", f"%%task\n{bad}"])
    done = subprocess.run([*NBFLOW, "run", str(task_path)], capture_output=True, text=True)
    assert done.returncode == 2
    assert (
        "syntax error in cell 2 of odd_task.ipynb, line 4: name 'x' is assigned to before global declaration"
        in done.stderr
    )
    assert "Traceback" not in done.stderr


def test_nbflow_run_results_stores_every_task_runs_result_in_a_folder(tmp_path: Path) -> None:
    import re

    import cloudpickle

    cells = [
        "%%params\nn = 3",
        "%%task rows\nrows = list(range(n))",
        "%%task sq --map rows\nsq = rows * rows",
    ]
    notebook = write_notebook(tmp_path / "stored.ipynb", cells)
    done = subprocess.run(
        [*NBFLOW, "run", str(notebook), "--results", "store", "--quiet"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,  # the relative folder is under it
        env={**os.environ, "PYTHONPATH": str(Path(nbflow.__file__).parent.parent)},  # this nbflow
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    match = re.search(
        r"^nbflow: stored the results of 2 tasks and 1 parameter under (\S+)$", done.stdout, re.M
    )
    assert match, done.stdout
    folder = Path(match[1])
    assert folder.parent == tmp_path / "store"  # a relative folder is made absolute
    stored = {p.name.split("-")[0]: p for p in folder.iterdir()}
    assert sorted(stored) == ["n", "rows", "sq"]
    assert cloudpickle.loads(stored["sq"].read_bytes()) == {"sq": [0, 1, 4]}
    assert cloudpickle.loads(stored["n"].read_bytes()) == 3

    refused = subprocess.run(
        [*NBFLOW, "run", str(notebook), "--results", "nope://bucket"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2
    assert (
        "nbflow: cannot store results at nope://bucket: ValueError: Protocol not known: nope"
        in refused.stderr
    )
