"""``%flow`` subcommands: argument parsing and what each prints."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbflow.cells.cellflow import PARAM, SETUP
from nbflow.cells.export import export_module
from nbflow.cells.guard import mutation_message
from nbflow.cells.handlers import EVENTS_HELP
from nbflow.cells.params import expand_backfill, parse_context, parse_parameters
from nbflow.core.errors import NbflowError, NotebookError
from nbflow.core.executors import resolve_executor
from nbflow.core.results import ResultStore
from nbflow.core.schedules import CronSchedule, IntervalSchedule
from nbflow.terminal.headless import results_report
from nbflow.terminal.progress import summary
from nbflow.terminal.report import seconds, shorten, table

if TYPE_CHECKING:
    from nbflow.kernel.session import NotebookSession


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise NotebookError(message)


CHECK_WIDTH = 100  # %flow check wraps between words to fit a notebook's output area
PRIVATE_HELP = "agents keep log lines and failure details; the server gets states only, no variable names"


def _run_options(p: argparse.ArgumentParser) -> None:
    """Options every command that runs the flow takes (``run``, ``backfill``)."""
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE",
                   help="a value tasks read as nbflow.context.KEY")  # fmt: skip
    # Sequential by default: the values of a top-to-bottom run (README, "fidelity").
    p.add_argument("--executor", choices=["local", "threads", "dask"], default="local")
    p.add_argument("--dask-address", metavar="ADDRESS")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--quiet", action="store_true", help="do not show the widget")
    _server_options(p, flag=True)


def _server_options(p: argparse.ArgumentParser, *, flag: bool) -> None:
    """``--server`` (a flag on run commands: create the run there), ``--key``, ``--labels``."""
    if flag:
        p.add_argument("--server", nargs="?", const="", default=None, metavar="URL",
                       help="create the run(s) on the nbflow server; an agent runs them")  # fmt: skip
    else:
        p.add_argument(
            "--server", metavar="URL", help="server URL (default: NBFLOW_API_URL or ~/.nbflow/config.toml)"
        )
    p.add_argument("--key", metavar="KEY", help="API key (default: NBFLOW_API_KEY or ~/.nbflow/config.toml)")
    p.add_argument("--labels", metavar="a,b", help="only agents with all these labels run it")


def _add_running(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run the whole flow")
    _run_options(run)
    run.add_argument("--background", action="store_true", help="return at once; the run goes on")
    run.add_argument("--to", metavar="TASK", help="run only TASK and its upstream tasks")
    run.add_argument(
        "--rerun-failed", action="store_true", help="re-run only failed tasks and their downstream"
    )
    run.add_argument("--on-schedule", action="store_true", help="wait for each scheduled time, then run")
    run.add_argument(
        "--results", metavar="URL",
        help="store every task run's result under URL (a folder, s3://bucket/prefix: any fsspec URL)",
    )  # fmt: skip
    run.add_argument(
        "--runs", type=int, default=None, metavar="N", help="with --on-schedule: stop after N runs"
    )
    backfill = sub.add_parser("backfill", help="one run per parameter value (or combination)")
    _run_options(backfill)
    sub.add_parser("cancel", help="cancel the run in progress")


def _add_looking(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("show", help="show the flow's DAG widget")
    sub.add_parser("status", help="each task's last state")
    logs = sub.add_parser("logs", help="logs of the last run of each task (or one)")
    logs.add_argument("task", nargs="?")
    sub.add_parser("check", help="inputs, outputs and warnings of every task")


def _add_server(sub: argparse._SubParsersAction) -> None:
    register = sub.add_parser("register", help="register the flow with the nbflow server")
    _server_options(register, flag=False)
    register.add_argument(
        "--storage", metavar="DIR|URL", help="where agents read the code: a folder or s3://bucket/prefix"
    )
    register.add_argument("--max-resubmits", type=int, default=0, metavar="N")
    register.add_argument("--private", action="store_true", help=PRIVATE_HELP)
    watch = sub.add_parser("watch", help="show a server run in the widget, live")
    watch.add_argument("run_id")
    _server_options(watch, flag=False)
    restart = sub.add_parser("restart", help="re-run a failed server run from its failed tasks")
    restart.add_argument("run_id")
    _server_options(restart, flag=False)
    pull = sub.add_parser("pull", help="load a server run's stored outputs into the kernel")
    pull.add_argument("run_id")
    pull.add_argument("names", nargs="*", help="only these variables (or every output of these tasks)")
    _server_options(pull, flag=False)


def _add_editing(sub: argparse._SubParsersAction) -> None:
    schedule = sub.add_parser("schedule", help="set or clear the flow's schedule")
    group = schedule.add_mutually_exclusive_group()
    group.add_argument("--cron", metavar="EXPRESSION")
    group.add_argument("--every", metavar="DURATION")
    group.add_argument("--off", action="store_true")
    schedule.add_argument("--timezone", default="UTC")
    cache = sub.add_parser("cache", help="manage this flow's cached results")
    cache.add_argument("action", choices=["clear"])
    export = sub.add_parser("export", help="write the flow as a standalone Python module")
    export.add_argument("path")
    adopt = sub.add_parser("adopt", help="turn this notebook into an nbflow notebook (prints what to change)")
    adopt.add_argument("path", nargs="?", help="the notebook (default: the one this kernel runs)")
    adopt.add_argument("--write", metavar="OUT", help="write the converted notebook to OUT")
    sub.add_parser("reset", help="forget the flow's tasks and runs")
    name = sub.add_parser("name", help="set the flow's name")
    name.add_argument("name")
    order = sub.add_parser("order", help="set the task order (comma-separated names)")
    order.add_argument("names")
    remove = sub.add_parser("remove", help="remove a task from the flow")
    remove.add_argument("task")
    on = sub.add_parser("on", help="call a %%setup function when the flow run fails, succeeds, ...")
    on.add_argument("event", nargs="?", metavar=EVENTS_HELP)
    on.add_argument(
        "function", nargs="?", help="a function defined in %%setup: f(flow, old_state, new_state)"
    )


def _flow_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="%flow", add_help=False, exit_on_error=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in (_add_running, _add_looking, _add_server, _add_editing):
        add(sub)
    return parser


FLOW_PARSER = _flow_parser()


class FlowCommands:
    """The ``%flow`` subcommands: each ``cmd_<name>`` parses nothing and prints its result."""

    def __init__(self, session: NotebookSession, shell: Any) -> None:
        self.session = session
        self.shell = shell

    def dispatch(self, args: argparse.Namespace) -> Any:
        """Run the subcommand ``args.command`` names."""
        handler = getattr(self, f"cmd_{args.command.replace('-', '_')}")
        return handler(args)

    # -- showing and running ----------------------------------------------------------

    def _display(self, obj: Any) -> None:
        from IPython.display import display

        display(obj)

    def cmd_show(self, args: argparse.Namespace) -> None:  # noqa: ARG002
        """``%flow show``: the widget."""
        self._display(self.session.widget())

    def _warn_hidden(self) -> None:
        try:
            resolution = self.session.flow.resolve()
        except NbflowError:
            return
        for task, names in resolution.hidden.items():
            for name in names:
                print(
                    f"warning: task {task!r} reads {name!r}, which no task, %%setup or %%params cell "
                    "defines; this run takes it from the kernel (a headless or Dask run would refuse)",
                    file=sys.stderr,
                )

    def _labels(self, args: argparse.Namespace) -> list[str]:
        return [label.strip() for label in (args.labels or "").split(",") if label.strip()]

    def _server_runs(self, args: argparse.Namespace, parameter_sets: list[dict[str, Any]]) -> None:
        from nbflow.kernel import remote

        with remote.client(args.server or None, args.key) as api:
            registered, runs = remote.create_runs(
                self.session.flow, api, parameter_sets, labels=self._labels(args),
                context=parse_context(args.context),
            )  # fmt: skip
        if len(runs) == 1 and not getattr(args, "quiet", False):
            self._watch(api.url, args.key, runs[0].id)
        print(f"flow {self.session.flow.name!r} version {registered.version} on {api.url}:")
        for run in runs:
            shown = ", ".join(f"{k}={v}" for k, v in run.parameters.items())
            print(f"  run {run.id} {run.state}" + (f" ({shown})" if shown else ""))
        print(
            "an agent with the flow's labels runs them; `nbflow runs show RUN_ID` or %flow watch RUN_ID follows one"
        )

    def _watch(self, url: str | None, key: str | None, run_id: str) -> None:
        from nbflow.kernel import remote
        from nbflow.kernel.watch import ServerRunWatch

        cell_comm = self.session.cell_comm
        on_records = cell_comm.watching() if cell_comm is not None else None
        watch = ServerRunWatch(remote.client(url, key), run_id, on_records=on_records).start()
        self.session.watches.append(watch)
        self._display(watch.widget)

    def cmd_watch(self, args: argparse.Namespace) -> None:
        """``%flow watch RUN_ID``: a server run, live in the widget."""
        self._watch(args.server, args.key, args.run_id)

    def cmd_restart(self, args: argparse.Namespace) -> None:
        """``%flow restart RUN_ID``: a new server run that re-runs the failed tasks and their
        downstream, reusing the stored results of the others (an agent runs it)."""
        from nbflow.kernel import remote

        with remote.client(args.server, args.key) as api:
            run = api.restart_flow_run(args.run_id)
        print(
            f"flow run {run.id} restarts {args.run_id} from its failed tasks; %flow watch {run.id} follows it"
        )

    def cmd_pull(self, args: argparse.Namespace) -> None:
        """``%flow pull RUN_ID [NAMES]``: a server run's stored outputs become kernel variables."""
        from nbflow.kernel import remote

        with remote.client(args.server, args.key) as api:
            values, unstored = remote.pull_outputs(api, args.run_id, args.names)
        self.shell.user_ns.update(values)
        print(f"pulled {', '.join(values) or 'nothing'} from run {args.run_id}")
        if unstored and not args.names:
            print(f"no stored result for: {', '.join(unstored)}")

    def cmd_register(self, args: argparse.Namespace) -> None:
        """``%flow register``."""
        from nbflow.kernel import remote

        with remote.client(args.server, args.key) as api:
            registered = remote.register(
                self.session.flow,
                api,
                labels=self._labels(args),
                storage_dir=args.storage,
                max_resubmits=args.max_resubmits,
                private=args.private,
            )
        what = "registered" if registered.created else "already registered (no change)"
        print(
            f"flow {self.session.flow.name!r} {what} on {api.url}: id {registered.flow_id}, version {registered.version}"
        )

    def cmd_run(self, args: argparse.Namespace) -> Any:
        """``%flow run``: here (outputs written back), or on the server with ``--server``."""
        session = self.session
        parameters = parse_parameters(args.param)
        if args.server is not None:
            return self._server_runs(args, [parameters])
        executor = resolve_executor(args.executor, dask_address=args.dask_address)
        if args.on_schedule:
            return self._run_on_schedule(args, parameters)
        self._warn_hidden()
        # The widget shows once the run is accepted: a refused run (an unknown parameter)
        # prints its error alone, with no empty graph and live Run button above it.
        show = None if args.quiet else (lambda: self._display(session.widget()))
        runner, state = session.start_run(
            parameters,
            on_start=show,
            executor=executor,
            cache=not args.no_cache,
            targets=[args.to] if args.to else None,
            rerun_failed=args.rerun_failed,
            background=args.background,
            context=parse_context(args.context),
            results=args.results,
        )
        if args.background:
            print(
                f"flow {session.flow.name!r} is running in the background; %flow status shows progress, %flow cancel stops it"
            )
            if runner.results is not None:
                print(f"its results go under {ResultStore(runner.results).run_folder(runner.flow_run_id)}")
            return None
        assert state is not None
        print(summary(session.flow.name, state))
        stored, missing = results_report(runner, state)
        for line, stream in ((stored, sys.stdout), (missing, sys.stderr)):
            if line is not None:
                print(line, file=stream)
        self._warn_mutations()
        return None

    def _warn_mutations(self) -> None:
        """What the mutation guard found in the last run (each task's log has it too)."""
        found, self.session.new_mutations = self.session.new_mutations, {}
        for task, names in found.items():
            where = self.session.flow.task_cell(task).where if task in self.session.flow.task_names else "?"
            print(f"warning: {mutation_message(task, names, where)}", file=sys.stderr)

    def _run_on_schedule(self, args: argparse.Namespace, parameters: dict[str, Any]) -> None:
        session = self.session
        if session.flow.schedule is None:
            raise NotebookError("the flow has no schedule; set one first: %flow schedule --every 10m")
        print(f"waiting for the schedule ({session.flow.schedule.describe()}); interrupt the kernel to stop")
        try:
            state = session.run_on_schedule(
                parameters,
                executor=resolve_executor(args.executor, dask_address=args.dask_address),
                cache=not args.no_cache,
                runs=args.runs,
                context=parse_context(args.context),
            )
        except KeyboardInterrupt:
            print("stopped waiting for the schedule")
            return
        print(summary(session.flow.name, state))

    def cmd_cancel(self, args: argparse.Namespace) -> None:  # noqa: ARG002
        """``%flow cancel``."""
        if self.session.cancel():
            print("cancelling: tasks not yet started will not run")
        else:
            print("no run in progress")

    def cmd_backfill(self, args: argparse.Namespace) -> None:
        """``%flow backfill``: one run per parameter combination, and a table of them."""
        session = self.session
        combos = expand_backfill(args.param)
        if args.server is not None:
            return self._server_runs(args, combos)
        context = parse_context(args.context)
        rows = []
        for number, params in enumerate(combos, start=1):
            _, state = session.start_run(
                params,
                executor=resolve_executor(args.executor, dask_address=args.dask_address),
                cache=not args.no_cache,
                context=context,
            )
            assert state is not None
            rows.append([number, *params.values(), state.type.value, shorten(state.message, 60)])
        headers = ["run", *combos[0].keys(), "state", "message"]
        print(f"backfill of flow {session.flow.name!r}: {len(combos)} runs")
        print(table(headers, rows))

    # -- looking at it ------------------------------------------------------------

    def cmd_status(self, args: argparse.Namespace) -> None:  # noqa: ARG002
        """``%flow status``: each task's latest state."""
        session = self.session
        rows = []
        children: list[str] = []  # a mapped task's children by state: "3 success, 1 failed"
        for name in session.flow.task_names:
            view = session.view.latest(name)
            counts = view.child_counts() if view else {}
            children.append(", ".join(f"{n} {state.lower()}" for state, n in counts.items()))
            rows.append(
                [
                    name,
                    view.state if view and view.state else "never run",
                    view.attempt if view and view.attempt > 1 else "",
                    seconds(view.duration) if view else "",
                    shorten(view.message, 70) if view else "",
                ]
            )
        headers = ["task", "state", "attempts", "duration", "message"]
        if any(children):
            headers.insert(2, "children")
            for row, counted in zip(rows, children, strict=True):
                row.insert(2, counted)
        run = session.view.run
        running = " (running now)" if session.runner is not None else ""
        last = f"; last run: {run.state}" if run is not None and run.state else ""
        print(f"flow {session.flow.name!r}: {len(rows)} tasks{last}{running}")
        if rows:
            print(table(headers, rows))

    def cmd_logs(self, args: argparse.Namespace) -> None:
        """``%flow logs [TASK]``."""
        session = self.session
        names = [args.task] if args.task else session.flow.task_names
        if args.task and session.view.latest(args.task) is None and args.task not in session.flow.task_names:
            raise NotebookError(f"no task {args.task!r}; tasks: {', '.join(session.flow.task_names)}")
        for name in names:
            view = session.view.latest(name)
            if view is None or not view.logs:
                if args.task:
                    print(f"task {name!r} has no logs yet")
                continue
            print(f"--- {name} ({view.state or '?'})")
            for record in view.logs:
                prefix = "" if record.level == "INFO" else f"[{record.level}] "
                for line in record.message.splitlines() or [""]:
                    print(f"{prefix}{line}")

    def cmd_check(self, args: argparse.Namespace) -> None:  # noqa: ARG002
        """``%flow check``: inputs, outputs and warnings of every task."""
        flow = self.session.flow
        resolution = flow.resolve()
        rows = []
        warnings = []
        later_definers: dict[str, str] = {}
        names = flow.task_names
        for name in names:
            cell = flow.task_cell(name)
            inputs = resolution.inputs.get(name, {})
            shown = [
                f"{n} <- {'params' if s == PARAM else 'setup' if s == SETUP else s}"
                for n, s in inputs.items()
            ]
            shown += [f"(after {u})" for u in resolution.explicit.get(name, [])]
            shown += [f"(after {u}: it reads what {name} changes)" for u in resolution.ordering.get(name, [])]
            changed = [
                f"{n} (in place)" for n in resolution.changes.get(name, {}) if n not in cell.analysis.defines
            ]
            rows.append([name, ", ".join(shown) or "-", ", ".join([*cell.analysis.defines, *changed]) or "-"])
            undeclared = resolution.undeclared(name)
            for mutated in undeclared:
                how = resolution.changes[name][mutated]
                seen = "seen by the mutation guard" if how == "detected" else "through a method call"
                warnings.append(
                    f"task {name!r} ({cell.where}) changes its input {mutated!r} in place ({seen}); "
                    f"nbflow runs it as defining {mutated!r}; declare it (%%task ... --mutates "
                    f"{mutated}) to allow parallel executors"
                )
        for index, name in enumerate(names):
            for defined in flow.task_cell(name).analysis.defines:
                later_definers.setdefault(defined, name)
            for hidden in resolution.hidden.get(name, []):
                later = [n for n in names[index + 1 :] if hidden in flow.task_cell(n).analysis.defines]
                origin = (
                    f"only the later task {later[0]!r} defines it: move {name!r} after it"
                    if later
                    else f"defined in {flow.outside[hidden]}, not a task cell"
                    if hidden in flow.outside
                    else "no cell defines it"
                )
                warnings.append(f"task {name!r} reads {hidden!r}, which no earlier task defines ({origin})")
        print(table(["task", "inputs", "outputs"], rows, max_width=CHECK_WIDTH) if rows else "no tasks yet")
        for warning in warnings:
            print(f"warning: {warning}")

    # -- changing it ----------------------------------------------------------------

    def cmd_on(self, args: argparse.Namespace) -> None:
        """``%flow on EVENT FUNCTION``: a flow-level handler; ``%flow on`` lists them."""
        flow = self.session.flow
        if args.event is None or args.function is None:
            if args.event is not None:
                raise NotebookError(f"%flow on {args.event}: name the %%setup function to call")
            if not flow.flow_handlers:
                print(f"flow {flow.name!r} has no handlers; add one: %flow on failed notify")
            for event, name in flow.flow_handlers:
                print(f"on {event}: {name}")
            return
        flow.on(args.event, args.function, where=self.session.where())
        defined = {n for c in flow.setup_cells for n in c.analysis.defines}
        later = "" if args.function in defined else " (define it in a %%setup cell before running)"
        print(f"flow {flow.name!r}: on {args.event.lower()}, call {args.function}{later}")

    def cmd_schedule(self, args: argparse.Namespace) -> None:
        """``%flow schedule``."""
        flow = self.session.flow
        if args.off:
            flow.schedule = None
            print(f"flow {flow.name!r} has no schedule now")
            return
        if args.cron:
            flow.schedule = CronSchedule(args.cron, timezone=args.timezone)
        elif args.every:
            flow.schedule = IntervalSchedule(args.every, timezone=args.timezone)
        if flow.schedule is None:
            print(f"flow {flow.name!r} has no schedule; set one with --cron or --every")
            return
        upcoming = ", ".join(t.isoformat(timespec="minutes") for t in flow.schedule.next(3))
        print(f"flow {flow.name!r}: {flow.schedule.describe()}; next runs: {upcoming}")

    def cmd_export(self, args: argparse.Namespace) -> None:
        """``%flow export PATH``."""
        path = Path(args.path)
        self.session.flow.build()  # refuse to export a flow that cannot run headless
        path.write_text(export_module(self.session.flow, source="a notebook session"))
        print(f"wrote {path} ({len(self.session.flow.task_names)} tasks); run it with: python {path}")

    def cmd_cache(self, args: argparse.Namespace) -> None:  # noqa: ARG002 - "clear" is the only action
        """``%flow cache clear``."""
        from nbflow.core.cache import ResultStore

        ResultStore(flow=self.session.flow.name).clear()
        print(f"cleared the cached results of flow {self.session.flow.name!r}")

    def cmd_adopt(self, args: argparse.Namespace) -> None:
        """Convert the notebook: print the changes cell by cell; ``--write`` saves the copy."""
        import nbformat

        from nbflow.cells.convert import convert, instructions, read

        path = args.path or os.environ.get("JPY_SESSION_NAME")
        if not path or not Path(path).is_file():
            raise NotebookError(
                "cannot tell which notebook this kernel runs; give its path: %flow adopt NOTEBOOK.ipynb "
                "(save it first: the file on disk is what is converted)"
            )
        conversion = convert(read(path), name=Path(path).stem)
        print(f"to make {Path(path).name} an nbflow notebook:")
        for step in instructions(conversion):
            print(f"  {step}")
        print(conversion.report())
        if args.write:
            nbformat.write(conversion.notebook, args.write)
            print(
                f"wrote {args.write}: open it and run all cells, or run it headless: nbflow run {args.write}"
            )
        else:
            print("or write the converted copy: %flow adopt --write NOTEBOOK.nbflow.ipynb")

    def cmd_reset(self, args: argparse.Namespace) -> None:  # noqa: ARG002
        """``%flow reset``."""
        self.session.reset()
        print("flow reset: no tasks, no runs")

    def cmd_name(self, args: argparse.Namespace) -> None:
        """``%flow name NAME``."""
        self.session.flow.name = args.name
        self.session.refresh_widget()

    def cmd_order(self, args: argparse.Namespace) -> None:
        """``%flow order a,b,c``."""
        self.session.flow.set_order(n.strip() for n in args.names.split(","))
        self.session.refresh_widget()

    def cmd_remove(self, args: argparse.Namespace) -> None:
        """``%flow remove TASK``."""
        self.session.flow.remove_task(args.task)
        self.session.refresh_widget()
        print(f"removed task {args.task!r}")
