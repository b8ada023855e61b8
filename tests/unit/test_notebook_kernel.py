"""The magics in a real in-process IPython: what a notebook user sees."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import DF_CELLS, Kernel, edges  # noqa: E402
from notebook_helpers import kernel as _kernel  # noqa: E402

from nbflow.core.states import StateType  # noqa: E402

S = StateType


@pytest.fixture
def k() -> Kernel:
    yield from _kernel()


def test_dataframe_cells_give_the_chain_and_branches(k: Kernel) -> None:
    k.run_all(DF_CELLS)
    flow, _ = k.session.build()
    assert edges(flow.structure()) == {
        ("load_data", "clean", "df"),
        ("clean", "summary", "df"),
        ("clean", "n_plotted", "df"),
    }
    # Each cell also ran as its own task run, against the kernel's values.
    assert k.ns["summary"] == {"count": 3, "sum": 8}
    assert k.ns["n_plotted"] == 3


def test_single_cell_run_shows_its_value_and_writes_outputs(
    k: Kernel, capsys: pytest.CaptureFixture[str]
) -> None:
    k.run_all(DF_CELLS[:3])
    k.run("%%task clean\ndf = df.dropna()\nprint('kept', len(df.rows))\ndf")
    out = capsys.readouterr().out
    assert "kept 3" in out  # normal output still shows under the cell
    assert "Frame([3, 1, 4])" in out  # and the last expression's value
    assert k.session.view.latest("clean").type is S.SUCCESS


def test_failing_task_cell_shows_its_own_traceback(k: Kernel, capsys: pytest.CaptureFixture[str]) -> None:
    k.run("%load_ext nbflow")
    k.run("%%task boom\nrows = [1, 2]\nraise ValueError(f'bad row {len(rows)}')", expect_error=True)
    out = capsys.readouterr()
    text = out.out + out.err
    assert "ValueError: bad row 2" in text
    assert "<nbflow task boom>" in text
    assert "celltasks.py" not in text and "taskrun.py" not in text
    assert "task 'boom' Failed: ValueError: bad row 2" in text


def test_single_cell_retries_until_success(k: Kernel) -> None:
    k.run("%load_ext nbflow")
    k.run("attempts = []")
    k.run(
        "%%task flaky --retries 2\nattempts.append(1)\nif len(attempts) < 3:\n    raise ConnectionError('down')\nok = len(attempts)"
    )
    assert k.ns["ok"] == 3
    state = k.session.view.latest("flaky")
    assert state.type is S.SUCCESS and state.attempt == 3


def test_single_cell_timeout(k: Kernel, capsys: pytest.CaptureFixture[str]) -> None:
    k.run("%load_ext nbflow")
    k.run("%%task hang --timeout 0.3\nimport time\nwhile True:\n    time.sleep(0.01)", expect_error=True)
    assert k.session.view.latest("hang").type is S.TIMED_OUT
    captured = capsys.readouterr()
    assert "task 'hang' TimedOut: timed out after 0.3s" in captured.out + captured.err


def test_single_cell_cache(k: Kernel, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    k.run("%load_ext nbflow")
    marker = tmp_path / "calls.txt"
    # Count runs in a file: a kernel variable would be an input, and changing it misses the cache.
    cell = (
        f"%%task expensive --cache 1h\nwith open({str(marker)!r}, 'a') as fh:\n    fh.write('x')\nresult = 42"
    )
    k.run(cell, cell_id="c")
    k.run(cell, cell_id="c")
    assert marker.read_text() == "x"
    assert k.ns["result"] == 42
    assert "task 'expensive': restored from cache" in capsys.readouterr().err
    assert k.session.view.latest("expensive").type is S.CACHED


def test_no_run_defines_without_running(k: Kernel) -> None:
    k.run("%load_ext nbflow")
    k.run("%%task later --no-run\nvalue = 1")
    assert "value" not in k.ns
    assert k.session.flow.task_names == ["later"]


def test_flow_run_writes_outputs_back_and_keeps_task_prints_in_logs(
    k: Kernel, capsys: pytest.CaptureFixture[str]
) -> None:
    k.run_all(
        [
            *DF_CELLS[:2],
            *(
                c.replace("%%task", "%%task --no-run", 1) if c.startswith("%%task") else c
                for c in DF_CELLS[2:]
            ),
        ]
    )
    capsys.readouterr()
    k.run("%flow run --quiet")
    out = capsys.readouterr().out
    assert "flow 'notebook' Success: 4 tasks (4 Success)" in out
    assert "plotting" not in out  # the task's print went to its logs
    assert k.ns["summary"] == {"count": 3, "sum": 8}
    logs = [line.message for line in k.session.view.latest("n_plotted").logs]
    assert logs == ["plotting 3 rows"]


def test_order_aware_resolution_in_the_kernel(k: Kernel) -> None:
    k.run("%load_ext nbflow")
    k.run("%%task a\nx = 1")
    k.run("%%task b\nx = x + 1")
    k.run("%%task c\ny = x * 10")
    k.run("%%task d\nx = 100")
    k.run("%%task e\nz = x")
    flow, _ = k.session.build()
    assert edges(flow.structure()) == {("a", "b", "x"), ("b", "c", "x"), ("d", "e", "x")}
    k.run("%flow run --quiet")
    assert (k.ns["y"], k.ns["z"]) == (20, 100)


def test_explicit_name_collision_is_an_error_that_says_how_to_fix_it(
    k: Kernel, capsys: pytest.CaptureFixture[str]
) -> None:
    k.run("%load_ext nbflow")
    k.run("%%task load\ndf = [1]", cell_id="first")
    k.run("%%task load\ndf = df + [2]", cell_id="second", expect_error=True)
    err = capsys.readouterr().err
    assert "are both named task 'load'" in err and "%%task load_2" in err
    assert k.session.flow.task_names == ["load"]


def test_editing_a_cell_renames_its_task_in_place(k: Kernel) -> None:
    k.run("%load_ext nbflow")
    k.run("%%task\nfirst = 1", cell_id="a")
    k.run("%%task\nsecond = first + 1", cell_id="b")
    k.run("%%task\nrenamed = 1\nfirst = 1", cell_id="a")
    assert k.session.flow.task_names == ["renamed", "second"]


def test_bad_input_errors_name_the_cell_and_lose_nothing(
    k: Kernel, capsys: pytest.CaptureFixture[str]
) -> None:
    k.run("%load_ext nbflow")
    k.run("%%task keep\nkept = 1")
    k.run("%%task --retries many\nx = 1", expect_error=True)
    assert "--retries: expected a whole number >= 0, got 'many'" in capsys.readouterr().err
    k.run("%%task --unknown\nx = 1", expect_error=True)
    assert "unrecognized arguments: --unknown" in capsys.readouterr().err
    k.run("%%task broken\nx = (1 +", expect_error=True)
    err = capsys.readouterr().err
    # The cell's prompt as shown ([5]) and its own line number (the %%task line is line 1).
    assert "syntax error in cell In[5], line 2: '(' was never closed" in err
    k.run("%%task after --upstream nowhere\ny = 1", expect_error=True)
    assert "--upstream names no task 'nowhere'; tasks: keep" in capsys.readouterr().err
    assert "y" not in k.ns
    k.run("%flow run --quiet -p missing=1", expect_error=True)
    assert "unknown parameter 'missing'; this flow's parameters are: (none)" in capsys.readouterr().err
    assert k.session.flow.task_names == ["keep"]
    assert k.ns["kept"] == 1


def test_explicit_upstream_cycle_is_refused(k: Kernel, capsys: pytest.CaptureFixture[str]) -> None:
    k.run("%load_ext nbflow")
    k.run("%%task b --no-run\ny = 1", cell_id="cell-b")
    k.run("%%task a --upstream b --no-run\nx = 1", cell_id="cell-a")
    k.run("%%task b --upstream a --no-run\ny = 1", cell_id="cell-b")
    k.run("%flow run --quiet", expect_error=True)
    err = capsys.readouterr().err
    assert "the explicit --upstream edges make a cycle: " in err
    assert "a -> b -> a" in err or "b -> a -> b" in err


def test_hidden_dependency_warns_in_the_kernel_and_is_refused_on_dask(
    k: Kernel, capsys: pytest.CaptureFixture[str]
) -> None:
    k.run("%load_ext nbflow")
    k.run("threshold = 10")
    k.run("%%task --no-run\nflagged = threshold > 5")
    k.run("%flow run --quiet")
    captured = capsys.readouterr()
    assert "warning: task 'flagged' reads 'threshold'" in captured.err
    assert k.ns["flagged"] is True
    k.run("%flow run --quiet --executor dask", expect_error=True)
    err = capsys.readouterr().err
    assert "task 'flagged' uses 'threshold': defined in cell In[2]" in err


def test_flow_check_lists_inputs_outputs_and_warnings(k: Kernel, capsys: pytest.CaptureFixture[str]) -> None:
    k.run("%load_ext nbflow")
    k.run("%%params\nlimit = 3")
    k.run("%%task --no-run\nitems = list(range(limit))")
    k.run("%%task grow --no-run\nitems.append(99)")
    k.run("%%task --no-run\ntotal = later_value + sum(items)")
    k.run("%%task --no-run\nlater_value = 1")
    capsys.readouterr()
    k.run("%flow check")
    out = capsys.readouterr().out
    assert "items <- params" not in out and "limit <- params" in out
    assert "changes its input 'items' in place (through a method call)" in out
    assert "items (in place)" in out  # the mutating task counts as defining 'items'
    assert (
        "task 'total' reads 'later_value', which no earlier task defines (only the later task 'later_value' defines it"
        in out
    )


def test_params_override_and_non_json_params_are_refused(
    k: Kernel, capsys: pytest.CaptureFixture[str]
) -> None:
    k.run("%load_ext nbflow")
    k.run("%%params\nstart = '2024-01-01'\nn = 2")
    assert k.ns["start"] == "2024-01-01"
    k.run("%%task --no-run\nlabel = f'{start}:{n}'")
    k.run("%flow run --quiet -p start=2024-02-01 -p n=5")
    assert k.ns["label"] == "2024-02-01:5"
    k.run("%%params\nwhen = object()", expect_error=True)
    assert "parameter 'when' = <object object" in capsys.readouterr().err


def test_rerun_failed_runs_only_failed_and_downstream(k: Kernel) -> None:
    k.run("%load_ext nbflow")
    k.run("calls = []\nbroken = True")
    k.run("%%task a --no-run\ncalls.append('a')\nx = 1")
    k.run(
        "%%task b --no-run\ncalls.append('b')\nif broken:\n    raise RuntimeError('b is broken')\ny = x + 1"
    )
    k.run("%%task c --no-run\ncalls.append('c')\nz = y + 1")
    k.run("%%task d --no-run\ncalls.append('d')\nw = x + 100")
    k.run("%flow run --quiet")
    assert k.ns["calls"] == ["a", "b", "d"]
    k.run("broken = False\ncalls.clear()")
    k.run("%flow run --quiet --rerun-failed")
    assert k.ns["calls"] == ["b", "c"]
    assert k.ns["z"] == 3


def test_run_to_a_task_runs_it_and_its_upstream(k: Kernel) -> None:
    k.run("%load_ext nbflow")
    k.run("calls = []")
    k.run("%%task a --no-run\ncalls.append('a')\nx = 1")
    k.run("%%task b --no-run\ncalls.append('b')\ny = x")
    k.run("%%task c --no-run\ncalls.append('c')\nz = 1")
    k.run("%flow run --quiet --to b")
    assert k.ns["calls"] == ["a", "b"]


def test_background_run_and_cancel(k: Kernel, capsys: pytest.CaptureFixture[str]) -> None:
    k.run("%load_ext nbflow")
    k.run("import threading\ngate = threading.Event()")
    k.run("%%task slow --no-run\ngate.wait(10)\nx = 1")
    k.run("%%task after --no-run\ny = x + 1")
    k.run("%flow run --quiet --background")
    assert "running in the background" in capsys.readouterr().out
    deadline = time.time() + 5
    while k.session.view.latest("slow") is None and time.time() < deadline:
        time.sleep(0.02)
    k.run("%flow cancel")
    k.ns["gate"].set()
    state = k.session.wait(10)
    assert state.type is S.CANCELLED
    assert state.result["after"].type is S.CANCELLED
    assert "y" not in k.ns


def test_backfill_runs_one_flow_run_per_value(k: Kernel, capsys: pytest.CaptureFixture[str]) -> None:
    k.run("%load_ext nbflow")
    k.run("%%params\nday = '2024-01-01'\nregion = 'eu'")
    k.run("seen = []")
    k.run("%%task --no-run\nseen.append((day, region))\nrecord = day")
    capsys.readouterr()
    k.run("%flow backfill -p day=2024-01-01..2024-01-03 -p region=eu,us")
    out = capsys.readouterr().out
    assert "backfill of flow 'notebook': 6 runs" in out
    assert out.count("Success") == 6
    assert k.ns["seen"] == [(d, r) for d in ("2024-01-01", "2024-01-02", "2024-01-03") for r in ("eu", "us")]


def test_schedule_and_run_on_schedule(k: Kernel, capsys: pytest.CaptureFixture[str]) -> None:
    k.run("%load_ext nbflow")
    k.run("%%task --no-run\nimport time\nran_at = time.time()")
    k.run("%flow schedule --cron '61 * * * *'", expect_error=True)
    assert "invalid cron string '61 * * * *'" in capsys.readouterr().err
    k.run("%flow schedule --every 1s")
    assert "every 1s; next runs:" in capsys.readouterr().out
    before = time.time()
    k.run("%flow run --on-schedule --runs 1 --executor local")
    assert k.ns["ran_at"] >= before
    assert "Success" in capsys.readouterr().out
    k.run("%flow schedule --off")
    assert k.session.flow.schedule is None


def test_shell_task_logs_output_and_fails_on_nonzero_exit(
    k: Kernel, capsys: pytest.CaptureFixture[str]
) -> None:
    k.run("%load_ext nbflow")
    k.run("%%params\ngreeting = 'hello'")
    k.run('%%task say --shell --no-run\necho "$greeting from bash"\necho oops >&2')
    k.run("%%shell_task fail --no-run\nexit 3")
    k.run("%flow run --quiet")
    say = k.session.view.latest("say")
    assert say.type is S.SUCCESS
    # stdout and stderr are separate pipes: their relative order is not defined.
    assert sorted((line.level, line.message) for line in say.logs) == [
        ("INFO", "hello from bash"),
        ("WARNING", "oops"),
    ]
    failed = k.session.view.latest("fail")
    assert failed.type is S.FAILED and "exited with code 3" in failed.message


def test_export_writes_a_module_that_runs(k: Kernel, tmp_path: Path) -> None:
    k.run_all(DF_CELLS)
    target = tmp_path / "exported_flow.py"
    k.run(f"%flow export {target}")
    import subprocess

    done = subprocess.run(
        [sys.executable, str(target), "--quiet"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "flow 'notebook' Success: 4 tasks (4 Success)" in done.stdout


def test_status_logs_and_reset(k: Kernel, capsys: pytest.CaptureFixture[str]) -> None:
    k.run_all(DF_CELLS)
    capsys.readouterr()
    k.run("%flow status")
    out = capsys.readouterr().out
    assert "flow 'notebook': 4 tasks" in out
    assert "n_plotted" in out and "Success" in out
    k.run("%flow logs n_plotted")
    assert "plotting 3 rows" in capsys.readouterr().out
    k.run("%flow reset")
    assert k.session.flow.task_names == []


def test_flow_run_shows_the_widget_and_it_follows_the_run(k: Kernel) -> None:
    k.run_all(
        [
            *DF_CELLS[:2],
            "%%task load_data --no-run\ndf = load()",
            "%%task boom --no-run\nraise ValueError(f'bad {len(df.rows)}')",
        ]
    )
    k.run("%flow run")
    widget = k.session.widget()
    assert {t["slug"] for t in widget.graph["tasks"]} == {"load_data", "boom"}
    tasks = widget.states["tasks"]
    assert tasks["load_data"]["state"] == "Success"
    assert tasks["boom"]["state"] == "Failed"
    assert "ValueError: bad 5" in tasks["boom"]["message"]
    assert repr(widget) == "FlowWidget(flow='notebook', tasks=2, Success=1, Failed=1)"
    detail = widget.task_detail("boom")
    assert detail["state"] == "Failed" and detail["inputs"] == ["df ← load_data"]
    assert any("ValueError: bad 5" in line["message"] for line in detail["logs"])


def test_widget_buttons_run_cancel_and_rerun(k: Kernel) -> None:
    k.run("%load_ext nbflow")
    k.run("calls = []")
    k.run("%%task a --no-run\ncalls.append('a')\nx = 1")
    k.run("%%task b --no-run\ncalls.append('b')\ny = x + 1")
    widget = k.session.widget()
    widget._on_message(widget, {"type": "run_to", "slug": "a"}, [])  # "run up to here" in the page
    assert k.session.wait(10).is_successful()
    assert k.ns["calls"] == ["a"]
    widget._on_message(widget, {"type": "run"}, [])  # the toolbar's run button
    assert k.session.wait(10).is_successful()
    assert k.ns["calls"] == ["a", "a", "b"]
    assert widget.states["tasks"]["b"]["state"] == "Success"


def test_running_a_cell_runs_its_task_whatever_its_trigger(k: Kernel) -> None:
    k.run("%load_ext nbflow")
    k.run("%%task cleanup --trigger any_failed\ncleaned = True")
    k.run("%%task deploy --trigger manual_only\ndeployed = True")
    assert k.ns["cleaned"] is True and k.ns["deployed"] is True


def test_backfill_takes_quiet_like_run(k: Kernel, capsys: pytest.CaptureFixture[str]) -> None:
    k.run("%load_ext nbflow")
    k.run("%%params\nday = 1")
    k.run("%%task double --no-run\ndoubled = day * 2")
    k.run("%flow backfill -p day=1,2 --quiet --executor local")
    out = capsys.readouterr().out
    assert "backfill of flow 'notebook': 2 runs" in out
    assert k.ns["doubled"] == 4


def test_messages_name_cells_by_their_prompt_and_lines_by_the_cells_own_numbers(
    k: Kernel, capsys: pytest.CaptureFixture[str]
) -> None:
    k.run("%load_ext nbflow")  # [1]
    k.run("%%task a\nx = 1", cell_id="first")  # [2]
    k.run("%%task a\nx = 2", cell_id="second", expect_error=True)  # [3]
    err = capsys.readouterr().err
    assert "cell In[3] and cell In[2] are both named task 'a'" in err
    k.run("%%task boom\nx = 1\ny = 2\nraise ValueError('on line 4')", expect_error=True)  # [4]
    out = capsys.readouterr()
    assert 'File "<nbflow task boom>", line 4' in out.out + out.err
    k.run("%%task\n%%time\nz = 1\nraise KeyError('on line 4')", expect_error=True)  # [5]
    out = capsys.readouterr()
    assert ", line 4" in out.out + out.err


def test_flow_run_results_stores_every_task_runs_result_and_says_where(
    k: Kernel, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import re

    k.run_all(["%load_ext nbflow", "%%task rows\nrows = [1, 2, 3]", "%%task total\ntotal = sum(rows)"])
    capsys.readouterr()
    k.run(f"%flow run --quiet --results {tmp_path / 'store'}")
    out = capsys.readouterr().out
    match = re.search(r"^stored the results of 2 tasks under (\S+)$", out, re.M)
    assert match, out
    assert Path(match[1]).parent == tmp_path / "store"
    assert k.ns["total"] == 6  # written back as ever
    assert sorted(p.name.split("-")[0] for p in Path(match[1]).iterdir()) == ["rows", "total"]
    k.run(f"%flow run --quiet --background --results {tmp_path / 'store'}")
    assert re.search(rf"^its results go under {tmp_path / 'store'}/\S+$", capsys.readouterr().out, re.M)
    k.session.run_thread.join(30)
    k.run("%flow run --results nope://x", expect_error=True)
    assert "cannot store results at nope://x" in capsys.readouterr().err
