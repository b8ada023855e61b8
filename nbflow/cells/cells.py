"""The cell model shared by the kernel and headless runs: kinds, options, names.

A cell's first line decides its kind: ``%%task [NAME] [options]`` (or
``%%shell_task``), ``%%setup``, ``%%params``; anything else is plain code,
which is not part of the flow.
"""

from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from nbflow.cells.analysis import CellAnalysis, analyze
from nbflow.cells.handlers import check_handler_name
from nbflow.core.errors import NbflowError, NotebookError
from nbflow.core.schedules import parse_duration
from nbflow.core.triggers import TRIGGERS

if TYPE_CHECKING:
    from nbflow.core.tasks import EngineOptions

CellKind = Literal["task", "setup", "params", "code"]

DEFAULT_CACHE = "1d"  # `--cache` without a duration


@dataclass(frozen=True)
class TaskOptions:
    """The options of a ``%%task`` line."""

    name: str | None = None
    retries: int = 0
    retry_delay: float = 0.0
    timeout: float | None = None
    cache_for: float | None = None
    trigger: str = "all_successful"
    tags: tuple[str, ...] = ()
    upstream: tuple[str, ...] = ()
    no_run: bool = False
    shell: bool = False
    mutates: tuple[str, ...] = ()
    #: (event, function name) pairs from --on-failure / --on-success / --on-state (``cells/handlers.py``)
    handlers: tuple[tuple[str, str], ...] = ()
    #: Names the cell runs once per element of (``--map``), each bound to the element.
    map: tuple[str, ...] = ()
    #: The registered flow this cell starts a run of (``--starts``), and whether it waits for it.
    starts: str | None = None
    wait: bool = True

    def engine_options(self) -> EngineOptions:
        """The options the engine's ``Task`` takes."""
        return {
            "retries": self.retries,
            "retry_delay": self.retry_delay,
            "timeout": self.timeout,
            "cache_for": self.cache_for,
            "trigger": self.trigger,
            "tags": self.tags,
        }


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise NotebookError(message)


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _seconds(text: str) -> float:
    try:
        return parse_duration(text).total_seconds()
    except NbflowError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _nonneg_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def _trigger(text: str) -> str:
    name = text.replace("-", "_")
    if name not in TRIGGERS:
        raise argparse.ArgumentTypeError(f"unknown trigger {text!r}; use one of: {', '.join(TRIGGERS)}")
    return name


_HANDLER_FLAGS = (("--on-failure", "failed"), ("--on-success", "success"), ("--on-state", "state"))


def task_parser() -> argparse.ArgumentParser:
    """The ``%%task`` argument parser."""
    parser = _Parser(
        prog="%%task",
        description="Make this cell a task of the notebook's flow.",
        add_help=False,
        exit_on_error=False,
    )
    parser.add_argument("name", nargs="?", help="task name (default: the first name the cell defines)")
    parser.add_argument("--retries", type=_nonneg_int, default=0, metavar="N")
    parser.add_argument("--retry-delay", type=_seconds, default=0.0, metavar="SECONDS")
    parser.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS")
    parser.add_argument(
        "--cache", nargs="?", const=DEFAULT_CACHE, default=None, metavar="DURATION",
        help=f"reuse a result younger than DURATION (default {DEFAULT_CACHE}) for the same code, inputs and parameters",
    )  # fmt: skip
    parser.add_argument("--trigger", type=_trigger, default="all_successful", metavar="|".join(TRIGGERS))
    parser.add_argument("--tags", type=_csv, default=(), metavar="a,b")
    parser.add_argument("--upstream", type=_csv, default=(), metavar="a,b", help="explicit upstream tasks")
    parser.add_argument(
        "--mutates", type=_csv, default=(), metavar="a,b",
        help="inputs this cell changes in place (e.g. df.drop(..., inplace=True)): it then counts as defining them",
    )  # fmt: skip
    for flag, event in _HANDLER_FLAGS:
        parser.add_argument(
            flag, action="append", default=[], metavar="FUNCTION", dest=f"on_{event}",
            help=f"call FUNCTION(task, old_state, new_state), defined in %%%%setup, on {event} (repeatable)",
        )  # fmt: skip
    parser.add_argument(
        "--map", type=_csv, default=(), metavar="NAME[,NAME2]",
        help="run the cell once per element of NAME (bound to NAME inside the cell); its outputs become lists",
    )  # fmt: skip
    parser.add_argument(
        "--starts", default=None, metavar="FLOW",
        help="start a run of the registered flow FLOW on the server and wait for it: its parameters are "
        "the dict the cell binds to `parameters`, its outcome is bound to FLOW_run (see starts_outcome_name)",
    )  # fmt: skip
    parser.add_argument(
        "--no-wait", action="store_true", help="with --starts: do not wait for the run to end"
    )
    parser.add_argument("--no-run", action="store_true", help="define the task without running it")
    parser.add_argument("--shell", action="store_true", help="the cell is a shell script")
    return parser


TASK_PARSER = task_parser()
TASK_USAGE = TASK_PARSER.format_usage().strip()


# Parsed lines, by (line, shell): a notebook re-runs the same few lines, and argparse costs
# more than the rest of a small task's run. TaskOptions is frozen, so sharing one is safe.
_PARSED: dict[tuple[str, bool], TaskOptions] = {}
_PARSED_MAX = 4096


