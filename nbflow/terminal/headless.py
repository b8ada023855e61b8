"""Run a notebook's flow without Jupyter: ``nbflow run`` and exported modules share this."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from nbflow import flowrun
from nbflow.cells.figures import save_figures
from nbflow.cells.guard import Detections, mutation_message, refuse_parallel
from nbflow.cells.params import parse_context, parse_parameters
from nbflow.core.errors import HiddenDependencyError, NbflowError
from nbflow.core.events import EventStream
from nbflow.core.executors import resolve_executor
from nbflow.core.results import ResultStore, checked_url, is_ref
from nbflow.core.runner import FlowRunner, counted
from nbflow.terminal.progress import TerminalProgress, summary

if TYPE_CHECKING:
    from nbflow.cells.cellflow import NotebookFlow
    from nbflow.core.executors import Executor
    from nbflow.core.flows import Flow
    from nbflow.core.states import State

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options ``nbflow run`` and exported modules share."""
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override a parameter (repeatable); values are JSON or plain strings")  # fmt: skip
    parser.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE",
                        help="a value tasks read as nbflow.context.KEY (repeatable)")  # fmt: skip
    # Sequential by default: the values of a top-to-bottom run (README, "fidelity").
    parser.add_argument("--executor", choices=["local", "threads", "dask"], default="local")
    parser.add_argument(
        "--dask-address", metavar="ADDRESS", help="a running Dask scheduler (default: a LocalCluster)"
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="ignore cached results (still stores new ones)"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.add_argument("--show-logs", action="store_true", help="print every log line of every task")
    parser.add_argument(
        "--output-dir", metavar="DIR", help="save each task's figures there as TASK.png (TASK_2.png, ...)"
    )
    parser.add_argument(
        "--results", metavar="URL",
        help="store every task run's result under URL (a folder, s3://bucket/prefix: any fsspec URL)",
    )  # fmt: skip


def run_notebook_flow(
    notebook: NotebookFlow,
    *,
    parameters: dict[str, Any] | None = None,
    executor: str = "local",
    dask_address: str | None = None,
    cache: bool = True,
    quiet: bool = False,
    show_logs: bool = False,
    out: TextIO | None = None,
    stream: EventStream | None = None,
    output_dir: str | None = None,
    keep: str = "all",
    context: dict[str, Any] | None = None,
    results: str | None = None,
) -> tuple[int, State | None]:
    """(exit code, final state). Headless runs refuse hidden dependencies. ``keep="none"`` lets
    each result go after its last reader (the state then holds only what ``Task.residue`` keeps).
    ``results``: a result store's URL; every task run's result is written there."""
    out = out or sys.stdout
    err = sys.stderr
    # What earlier runs found: planned for before running.
    notebook.detections = detections = Detections.on_disk(notebook.name)
    flowrun.install()  # %%task --starts cells start runs on the client's server, with its key
    try:
        runner = _runner(
            notebook, executor, dask_address, results,
            parameters=parameters, cache=cache, stream=stream or EventStream(), keep=keep, context=context,
        )  # fmt: skip
    except NbflowError as exc:
        hidden = isinstance(exc, HiddenDependencyError)
        print(f"nbflow: {f'refusing to run flow {notebook.name!r}: ' if hidden else ''}{exc}", file=err)
        return EXIT_USAGE, None
    if not quiet:
        progress = TerminalProgress(out, show_logs=show_logs)
        runner.stream.subscribe(progress.observe)
        out.write(
            f"nbflow: running flow {notebook.name!r}: {runner.task_count} tasks on {runner.executor.describe()}\n"
        )
    started = time.time()
    try:
        state = runner.run()
    except NbflowError as exc:
        print(f"nbflow: {exc}", file=err)
        return EXIT_USAGE, None
    out.write(summary(notebook.name, state, time.time() - started) + "\n")
    _report_results(runner, state, out, err)
    _report_outputs(notebook, state, out, output_dir)
    _report_mutations(notebook, state, detections, out, err)
    if state.is_successful():
        return EXIT_OK, state
    return (EXIT_CANCELLED if state.is_cancelled() else EXIT_FAILED), state


def _runner(
    notebook: NotebookFlow, executor: str, dask_address: str | None, results: str | None, **options: Any
) -> FlowRunner:
    """The runner of a headless run: the flow built (no hidden dependencies), the executor
    chosen and allowed, the result store's URL checked."""
    flow, _ = notebook.build()
    chosen = resolve_executor(executor, dask_address=dask_address)
    refuse_parallel(flow, chosen)
    store = checked_url(results) if results else None
    return FlowRunner(flow, executor=chosen, echo=False, results=store, **options)


def _report_mutations(
    notebook: NotebookFlow, state: State, detections: Detections, out: TextIO, err: TextIO
) -> None:
    """Remember what the guard found (the next run plans for it) and warn about it."""
    out.flush()  # the summary before the warnings, on a terminal that shows both streams
    for task, outputs in _successful_results(state).items():
        names = list(getattr(outputs, "mutated", ()))
        if names:
            cell = notebook.task_cell(task)
            detections.record(task, cell.source, names)
            print(f"nbflow: warning: {mutation_message(task, names, cell.where)}", file=err)


def check_executor(flow: Flow, executor: Executor) -> None:
    """Refuse a parallel run of a flow with a known undeclared in-place change (``NotebookError``).

    For processes that run a flow they did not build from cells (the agent's flow process)."""
    refuse_parallel(flow, executor)


def _successful_results(state: State) -> dict[str, Any]:
    return {
        task.slug or task.name: task_state.result
        for task, task_state in (state.result or {}).items()
        if task_state.is_successful()
    }


def _report_results(runner: FlowRunner, state: State, out: TextIO, err: TextIO) -> None:
    """Where the results went (``--results``), on ``out``; a warning on ``err`` if some were not."""
    stored, missing = results_report(runner, state)
    if stored is not None:
        out.write(f"nbflow: {stored}\n")
    if missing is not None:
        out.flush()
        print(f"nbflow: warning: {missing}", file=err)


def results_report(runner: FlowRunner, state: State) -> tuple[str | None, str | None]:
    """For a run with a result store (``--results``): a line naming the run's folder in the
    store, and one naming the tasks whose result could not be written there (or ``None``)."""
    if runner.results is None:
        return None, None
    finals = (state.result or {}).items()
    stored = [t for t, s in finals if is_ref(s.result_ref)]
    params = sum(1 for t in stored if t.kind == "parameter")
    counts = [(len(stored) - params, "task"), (params, "parameter")]
    what = " and ".join(counted(n, noun) for n, noun in counts if n)
    where = ResultStore(runner.results).run_folder(runner.flow_run_id)
    line = f"stored the results of {what} under {where}" if stored else f"stored nothing under {where}"
    missing = [t.slug or t.name for t, s in finals if s.is_successful() and not is_ref(s.result_ref)]
    return line, f"not stored: {', '.join(missing)} (their logs say why)" if missing else None


def _report_outputs(notebook: NotebookFlow, state: State, out: TextIO, output_dir: str | None) -> None:
    """Figures saved to ``output_dir``."""
    results = _successful_results(state)
    if output_dir is not None:
        written = save_figures(results, output_dir)
        if written:
            out.write(f"nbflow: saved {len(written)} figures of flow {notebook.name!r} to {output_dir}\n")


def run_with_arguments(notebook: NotebookFlow, args: argparse.Namespace) -> int:
    """``run_notebook_flow`` with the options ``add_run_arguments`` defined; the exit code."""
    code, _ = run_notebook_flow(
        notebook,
        parameters=parse_parameters(args.param),
        context=parse_context(args.context),
        executor=args.executor,
        dask_address=args.dask_address,
        cache=not args.no_cache,
        quiet=args.quiet,
        show_logs=args.show_logs,
        output_dir=args.output_dir,
        results=args.results,
        keep="none",  # nothing reads a result after the command: each goes after its last reader
    )
    return code


def main_for(notebook_factory: Any, argv: list[str] | None, prog: str) -> int:
    """The ``main`` of a runnable flow: parse ``argv``, run, exit code."""
    parser = argparse.ArgumentParser(prog=prog, description="Run this flow.")
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_with_arguments(notebook_factory(), args)
    except NbflowError as exc:
        print(f"nbflow: {exc}", file=sys.stderr)
        return EXIT_USAGE
