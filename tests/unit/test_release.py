"""Results go as soon as nothing needs them: the plan's rule, the engine on each executor,
headless runs and the kernel (which keeps what the notebook's variables keep)."""

from __future__ import annotations

import gc
import sys
import weakref
from pathlib import Path

import pytest

from nbflow import Flow, FlowRunner, StateType, task
from nbflow.core.plan import Plan, keeper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import Kernel, write_notebook  # noqa: E402
from notebook_helpers import kernel as _kernel  # noqa: E402

S = StateType


@pytest.fixture
def k() -> Kernel:
    yield from _kernel()


class Blob:
    """A value whose lifetime a test watches."""

    alive: weakref.WeakSet[Blob] = weakref.WeakSet()

    def __init__(self, name: str) -> None:
        self.name = name
        Blob.alive.add(self)


def alive_names() -> set[str]:
    gc.collect()
    return {b.name for b in Blob.alive}


def chain_flow(seen: list[set[str]]) -> Flow:
    """a -> b -> c -> d, each making a Blob; d records which Blobs are alive while it runs."""

    @task
    def a() -> Blob:
        return Blob("a")

    @task
    def b(x: Blob) -> Blob:
        return Blob("b")

    @task
    def c(x: Blob) -> Blob:
        return Blob("c")

    @task
    def d(x: Blob) -> str:
        seen.append(alive_names())
        return "done"

    with Flow("chain") as flow:
        d(c(b(a())))
    return flow


def test_the_plan_readies_in_task_order_and_releases_after_the_last_reader() -> None:
    seen: list[set[str]] = []
    flow = chain_flow(seen)
    order = flow.sorted_tasks()
    plan = Plan(flow, order, keeper("none", flow, order))
    first = plan.take()
    assert first is order[0] and plan.take() is None  # b waits for a
    assert plan.done(first) == []  # nothing read a yet
    second = plan.take()
    assert plan.done(second) == [first]  # b read a: a's result may go
    kept = Plan(flow, order, keeper("terminal", flow, order))
    for t in order:
        assert kept.take() is t
        released = kept.done(t)
        assert order[-1] not in released


def test_keep_rejects_an_unknown_word() -> None:
    flow = chain_flow([])
    with pytest.raises(Exception, match="keep must be 'all', 'none', 'terminal'"):
        keeper("some", flow, flow.sorted_tasks())


@pytest.mark.parametrize("executor", ["local", "threads"])
def test_a_chain_holds_one_upstream_result_at_a_time_when_nothing_keeps_them(executor: str) -> None:
    seen: list[set[str]] = []
    state = FlowRunner(chain_flow(seen), executor=executor, keep="none", echo=False).run()
    assert state.is_successful()
    assert seen == [{"c"}]  # while d runs, only its input is alive
    by_slug = state.result.by_slug()
    assert by_slug["a"].type is S.SUCCESS and by_slug["a"].result is None  # the state stands
    assert alive_names() == set()


def test_flow_run_keeps_every_result_for_its_caller() -> None:
    seen: list[set[str]] = []
    state = chain_flow(seen).run(echo=False)
    assert seen == [{"a", "b", "c"}]
    assert state.result.by_slug()["a"].result.name == "a"


def test_a_failure_keeps_its_exception_when_results_go() -> None:
    @task
    def boom() -> None:
        raise ValueError("nope")

    @task
    def after(x: object) -> None:
        return None

    with Flow("f") as flow:
        after(boom())
    state = FlowRunner(flow, keep="none", echo=False).run()
    assert isinstance(state.result.by_slug()["boom"].result, ValueError)


def test_kernel_frees_a_value_once_a_later_cell_rebinds_its_name(k: Kernel) -> None:
    k.run("%load_ext nbflow")
    k.run("import gc, weakref\nclass Blob: pass\nrefs = {}")
    k.run("%%task load --no-run\ndf = Blob()\nrefs['load'] = weakref.ref(df)")
    k.run("%%task clean --no-run\ndf = Blob()\nrefs['clean'] = weakref.ref(df)")
    # Freed while the run goes on, within moments: a state event on its way to the observers
    # (widget, badges) may hold it until it is delivered.
    k.run(
        "%%task report --no-run\nimport time\nfor _ in range(200):\n    gc.collect()\n"
        "    if refs['load']() is None:\n        break\n    time.sleep(0.01)\n"
        "alive = sorted(n for n, r in refs.items() if r() is not None)"
    )
    k.run("%flow run --quiet")
    # As in a plain run: load's df was rebound by clean, which report reads.
    assert k.ns["alive"] == ["clean"]
    assert k.ns["df"] is k.ns["refs"]["clean"]()


