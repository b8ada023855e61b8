"""IPython magics: ``%%task``, ``%%shell_task``, ``%%setup``, ``%%params`` and ``%flow``.

The magics parse and print; ``NotebookSession`` does the work. Bad input is
an IPython ``UsageError`` (one clear line, no traceback); a failed task
raises ``TaskFailed``, which renders as the task's own traceback.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from nbflow import flowrun
from nbflow.cells.cells import TASK_PARSER, parse_task_line
from nbflow.cells.guard import unwatched
from nbflow.cells.ipython import live_displays
from nbflow.core.errors import NbflowError
from nbflow.core.mapping import child_slug
from nbflow.core.states import StateType
from nbflow.kernel.cellcomm import open_cell_comm
from nbflow.kernel.flowcommands import FLOW_PARSER, FlowCommands
from nbflow.kernel.session import NotebookSession

if TYPE_CHECKING:
    from nbflow.core.states import State

S = StateType


class TaskFailed(Exception):
    """A task cell's run ended Failed/TimedOut/Cancelled; shows the task's own traceback."""

    def __init__(self, name: str, state: State, details: str) -> None:
        super().__init__(f"task {name!r} {state.type.value}: {state.message}")
        self.details = details

    def _render_traceback_(self) -> list[str]:
        lines = self.details.splitlines() if self.details else []
        return [*lines, f"\x1b[31m{self}\x1b[0m"]


@magics_class
class NbflowMagics(Magics):
    """The ``%%task``, ``%%shell_task``, ``%%setup``, ``%%params`` and ``%flow`` magics."""

    def __init__(self, shell: Any, session: NotebookSession) -> None:
        super().__init__(shell)
        self.session = session
        self.commands = FlowCommands(session, shell)

    # -- cells ----------------------------------------------------------------

    def _define_task(self, line: str, cell: str, *, shell: bool) -> None:
        try:
            options = parse_task_line(line, where=self.session.where(), shell=shell)
            name = self.session.define("task", cell, options)
        except NbflowError as exc:
            raise UsageError(str(exc)) from None
        assert name is not None
        if options.no_run:
            return
        self._run_task_cell(name)

    def _run_task_cell(self, name: str) -> None:
        try:
            flow = self.session.flow
            shared = [n for c in [*flow.setup_cells, *flow.params_cells] for n in c.analysis.defines]
            # Its displays and figures show under this cell; setup values are shared, not inputs.
            with live_displays(), unwatched(shared):
                state = self.session.run_task_now(name)
        except NbflowError as exc:
            raise UsageError(str(exc)) from None
        self.session.note_mutations(name, state)  # the warning itself is in the cell's output
        self.session.new_mutations.pop(name, None)
        if state.is_successful():
            if state.type is S.CACHED:
                print(f"task {name!r}: restored from cache", file=sys.stderr)
            elif state.attempt > 1:
                print(f"task {name!r}: {state.type.value} on attempt {state.attempt}", file=sys.stderr)
            display = getattr(state.result, "display", None)
            if display is not None and not getattr(state.result, "shown", False):
                self.shell.displayhook(display)
            return
        # A mapped cell: the traceback of its first failed child (``name[i]``).
        failed = [i for i, child in enumerate(state.children or ()) if child.is_failed()]
        view = self.session.view.latest(child_slug(name, failed[0]) if failed else name)
        errors = [line.message for line in (view.logs if view else []) if line.level == "ERROR"]
        attempts = f" after {state.attempt} attempts" if state.attempt > 1 else ""
        details = errors[-1] if errors and state.type is S.FAILED else ""
        failure = TaskFailed(name, state, details)
        failure.args = (f"task {name!r} {state.type.value}{attempts}: {state.message}",)
        raise failure

    @cell_magic
    def task(self, line: str, cell: str) -> None:
        """Make this cell a task of the notebook's flow, and run it."""
        self._define_task(line, cell, shell=False)

    @cell_magic
    def shell_task(self, line: str, cell: str) -> None:
        """A task whose cell is a bash script (same options as %%task)."""
        self._define_task(line, cell, shell=True)

    @cell_magic
    def setup(self, line: str, cell: str) -> None:  # noqa: ARG002
        """Imports and helpers every task may use; runs once per flow run before any task."""
        try:
            self.session.define("setup", cell)
        except NbflowError as exc:
            raise UsageError(str(exc)) from None
        self.shell.ex(self.session.flow.setup_cells[-1].analysis.python)

    @cell_magic
    def params(self, line: str, cell: str) -> None:  # noqa: ARG002
        """Parameter defaults (JSON values); a run may override them with -p name=value."""
        try:
            self.session.define("params", cell)
            defaults = self.session.flow.parameter_defaults()
        except NbflowError as exc:
            raise UsageError(str(exc)) from None
        self.shell.user_ns.update(defaults)

    # -- %flow ---------------------------------------------------------------------

    @line_magic
    def flow(self, line: str) -> Any:
        """%flow show | run | cancel | status | logs | check | backfill | schedule | export | reset | ..."""
        try:
            args = FLOW_PARSER.parse_args(shlex.split(line))
        except (NbflowError, argparse.ArgumentError, ValueError) as exc:
            raise UsageError(f"{exc}\n{FLOW_PARSER.format_usage().strip()}") from None
        if args.command is None:
            print(FLOW_PARSER.format_help())
            return None
        try:
            return self.commands.dispatch(args)
        except NbflowError as exc:
            raise UsageError(str(exc)) from None


TASK_HELP = TASK_PARSER.format_help()
NbflowMagics.task.__doc__ = f"Make this cell a task of the notebook's flow, and run it.\n\n{TASK_HELP}"


def _hooks(session: NotebookSession) -> tuple[Any, Any]:
    def pre_run_cell(info: Any) -> None:
        session.current_cell_id = getattr(info, "cell_id", None)

    def post_run_cell(result: Any) -> None:
        info = getattr(result, "info", None)
        raw = getattr(info, "raw_cell", "") or ""
        if raw.lstrip().startswith(("%%", "%flow", "%load_ext")):
            return
        session.note_plain_cell(raw, getattr(result, "execution_count", None))

    return pre_run_cell, post_run_cell


_SESSIONS: dict[int, tuple[NotebookSession, Any, Any]] = {}


def get_session(ipython: Any) -> NotebookSession:
    """The nbflow session of an IPython shell (``%load_ext nbflow`` first)."""
    entry = _SESSIONS.get(id(ipython))
    if entry is None:
        raise UsageError("nbflow is not loaded; run %load_ext nbflow first")
    return entry[0]


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics and the cell hooks (once per shell)."""
    if id(ipython) in _SESSIONS:
        return
    session = NotebookSession(ipython)
    flowrun.install()  # %%task --starts cells start runs on the client's server, with its key
    pre, post = _hooks(session)
    ipython.events.register("pre_run_cell", pre)
    ipython.events.register("post_run_cell", post)
    ipython.register_magics(NbflowMagics(ipython, session))
    _SESSIONS[id(ipython)] = (session, pre, post)
    cell_comm = open_cell_comm(session)
    if cell_comm is not None:
        session.attach_cell_comm(cell_comm)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the hooks and stop the session's run."""
    entry = _SESSIONS.pop(id(ipython), None)
    if entry is None:
        return
    session, pre, post = entry
    session.cancel()
    ipython.events.unregister("pre_run_cell", pre)
    ipython.events.unregister("post_run_cell", post)
