"""``%%task --map NAME``: a cell run once per element, its outputs lists; kernel, headless, exported."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import Kernel, write_notebook  # noqa: E402
from notebook_helpers import kernel as _kernel  # noqa: E402

from nbflow.cells.export import export_module  # noqa: E402
from nbflow.cells.ipynb import flow_from_notebook  # noqa: E402
from nbflow.core.states import StateType  # noqa: E402
from nbflow.terminal.headless import run_notebook_flow  # noqa: E402

S = StateType

CELLS = [
    "%%task rows_cell\nrows = [3, 1, 2]\nfactor = 10",
    "%%task scaled --map rows\nprint('row', rows)\nscaled = rows * factor\nlabel = f'row {rows}'",
    "%%task total\ntotal = sum(scaled)",
]


@pytest.fixture
def k() -> Kernel:
    yield from _kernel()


def outputs(state: object) -> dict[str, object]:
    return {slug: dict(st.result) for slug, st in state.result.by_slug().items()}  # type: ignore[attr-defined]


def test_a_mapped_cell_binds_each_element_and_collects_its_outputs_in_order(
    k: Kernel, capsys: pytest.CaptureFixture[str]
) -> None:
    k.run("%load_ext nbflow")
    k.run_all(CELLS)
    assert k.ns["scaled"] == [30, 10, 20]
    assert k.ns["label"] == ["row 3", "row 1", "row 2"]
    assert k.ns["rows"] == [3, 1, 2]  # the kernel keeps the whole list
    assert k.ns["total"] == 60
    for executor in ("local", "threads"):
        k.run(f"%flow run --quiet --executor {executor}")
        state = k.session.last_state
        assert state.type is S.SUCCESS, state.message
        assert outputs(state)["scaled"] == {"scaled": [30, 10, 20], "label": ["row 3", "row 1", "row 2"]}
        assert k.ns["total"] == 60
    capsys.readouterr()
    k.run("%flow status")
    status = capsys.readouterr().out
    assert "children" in status and "3 success" in status
    k.run("%flow logs scaled[1]")
    assert "row 1" in capsys.readouterr().out
    snapshot = k.session.view.snapshot(["scaled"])["tasks"]["scaled"]
    assert snapshot["children"] == {"Success": 3}


def test_a_failing_child_shows_its_own_traceback_and_retries_alone(
    k: Kernel, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    marker = tmp_path / "once"
    k.run("%load_ext nbflow")
    k.run("%%task\nnames = ['a', 'b', 'c']")
    k.run(
        "%%task fetched --map names --retries 1\nimport os\n"
        f"if names == 'b' and not os.path.exists({str(marker)!r}):\n"
        f"    open({str(marker)!r}, 'w').close()\n"
        "    raise ConnectionError('b: reset')\n"
        "fetched = names.upper()"
    )
    assert k.ns["fetched"] == ["A", "B", "C"]
    assert k.session.view.latest("fetched[1]").attempt == 2
    assert k.session.view.latest("fetched[0]").attempt == 1
    capsys.readouterr()
    k.run("%%task parsed --map names\nparsed = int(names)", expect_error=True)
    text = "".join(capsys.readouterr())
    assert "ValueError: invalid literal for int() with base 10: 'a'" in text
    assert "task 'parsed' Failed: 3 of 3 children failed: parsed[0], parsed[1], parsed[2]" in text


def test_kernel_headless_and_exported_module_give_the_same_lists(k: Kernel, tmp_path: Path) -> None:
    k.run("%load_ext nbflow")
    k.run_all(CELLS)
    k.run("%flow run --quiet")
    kernel_results = outputs(k.session.last_state)

    notebook = flow_from_notebook(write_notebook(tmp_path / "mapped.ipynb", CELLS), name="notebook")
    code, state = run_notebook_flow(notebook, quiet=True)
    assert code == 0
    headless_results = outputs(state)

    module_path = tmp_path / "mapped_flow.py"
    module_path.write_text(export_module(notebook, source="mapped.ipynb"))
    assert "map=['rows']" in module_path.read_text()
    spec = importlib.util.spec_from_file_location("mapped_flow", module_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    exported_results = outputs(module.build_flow().run(echo=False))

    expected = {"scaled": [30, 10, 20], "label": ["row 3", "row 1", "row 2"]}
    assert headless_results["scaled"] == exported_results["scaled"] == expected
    assert headless_results["total"] == exported_results["total"] == {"total": 60}
    assert kernel_results["scaled"] == expected and kernel_results["total"] == {"total": 60}


def test_bad_map_options_name_the_cell_and_what_to_do(k: Kernel, capsys: pytest.CaptureFixture[str]) -> None:
    k.run("%load_ext nbflow")
    k.run("%%task\nrows = [1]")
    k.run("%%task --map nope\ny = rows", expect_error=True)
    text = "".join(capsys.readouterr())
    assert "--map nope names a variable the cell does not read; map over one of: rows" in text
    k.run("%%shell_task --map rows\necho hi", expect_error=True)
    assert "--map is for Python cells, not shell cells" in "".join(capsys.readouterr())
    k.run("%%task --map 1x\ny = rows", expect_error=True)
    assert "--map '1x' is not a variable name" in "".join(capsys.readouterr())
