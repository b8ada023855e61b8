"""Per-run context: `-c key=value` on `%flow run`, `%flow backfill`, `nbflow run` and exported
modules, read in tasks (and handlers) as `nbflow.context.KEY`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import Kernel, write_notebook  # noqa: E402
from notebook_helpers import kernel as _kernel  # noqa: E402

import nbflow  # noqa: E402
from nbflow.cells.params import parse_context  # noqa: E402
from nbflow.core.errors import ParameterError  # noqa: E402
from nbflow.core.flows import Flow  # noqa: E402
from nbflow.core.runner import FlowRunner  # noqa: E402
from nbflow.core.tasks import task  # noqa: E402

NBFLOW = [sys.executable, "-m", "nbflow.cli"]


@pytest.fixture
def k() -> Kernel:
    yield from _kernel()


def test_parse_context_reads_json_or_strings_and_refuses_reserved_names() -> None:
    assert parse_context(["region=eu", "limit=5", "flags=[1, 2]"]) == {
        "region": "eu",
        "limit": 5,
        "flags": [1, 2],
    }
    with pytest.raises(ParameterError, match="cannot read context value 'region'"):
        parse_context(["region"])
    with pytest.raises(ParameterError, match="'flow_run_id' is a name nbflow.context gives every run"):
        parse_context(["flow_run_id=x"])


def test_engine_tasks_read_the_runs_context_and_outside_a_run_it_is_empty() -> None:
    @task
    def where() -> str:
        return f"{nbflow.context.region}/{nbflow.context.get('tier', 'free')}/{sorted(nbflow.context.values)}"

    with Flow("ctx") as flow:
        where()
    state = FlowRunner(flow, context={"region": "eu"}, echo=False).run()
    assert state.result["where"].result == "eu/free/['region']"
    assert nbflow.context.values == {}
    with pytest.raises(AttributeError, match="a run sets its own with -c region=VALUE"):
        _ = nbflow.context.region
    with pytest.raises(ParameterError, match="must be plain JSON"):
        FlowRunner(flow, context={"bad": object()})


CELLS = [
    "%%setup\nimport nbflow",
    "%%params\nday = '2024-01-01'",
    '%%task\nlabel = f"{day}@{nbflow.context.region}"\nprint(label)',
]


def test_nbflow_run_and_exported_module_take_c(tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "ctx.ipynb", CELLS)
    done = subprocess.run(
        [*NBFLOW, "run", str(notebook), "-c", "region=eu", "--show-logs"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "2024-01-01@eu" in done.stdout
    refused = subprocess.run(
        [*NBFLOW, "run", str(notebook), "-c", "today=x"], capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 2 and "'today' is a name nbflow.context gives every run" in refused.stderr
    module = tmp_path / "ctx_flow.py"
    subprocess.run([*NBFLOW, "export", str(notebook), "-o", str(module)], check=True, timeout=120)
    exported = subprocess.run(
        [sys.executable, str(module), "-c", "region=us", "--show-logs"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert exported.returncode == 0 and "2024-01-01@us" in exported.stdout, exported.stderr


def test_kernel_run_and_backfill_take_c(k: Kernel, capsys: pytest.CaptureFixture[str]) -> None:
    k.run("%load_ext nbflow")
    for cell in CELLS[:2]:
        k.run(cell)
    k.run('%%task --no-run\nlabel = f"{day}@{nbflow.context.region}"')
    k.run("%flow run --quiet -c region=eu")
    assert k.ns["label"] == "2024-01-01@eu"
    capsys.readouterr()
    k.run("%flow backfill --quiet -p day=2024-01-01..2024-01-02 -c region=us")
    assert k.ns["label"] == "2024-01-02@us"
    assert "Success" in capsys.readouterr().out
    k.run("%flow run -c 'bad key=1'", expect_error=True)