def parse_task_line(line: str, *, where: str, shell: bool = False) -> TaskOptions:
    """Options of a ``%%task`` line; a bad option names ``where`` and shows the usage."""
    known = _PARSED.get((line, shell))
    if known is not None:
        return known
    options = _parse_task_line(line, where=where, shell=shell)
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    _PARSED[(line, shell)] = options
    return options


def _parse_task_line(line: str, *, where: str, shell: bool) -> TaskOptions:
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise NotebookError(f"{where}: cannot read the %%task line ({exc})") from None
    try:
        ns = TASK_PARSER.parse_args(argv)
    except (NotebookError, argparse.ArgumentError) as exc:
        raise NotebookError(f"{where}: {exc}\n{TASK_USAGE}") from None
    for option, names in (("--mutates", ns.mutates), ("--map", ns.map)):
        bad = [n for n in names if not n.isidentifier()]
        if bad:
            raise NotebookError(f"{where}: {option} {bad[0]!r} is not a variable name\n{TASK_USAGE}")
    if ns.map and (shell or ns.shell):
        raise NotebookError(f"{where}: --map is for Python cells, not shell cells\n{TASK_USAGE}")
    _check_starts(ns, where=where, shell=shell or ns.shell)
    if ns.name is not None and not ns.name.isidentifier():
        raise NotebookError(
            f"{where}: task name {ns.name!r} must be a Python identifier (letters, digits, _)\n{TASK_USAGE}"
        )
    handlers = tuple(
        (event, check_handler_name(name, where=where))
        for _, event in _HANDLER_FLAGS
        for name in getattr(ns, f"on_{event}")
    )
    cache_for = None
    if ns.cache is not None:
        try:
            cache_for = parse_duration(ns.cache).total_seconds()
        except NbflowError as exc:
            raise NotebookError(f"{where}: --cache {exc}") from None
    return TaskOptions(
        name=ns.name,
        retries=ns.retries,
        retry_delay=ns.retry_delay,
        timeout=ns.timeout,
        cache_for=cache_for,
        trigger=ns.trigger,
        tags=ns.tags,
        upstream=ns.upstream,
        no_run=ns.no_run,
        shell=shell or ns.shell,
        mutates=ns.mutates,
        handlers=handlers,
        map=ns.map,
        starts=ns.starts,
        wait=not ns.no_wait,
    )


def _check_starts(ns: argparse.Namespace, *, where: str, shell: bool) -> None:
    """``--starts FLOW`` names a flow, in a Python cell; ``--no-wait`` goes with it."""
    if ns.no_wait and ns.starts is None:
        raise NotebookError(f"{where}: --no-wait goes with --starts FLOW\n{TASK_USAGE}")
    if ns.starts is None:
        return
    if not ns.starts.strip() or ns.starts.startswith("-"):
        raise NotebookError(f"{where}: --starts needs the name of a registered flow\n{TASK_USAGE}")
    if shell:
        raise NotebookError(f"{where}: --starts is for Python cells, not shell cells\n{TASK_USAGE}")


def starts_outcome_name(flow_name: str) -> str:
    """The variable a ``--starts FLOW`` cell binds the started run's outcome to: ``FLOW_run``
    (``daily-etl`` -> ``daily_etl_run``); later cells read it like any other output."""
    stem = re.sub(r"\W+", "_", flow_name).strip("_") or "flow"
    return f"{stem}_run" if stem[0].isalpha() or stem[0] == "_" else f"f_{stem}_run"


@dataclass
class Cell:
    """One cell of the notebook, as the flow sees it."""

    kind: CellKind
    source: str
    options: TaskOptions = field(default_factory=TaskOptions)
    where: str = "the cell"
    cell_id: str | None = None
    index: int | None = None
    _analysis: CellAnalysis | None = field(default=None, repr=False)

    @property
    def first_line(self) -> int:
        """The line of the notebook cell where ``source`` starts: 2 below a ``%%`` magic line.

        Messages and tracebacks count lines as the user sees them in the cell.
        """
        return 1 if self.kind == "code" else 2

    @property
    def analysis(self) -> CellAnalysis:
        """What the cell defines and uses (analysed once)."""
        if self._analysis is None:
            if self.options.shell:
                self._analysis = CellAnalysis(defines=(), uses=())
            else:
                self._analysis = analyze(self.source, where=self.where, first_line=self.first_line)
            if self.options.starts is not None:  # the started run's outcome is an output too
                outcome = starts_outcome_name(self.options.starts)
                defines = tuple(dict.fromkeys([*self._analysis.defines, outcome]))
                self._analysis = replace(self._analysis, defines=defines)
        return self._analysis


_MAGIC = re.compile(r"^\s*%%(task|shell_task|setup|params)\b(.*)$")


def split_magic(source: str) -> tuple[CellKind, str, str, bool]:
    """(kind, magic arguments, body, shell) of a cell's full source."""
    first, _, body = source.partition("\n")
    match = _MAGIC.match(first)
    if match is None:
        return "code", "", source, False
    magic, args = match.group(1), match.group(2).strip()
    if magic in ("task", "shell_task"):
        return "task", args, body, magic == "shell_task"
    return magic, args, body, False  # type: ignore[return-value]


def cell_from_source(
    source: str, *, where: str, cell_id: str | None = None, index: int | None = None
) -> Cell:
    """A cell from its full source (the magic line decides its kind)."""
    kind, args, body, shell = split_magic(source)
    if kind == "task":
        options = parse_task_line(args, where=where, shell=shell)
        return Cell("task", body, options, where=where, cell_id=cell_id, index=index)
    return Cell(kind, body, where=where, cell_id=cell_id, index=index)
