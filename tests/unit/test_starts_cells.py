"""``%%task --starts FLOW`` in the cell model: options, the outcome's name and edges, the export,
and the error a run gets where no server can be asked (the server side is in
tests/integration/test_flow_of_flows_cells.py)."""

from __future__ import annotations

import pytest

from nbflow.cells.cellflow import NotebookFlow
from nbflow.cells.cells import cell_from_source, starts_outcome_name
from nbflow.cells.export import export_module
from nbflow.cells.starts import StartsCellTask
from nbflow.core import flowstarts
from nbflow.core.errors import NotebookError


def notebook(*sources: str) -> NotebookFlow:
    flow = NotebookFlow("parent")
    for i, source in enumerate(sources):
        flow.add(cell_from_source(source, where=f"cell {i + 1}", index=i))
    return flow


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("%%task --no-wait", "--no-wait goes with --starts FLOW"),
        ("%%task --starts", "argument --starts: expected one argument"),
        ("%%task --starts ' '", "--starts needs the name of a registered flow"),
        ("%%task --shell --starts etl", "--starts is for Python cells, not shell cells"),
    ],
)
def test_bad_starts_options_are_named_with_the_usage(line: str, message: str) -> None:
    with pytest.raises(NotebookError) as caught:
        cell_from_source(f"{line}\nx = 1", where="cell 3")
    assert message in str(caught.value) and str(caught.value).startswith("cell 3: ")
    assert "[--starts FLOW]" in str(caught.value)  # the usage follows


@pytest.mark.parametrize(
    ("flow", "name"), [("etl", "etl_run"), ("daily-etl", "daily_etl_run"), ("2024 load", "f_2024_load_run")]
)
def test_the_outcome_is_bound_to_flow_run(flow: str, name: str) -> None:
    assert starts_outcome_name(flow) == name
    assert name.isidentifier()


def test_a_starts_cell_is_named_after_its_outcome_and_later_cells_read_it() -> None:
    flow = notebook(
        "%%params\nday = '2024-01-01'",
        "%%task --starts etl\nparameters = {'day': day}",
        "%%task --starts etl --no-wait",
        "%%task report\nreport = etl_run.state",
    )
    assert flow.task_names == ["etl_run", "etl_run_2", "report"]
    built, resolution = flow.build()
    assert resolution.inputs["etl_run"] == {"day": "%%params"}
    assert resolution.inputs["report"] == {"etl_run": "etl_run_2"}  # the nearest earlier one
    tasks = {t.slug: t for t in built.tasks}
    assert isinstance(tasks["etl_run"], StartsCellTask) and tasks["etl_run"].wait
    assert tasks["etl_run_2"].options()["starts"] == "etl" and tasks["etl_run_2"].options()["wait"] is False


def test_the_export_keeps_the_option_and_builds_the_same_tasks() -> None:
    flow = notebook("%%task load --starts etl --no-wait --retries 1\nparameters = {'n': 1}")
    source = export_module(flow)
    assert "nb.task('load', r'''\nparameters = {'n': 1}\n''', retries=1, starts='etl', wait=False)" in source
    module: dict = {}
    exec(compile(source, "flow.py", "exec"), module)
    [task] = module["build_flow"]().tasks
    assert isinstance(task, StartsCellTask)
    assert (task.starts, task.wait, task.retries, task.outcome_name) == ("etl", False, 1, "etl_run")


def test_without_a_starter_the_task_fails_saying_where_it_can_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flowstarts, "_starter", None)  # as in a process that installed none
    built, _ = notebook("%%task --starts etl").build()
    state = built.run()
    [task_state] = state.result.values()
    assert task_state.is_failed()
    assert "cannot start a run of flow 'etl' here: this process has no nbflow server" in task_state.message
    assert "nbflow.flowrun.install()" in task_state.message
