"""Task names never block: derived names are readable and unique in document order."""

from __future__ import annotations

from typing import TYPE_CHECKING

import nbformat
import pytest

from nbflow.cells.cells import cell_from_source
from nbflow.cells.ipynb import flow_from_notebook
from nbflow.cells.naming import derive_task_name
from nbflow.terminal.headless import run_notebook_flow
from tests.notebook_helpers import Kernel

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def k() -> Iterator[Kernel]:
    kernel = Kernel()
    yield kernel
    kernel.close()


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ("df = load()\nsummary = df.describe()", "df"),
        ("(n**2 for n in range(12))", "generator_n"),
        ("[x * 2 for x in xs]", "list_x"),
        ("plt.plot(x)", "plot_x"),
        ("plt.show()", "plt_show"),
        ("df.head()", "df_head"),
        ("print(df.shape)", "print_df_shape"),
        ("display(model)", "display_model"),
        ("df", "show_df"),
        ("df['price']", "df_price"),
        ("%timeit np.histogram(x, bins)", "timeit_histogram_x"),
        ("%matplotlib inline", "matplotlib_inline"),
        ("a + b", "expr_a_b"),
        ("await client.fetch(url)", "fetch_url"),
        ("# only a comment", "cell_7"),
        ("42", "cell_7"),
    ],
)
def test_derived_names_are_readable(body: str, name: str) -> None:
    cell = cell_from_source(f"%%task\n{body}", where="cell 7", index=6)
    assert derive_task_name(cell) == name


def _notebook(path: Path, sources: list[str], *, ids: bool = True) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    if not ids:
        for cell in nb.cells:
            cell.pop("id", None)
        nb.nbformat_minor = 4
    path.write_text(nbformat.writes(nb, version=4))
    return path


REDEFINITIONS = [
    "%%task\nx = 1",
    "%%task\nx = x + 1",
    "%%task\nx = x * 10",
    "%%task\nplt_calls = []",
    "%%task\nprint(x)",
    "%%task\nprint(x)",
    "%%task x_2\ny = x",
]


@pytest.mark.parametrize("ids", [True, False])
def test_collisions_get_suffixes_in_document_order_with_or_without_cell_ids(
    tmp_path: Path, ids: bool
) -> None:
    path = _notebook(tmp_path / "nb.ipynb", REDEFINITIONS, ids=ids)
    flow = flow_from_notebook(path)
    # The explicit `x_2` keeps its name; derived ones step around it.
    assert flow.task_names == ["x", "x_3", "x_4", "plt_calls", "print_x", "print_x_2", "x_2"]
    code, state = run_notebook_flow(flow, executor="local", quiet=True)
    assert code == 0
    assert state is not None
    assert state.result["x_2"].result["y"] == 20


def test_kernel_without_cell_ids_never_replaces_a_task_silently(
    k: Kernel, capsys: pytest.CaptureFixture[str]
) -> None:
    k.run("%load_ext nbflow")
    for source in ["%%task\nx = 1", "%%task\nx = x + 1", "%%task\nprint(x)"]:
        result = k.shell.run_cell(source, store_history=True)  # no cell id, like nbclient
        assert result.success
    assert k.session.flow.task_names == ["x", "x_2", "print_x"]
    assert k.ns["x"] == 2
    k.shell.run_cell("%%task load\nz = 1", store_history=True)
    k.shell.run_cell("%%task load\nz = 2", store_history=True)
    err = capsys.readouterr().err
    assert "task 'load' redefined" in err and "sends no cell ids" in err


def test_rerunning_a_cell_keeps_its_suffixed_name(k: Kernel) -> None:
    k.run("%load_ext nbflow")
    k.run("%%task\ndf = [1]", cell_id="a")
    k.run("%%task\ndf = df + [2]", cell_id="b")
    k.run("%%task\ndf = df + [3]", cell_id="b")
    assert k.session.flow.task_names == ["df", "df_2"]


def test_an_explicit_name_moves_a_derived_one_aside(k: Kernel, capsys: pytest.CaptureFixture[str]) -> None:
    k.run("%load_ext nbflow")
    k.run("%%task\nclean = 1", cell_id="a")
    k.run("%%task clean\nother = 2", cell_id="b")
    assert k.session.flow.task_names == ["clean_2", "clean"]
    assert "is now 'clean_2'" in capsys.readouterr().err
