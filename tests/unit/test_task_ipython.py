"""A task behaves as a Jupyter cell everywhere: magics, display, get_ipython, await, figures."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from nbflow.cells.export import export_module
from nbflow.cells.ipynb import flow_from_notebook
from nbflow.terminal.headless import run_notebook_flow
from tests.notebook_helpers import Kernel, write_notebook

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

PNG = b"\x89PNG\r\n\x1a\n"

CELLS = [
    "%load_ext nbflow",
    "%%setup\nimport asyncio\nimport numpy as np\nimport matplotlib.pyplot as plt\n%matplotlib inline",
    "%%task\nx = np.linspace(0, 1, 50)\nplt.plot(x, x**2)",
    "%%task hist\nplt.hist(x)\nplt.title('hist')\nplt.show()\nplt.plot(x)",
    "%%task shown\ndisplay({'n': len(x)})\n%timeit -n 2 -r 2 np.histogram(x, 5)\n%time total = x.sum()",
    "%%task\n%%time\ny = x * 2\nz = y.sum()",
    "%%task\n%%timeit -n 2 -r 2\nnp.sort(x)",
    "%%task\nasync def get():\n    await asyncio.sleep(0.01)\n    return 5\nfive = await get()",
    "%%task\n%env NBFLOW_TEST_VALUE=7\nimport os\nenv_value = os.environ['NBFLOW_TEST_VALUE']\nshell_name = type(get_ipython()).__name__\nprint('shell:', shell_name)",
    "%%task\n(n**2 for n in range(12))",
    "%%task\nafter = len(plt.get_fignums())",
]


def _figures(state: object) -> dict[str, int]:
    results = state.result.by_slug()  # type: ignore[attr-defined]
    return {slug: len(getattr(s.result, "figures", [])) for slug, s in results.items()}


@pytest.mark.parametrize("executor", ["local", "threads"])
def test_headless_tasks_behave_as_jupyter_cells(
    tmp_path: Path, executor: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_notebook(tmp_path / "cells.ipynb", CELLS)
    code, state = run_notebook_flow(
        flow_from_notebook(path), executor=executor, show_logs=True, output_dir=str(tmp_path / "figs")
    )
    assert code == 0, capsys.readouterr()
    values = {slug: s.result for slug, s in state.result.by_slug().items()}  # type: ignore[union-attr]
    assert values["get"]["five"] == 5
    assert values["os"]["env_value"] == "7"
    # This process may hold another test's shell; a fresh process gets a TaskShell (below).
    assert values["os"]["shell_name"].endswith("Shell")
    assert values["shown"]["total"] == pytest.approx(25.0)
    assert values["y"]["z"] == pytest.approx(50.0)
    assert values["after"]["after"] == 0  # nothing leaked from the drawing tasks
    out = capsys.readouterr().out
    assert "{'n': 50}" in out  # display() output is the task's log
    assert "per loop (mean ± std. dev. of 2 runs, 2 loops each)" in out  # %timeit and %%timeit
    assert "Wall time:" in out  # %time and %%time
    assert _figures(state)["x"] == 1 and _figures(state)["hist"] == 2
    saved = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert saved == ["hist.png", "hist_2.png", "x.png"]
    assert all((tmp_path / "figs" / name).read_bytes().startswith(PNG) for name in saved)


def test_an_exported_module_runs_magics_and_saves_figures_in_a_fresh_process(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "cells.ipynb", CELLS)
    module = tmp_path / "cells_flow.py"
    module.write_text(export_module(flow_from_notebook(path), source="cells.ipynb"))
    done = subprocess.run(
        [sys.executable, str(module), "--output-dir", str(tmp_path / "out"), "--show-logs"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "saved 3 figures" in done.stdout
    assert "shell: TaskShell" in done.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["hist.png", "hist_2.png", "x.png"]


@pytest.mark.slow
def test_dask_workers_get_a_shell_and_send_figures_back(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "cells.ipynb", CELLS)
    code, state = run_notebook_flow(flow_from_notebook(path), executor="dask", quiet=True)
    assert code == 0
    values = {slug: s.result for slug, s in state.result.by_slug().items()}  # type: ignore[union-attr]
    assert values["get"]["five"] == 5 and values["os"]["shell_name"] == "TaskShell"
    assert _figures(state)["x"] == 1 and _figures(state)["hist"] == 2


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    k = Kernel()
    yield k
    k.close()


def test_in_the_kernel_a_task_cell_shows_its_figures_and_closes_them(kernel: Kernel) -> None:
    import matplotlib

    matplotlib.use("agg")  # the in-process test shell has no inline backend
    published: list[dict] = []
    original = kernel.shell.display_pub.publish
    kernel.shell.display_pub.publish = lambda data, metadata=None, *a, **kw: (  # type: ignore[method-assign]
        published.append(data),
        original(data, metadata, *a, **kw),
    )
    kernel.run("%load_ext nbflow")
    kernel.run("%%setup\nimport matplotlib.pyplot as plt")
    kernel.run("%%task\nfig, ax = plt.subplots()\nax.plot([1, 2, 3])\ndisplay('shown')")
    kernel.run("%%task\nopen_figures = len(plt.get_fignums())")
    assert kernel.ns["open_figures"] == 0
    assert [sorted(d) for d in published] == [["text/plain"], ["image/png", "text/plain"]]
    state = kernel.session.last_states["fig"][1]
    assert state.result.figures and state.result.figures[0].startswith(PNG)
    detail = kernel.session.widget().task_detail("fig")
    assert detail["figures"] and detail["figures"][0].startswith("iVBOR")  # base64 PNG for the widget


def test_an_interactive_backend_keeps_its_live_figures(kernel: Kernel) -> None:
    import matplotlib
    import matplotlib.pyplot as plt

    previous = matplotlib.get_backend()
    plt.switch_backend("webagg")  # a real interactive backend (no GUI needed)
    try:
        kernel.run("%load_ext nbflow")
        kernel.run("%%task\nimport matplotlib.pyplot as plt\nfig = plt.figure()\n_ = plt.plot([1, 2])")
        assert plt.get_fignums(), "the task closed a figure its interactive backend still shows"
    finally:
        plt.close("all")
        plt.switch_backend(previous)
