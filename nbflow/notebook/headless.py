"""Run a notebook's flow without Jupyter: ``nbflow run`` and exported modules share this."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from nbflow.core.errors import HiddenDependencyError, NbflowError
from nbflow.core.events import EventStream
from nbflow.core.executors import DaskExecutor, Executor, resolve_executor
from nbflow.core.runner import FlowRunner
from nbflow.notebook.params import parse_parameters
from nbflow.notebook.progress import TerminalProgress, summary

if TYPE_CHECKING:
    from nbflow.core.states import State
    from nbflow.notebook.cellflow import NotebookFlow

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override a parameter (repeatable); values are JSON or plain strings")  # fmt: skip
    parser.add_argument("--executor", choices=["local", "threads", "dask"], default="threads")
    parser.add_argument(
        "--dask-address", metavar="ADDRESS", help="a running Dask scheduler (default: a LocalCluster)"
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="ignore cached results (still stores new ones)"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.add_argument("--show-logs", action="store_true", help="print every log line of every task")


def make_executor(name: str, dask_address: str | None) -> Executor:
    if name == "dask":
        return DaskExecutor(address=dask_address)
    return resolve_executor(name)


def run_notebook_flow(
    notebook: NotebookFlow,
    *,
    parameters: dict[str, Any] | None = None,
    executor: str = "threads",
    dask_address: str | None = None,
    cache: bool = True,
    quiet: bool = False,
    show_logs: bool = False,
    out: TextIO | None = None,
    stream: EventStream | None = None,
) -> tuple[int, State | None]:
    """(exit code, final state). Headless runs refuse hidden dependencies."""
    out = out or sys.stdout
    err = sys.stderr
    try:
        flow, _ = notebook.build()
        runner = FlowRunner(
            flow,
            parameters=parameters,
            executor=make_executor(executor, dask_address),
            cache=cache,
            stream=stream or EventStream(),
            echo=False,
        )
    except HiddenDependencyError as exc:
        print(f"nbflow: refusing to run flow {notebook.name!r}: {exc}", file=err)
        return EXIT_USAGE, None
    except NbflowError as exc:
        print(f"nbflow: {exc}", file=err)
        return EXIT_USAGE, None
    if not quiet:
        progress = TerminalProgress(out, show_logs=show_logs)
        runner.stream.subscribe(progress.observe)
        out.write(
            f"nbflow: running flow {notebook.name!r}: {len(runner.order)} tasks on {runner.executor.describe()}\n"
        )
    started = time.time()
    try:
        state = runner.run()
    except NbflowError as exc:
        print(f"nbflow: {exc}", file=err)
        return EXIT_USAGE, None
    out.write(summary(notebook.name, state, time.time() - started) + "\n")
    out.flush()
    if state.is_successful():
        return EXIT_OK, state
    return (EXIT_CANCELLED if state.is_cancelled() else EXIT_FAILED), state


def run_with_arguments(notebook: NotebookFlow, args: argparse.Namespace) -> int:
    """``run_notebook_flow`` with the options ``add_run_arguments`` defined; the exit code."""
    code, _ = run_notebook_flow(
        notebook,
        parameters=parse_parameters(args.param),
        executor=args.executor,
        dask_address=args.dask_address,
        cache=not args.no_cache,
        quiet=args.quiet,
        show_logs=args.show_logs,
    )
    return code


def main_for(notebook_factory: Any, argv: list[str] | None, prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Run this flow.")
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_with_arguments(notebook_factory(), args)
    except NbflowError as exc:
        print(f"nbflow: {exc}", file=sys.stderr)
        return EXIT_USAGE
