"""`nbflow convert` and `%flow adopt`: any notebook, no conventions, no hand edits."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import nbformat
import pytest

from nbflow.cells.convert import convert
from nbflow.cells.ipynb import flow_from_notebook
from nbflow.terminal.headless import run_notebook_flow
from tests.notebook_helpers import Kernel

if TYPE_CHECKING:
    from pathlib import Path

PLAIN = [
    "# the data\nimport numpy as np\nimport pandas as pd\n%matplotlib inline",
    "!pip install seaborn",
    "rng = np.random.default_rng(0)\ndf = pd.DataFrame({'a': rng.normal(size=53)})\ndf.head()",
    "df.drop(index=[0], inplace=True)\nlen(df)",
    "import matplotlib.pyplot as plt\nplt.plot(df['a'])",
    "class Config:\n    lr = 0.1\ndef scale(s, k=2):\n    return s * k",
    "df['c'] = scale(df['a'])",
    "%timeit -n 2 -r 2 df['a'].sum()",
    "(n**2 for n in range(12))",
    "%%writefile notes.txt\nhello",
    "%%html\n<b>hi</b>",
    "x = (",
    "",
    "print(df.shape)",
    "print(df.shape)",
    "%%time\ntotal = df['c'].sum()",
    "%%bash\necho hi",
]


def _notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), *(nbformat.v4.new_code_cell(c) for c in PLAIN)]
    nbformat.write(nb, str(path))
    return path


def _cells(nb: nbformat.NotebookNode) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def test_convert_makes_setup_tasks_and_plain_cells_with_reasons(tmp_path: Path) -> None:
    conversion = convert(nbformat.read(str(_notebook(tmp_path / "p.ipynb")), 4), name="p")
    cells = _cells(conversion.notebook)
    assert cells[0] == "%load_ext nbflow"
    assert cells[1] == "%%setup\n# the data\nimport numpy as np\nimport pandas as pd\n%matplotlib inline"
    assert cells[2] == "!pip install seaborn"
    assert cells[3].startswith("%%task rng\n")
    assert cells[4].startswith("%%task df_drop --mutates df\n")
    assert cells[5:7] == ["%%setup\nimport matplotlib.pyplot as plt", "%%task plot_df_a\nplt.plot(df['a'])"]
    heads = [c.partition("\n")[0] for c in cells]
    assert "%%task generator_n" in heads and "%%task timeit_df_a" in heads
    assert heads.count("%%task print_df_shape") == 1 and "%%task print_df_shape_2" in heads
    assert "%%task total" in heads and "%%task shell_echo --shell" in heads
    report = conversion.report()
    assert "left plain: cell 3: installs packages" in report
    assert "left plain: cell 11: %%writefile writes a file" in report
    assert "left plain: cell 12: %%html only displays HTML" in report
    assert "left plain: cell 13: it does not parse: syntax error in cell 13, line 1" in report
    assert "  df: scale <- Config, df <- df_drop" in report  # the edges, by name and source task
    assert "  print_df_shape_2: df <- df" in report
    assert "mutation: task 'df_drop' changes its input 'df' in place: declared with --mutates df" in report
    assert "hidden dependency" not in report
    # Converting the converted notebook changes nothing.
    again = convert(conversion.notebook, name="p")
    assert _cells(again.notebook) == cells


def test_converted_notebook_runs_headless_with_the_values_of_a_plain_run(tmp_path: Path) -> None:
    source = _notebook(tmp_path / "p.ipynb")
    done = subprocess.run(
        [sys.executable, "-m", "nbflow.cli", "convert", str(source), "-o", str(tmp_path / "c.ipynb")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and "tasks and their inputs" in done.stdout
    code, state = run_notebook_flow(flow_from_notebook(tmp_path / "c.ipynb"), quiet=True)
    assert code == 0
    results = state.result.by_slug()  # type: ignore[union-attr]
    assert len(results["df"].result["df"]) == 52
    assert results["total"].result["total"] == pytest.approx(2 * results["df"].result["df"]["a"].sum())


def test_convert_refuses_to_overwrite_the_notebook_without_in_place(tmp_path: Path) -> None:
    source = _notebook(tmp_path / "p.ipynb")
    done = subprocess.run(
        [sys.executable, "-m", "nbflow.cli", "convert", str(source), "-o", str(source)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "--in-place" in done.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "nbflow.cli", "convert", str(tmp_path / "nope.ipynb")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "no such notebook" in missing.stderr


def test_flow_adopt_prints_the_changes_and_writes_the_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _notebook(tmp_path / "p.ipynb")
    k = Kernel()
    try:
        k.run("%load_ext nbflow")
        monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
        k.run("%flow adopt", expect_error=True)
        assert "give its path: %flow adopt NOTEBOOK.ipynb" in capsys.readouterr().err
        monkeypatch.setenv("JPY_SESSION_NAME", str(source))
        k.run(f"%flow adopt --write {tmp_path / 'adopted.ipynb'}")
        out = capsys.readouterr().out
        assert "cell 2: add `%%setup` as its first line" in out
        assert "cell 6: split it into 2 cells: `%%setup`, then `%%task plot_df_a`" in out
        assert "cell 11: leave it as it is (%%writefile" in out
        assert os.path.exists(tmp_path / "adopted.ipynb")
    finally:
        k.close()