def test_kernel_keeps_a_value_whose_rebinding_failed(k: Kernel) -> None:
    k.run("%load_ext nbflow")
    k.run("broken = True")
    k.run("%%task load --no-run\ndf = [1, 2]")
    k.run("%%task grow --no-run\nn = len(df)\nif broken:\n    raise RuntimeError('no')\ndf = df + [3]")
    k.run("%flow run --quiet")
    assert k.ns["df"] == [1, 2]  # grow failed: the notebook keeps load's df, as a plain run would


def test_rerun_failed_reruns_a_released_task_only_when_something_reads_it(k: Kernel) -> None:
    k.run("%load_ext nbflow")
    k.run("calls = []\nbroken = True")
    k.run("%%task load --no-run\ncalls.append('load')\ndf = [1]")
    k.run("%%task grow --no-run\ncalls.append('grow')\ndf = df + [2]", cell_id="grow")
    k.run("%%task use --no-run\ncalls.append('use')\nif broken:\n    raise RuntimeError('no')\nn = len(df)")
    k.run("%flow run --quiet")
    assert k.session.released == {"load"}
    k.run("broken = False\ncalls.clear()")
    k.run("%flow run --quiet --rerun-failed")
    assert k.ns["calls"] == ["use"]  # grow's df stands in; load's, gone, is not needed
    assert k.ns["n"] == 2
    k.run(
        "%%task grow --no-run\ncalls.append('grow')\ndf = df + [2, 2]", cell_id="grow"
    )  # grow changed: it runs
    k.run("broken = True\ncalls.clear()")
    k.run("%flow run --quiet")
    k.run("broken = False\ncalls.clear()")
    k.run("%%task grow --no-run\ncalls.append('grow')\ndf = df + [2]", cell_id="grow")
    k.run("%flow run --quiet --rerun-failed")
    assert k.ns["calls"] == ["load", "grow", "use"]  # grow must run, and it reads load's df
    assert k.ns["n"] == 2


def figures_notebook(tmp_path: Path) -> Path:
    """A notebook whose task ``plot`` draws a figure from ``data`` that ``after`` reads."""
    return write_notebook(
        tmp_path / "figs.ipynb",
        [
            "%%setup\nimport matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt",
            "%%task plot\ndata = list(range(5))\nplt.plot(data)\nplt.show()",
            "%%task after\ntotal = sum(data)",
        ],
    )


def test_headless_figures_survive_their_values(tmp_path: Path) -> None:
    from nbflow.cells.ipynb import flow_from_notebook
    from nbflow.terminal.headless import run_notebook_flow

    path = figures_notebook(tmp_path)
    code, state = run_notebook_flow(
        flow_from_notebook(path), quiet=True, keep="none", output_dir=str(tmp_path / "out")
    )
    assert code == 0
    plot = state.result.by_slug()["plot"].result
    assert "data" not in plot and len(plot.figures) == 1
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["plot.png"]


@pytest.mark.slow
def test_on_dask_released_results_stay_on_the_cluster_but_their_figures_come_back(tmp_path: Path) -> None:
    from nbflow.cells.ipynb import flow_from_notebook
    from nbflow.terminal.headless import run_notebook_flow

    path = figures_notebook(tmp_path)
    code, state = run_notebook_flow(
        flow_from_notebook(path), executor="dask", quiet=True, keep="none", output_dir=str(tmp_path / "out")
    )
    assert code == 0
    by_slug = state.result.by_slug()
    assert "data" not in by_slug["plot"].result and len(by_slug["plot"].result.figures) == 1
    assert by_slug["after"].result is None  # nothing asked for it: it never left the cluster
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["plot.png"]
