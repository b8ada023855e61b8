"""Handlers named in cells: `%%task --on-failure NAME`, `%flow on failed NAME`, and logging
handlers from `%%setup`, in the kernel, headless, `nbflow run` and the exported module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import Kernel, write_notebook  # noqa: E402
from notebook_helpers import kernel as _kernel  # noqa: E402

from nbflow.cells.cells import parse_task_line  # noqa: E402
from nbflow.cells.export import export_module  # noqa: E402
from nbflow.cells.handlers import event_states, flow_handler_lines  # noqa: E402
from nbflow.cells.ipynb import flow_from_notebook  # noqa: E402
from nbflow.core.errors import NotebookError  # noqa: E402
from nbflow.core.states import StateType  # noqa: E402
from nbflow.terminal.headless import run_notebook_flow  # noqa: E402

S = StateType
NBFLOW = [sys.executable, "-m", "nbflow.cli"]


@pytest.fixture
def k() -> Kernel:
    yield from _kernel()


def setup_cell(calls: Path) -> str:
    """A %%setup cell whose handlers append `who state` lines to ``calls``."""
    return f"""%%setup
import pathlib
CALLS = pathlib.Path({str(calls)!r})

def notify(obj, old, new):
    with CALLS.open("a") as f:
        f.write(f"notify {{obj.name}} {{new.type.value}}\\n")

def every(obj, old, new):
    with CALLS.open("a") as f:
        f.write(f"every {{obj.name}} {{old.type.value if old else None}}->{{new.type.value}}\\n")

def flow_done(flow, old, new):
    import nbflow
    with CALLS.open("a") as f:
        f.write(f"flow {{flow.name}} {{new.type.value}} run={{nbflow.context.flow_run_id is not None}}\\n")

def broken(obj, old, new):
    raise RuntimeError("the handler itself fails")
"""


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# -- parsing ---------------------------------------------------------------------------


def test_task_line_takes_handler_options() -> None:
    options = parse_task_line("load --on-failure notify --on-success done --on-state every", where="cell 1")
    assert options.handlers == (("failed", "notify"), ("success", "done"), ("state", "every"))
    with pytest.raises(NotebookError, match="'no-good' is not a function name"):
        parse_task_line("--on-failure no-good", where="cell 2")


def test_flow_on_lines_and_events() -> None:
    assert flow_handler_lines("x = 1\n%flow on failed notify\n%flow on TimedOut late\n", where="c") == [
        ("failed", "notify"),
        ("timedout", "late"),
    ]
    assert event_states("Cancelled") == frozenset({S.CANCELLED})
    assert event_states("state") is None
    with pytest.raises(NotebookError, match="unknown event 'exploded'"):
        flow_handler_lines("%flow on exploded notify", where="cell 3")


def test_a_handler_no_setup_cell_defines_is_refused_before_the_run(tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "nb.ipynb", ["%%setup\nx = 1", "%%task --on-failure nope\ny = x"])
    with pytest.raises(NotebookError, match="handler 'nope' is not defined by any %%setup cell"):
        flow_from_notebook(notebook).build()


# -- headless and exported ------------------------------------------------------------------


def handler_cells(calls: Path) -> list[str]:
    return [
        setup_cell(calls),
        "%flow on failed flow_done\n%flow on success flow_done",
        "%%task load --on-state every\nrows = [1, 2]",
        "%%task boom --on-failure notify --on-failure broken --on-success notify\nraise ValueError(len(rows))",
        "%%task after --trigger all_finished --on-success notify\ndone = True",
    ]


def test_headless_run_calls_each_handler_once_per_event(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls = tmp_path / "calls.txt"
    notebook = write_notebook(tmp_path / "handlers.ipynb", handler_cells(calls))
    with caplog.at_level("ERROR", logger="nbflow.handlers"):
        code, state = run_notebook_flow(flow_from_notebook(notebook), quiet=True)
    [failure] = [r for r in caplog.records if r.name == "nbflow.handlers"]
    assert "RuntimeError: the handler itself fails" in failure.exc_text
    assert code == 1 and state is not None and state.type is S.FAILED
    assert lines(calls) == [
        "every load None->Running",
        "every load Running->Success",
        "notify boom Failed",  # the failing `broken` handler after it changed nothing
        "notify after Success",
        "flow handlers Failed run=True",
    ]


def test_exported_module_and_nbflow_run_call_handlers_and_logging_handlers(tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    logged = tmp_path / "logged.txt"
    cells = handler_cells(calls)
    # A logging handler configured in %%setup sees the task's own warning and the failure.
    cells[0] += f"""
import logging
class KeepRecords(logging.Handler):
    def emit(self, record):
        with open({str(logged)!r}, "a") as f:
            f.write(f"{{record.levelname}} {{record.getMessage().splitlines()[0]}}\\n")
logging.getLogger().addHandler(KeepRecords())
"""
    cells[2] += "\nimport nbflow\nnbflow.context.logger.warning('two rows only')"
    notebook = write_notebook(tmp_path / "handlers.ipynb", cells)

    run = subprocess.run(
        [*NBFLOW, "run", str(notebook), "--quiet"], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 1, run.stderr
    # The failing handler is logged (here, to the notebook's own logging handler), never fatal.
    assert "ERROR nbflow: handler 'broken' (on failed of task 'boom') failed when it became Failed" in lines(
        logged
    )
    assert lines(calls)[-1] == "flow handlers Failed run=True"
    assert "notify boom Failed" in lines(calls)
    assert "WARNING two rows only" in lines(logged)
    assert "ERROR task 'boom': Traceback (most recent call last):" in lines(logged)

    calls.unlink()
    module = tmp_path / "handlers_flow.py"
    module.write_text(export_module(flow_from_notebook(notebook), source="handlers.ipynb"))
    exported = subprocess.run(
        [sys.executable, str(module), "--quiet"], capture_output=True, text=True, timeout=120
    )
    assert exported.returncode == 1, exported.stderr
    assert lines(calls) == [
        "every load None->Running",
        "every load Running->Success",
        "notify boom Failed",
        "notify after Success",
        "flow handlers Failed run=True",
    ]


# -- the kernel ---------------------------------------------------------------------------------


def test_kernel_cell_and_flow_run_call_handlers(k: Kernel, tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    k.run("%load_ext nbflow")
    k.run(setup_cell(calls))
    k.run("%flow on failed flow_done")
    k.run("%%task boom --on-failure notify\nraise ValueError('no')", expect_error=True)
    assert lines(calls) == ["notify boom Failed"]  # the cell's own run, with the kernel's function
    k.run("%flow run --quiet")
    assert lines(calls)[1:] == ["notify boom Failed", "flow notebook Failed run=True"]
    k.run("%flow on bogus flow_done", expect_error=True)
