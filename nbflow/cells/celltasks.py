"""Engine tasks made from cells: Python cells, shell cells, and the shared setup code.

A cell task runs its code in a fresh namespace holding the setup namespace,
the parameters and its inputs; its outputs are the names it defines. The
value of a last bare expression is kept as ``outputs.display`` so a single
cell run can show it under the cell like Jupyter does.
"""

from __future__ import annotations

import ast
import contextlib
import contextvars
import hashlib
import json
import linecache
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from nbflow.cells.analysis import transform_ipython
from nbflow.cells.cellmagic import leading_cell_magic, time_it, timed
from nbflow.cells.figures import flush_figures, may_draw, pyplot_turn
from nbflow.cells.guard import InputWatch, report
from nbflow.cells.ipython import capture_displays, prepare_namespace, run_code, show
from nbflow.core.context import context
from nbflow.core.errors import NotebookError, RunError
from nbflow.core.tasks import Task

if TYPE_CHECKING:
    from nbflow.cells.cells import Cell
    from nbflow.core.states import State


class CellOutputs(dict):  # type: ignore[type-arg]
    """The names a cell defined, plus the value of its last bare expression, the PNG images
    (figures) it displayed and the inputs it changed in place."""

    def __init__(
        self,
        values: Mapping[str, Any],
        display: Any = None,
        *,
        figures: Iterable[bytes] = (),
        mutated: Iterable[str] = (),
    ) -> None:
        super().__init__(values)
        self.display = display
        #: the display was already shown under the running cell (the kernel need not show it)
        self.shown = False
        self.figures = list(figures)
        self.mutated = tuple(mutated)

    def __reduce__(self) -> tuple[Any, ...]:
        # The displayed value only matters in the process that shows it.
        return (_rebuild_outputs, (dict(self), self.figures, self.mutated))


# Types whose values always pickle: checking them would copy (and for a large array or frame,
# double) the memory for nothing.
_PICKLABLE_SCALARS = (int, float, complex, bool, str, bytes, type(None))
_PICKLABLE_LIBRARIES = frozenset({"numpy", "pandas", "datetime", "decimal", "fractions", "pathlib", "uuid"})


def _surely_picklable(item: Any) -> bool:
    if isinstance(item, _PICKLABLE_SCALARS):
        return True
    if type(item).__module__.partition(".")[0] not in _PICKLABLE_LIBRARIES:
        return False
    # An object column may hold anything: such an array or frame is checked the long way.
    dtypes = getattr(item, "dtypes", None)
    if hasattr(dtypes, "items"):  # a frame: one dtype per column
        return all(str(dtype) != "object" for _, dtype in dtypes.items())
    return str(getattr(item, "dtype", "")) != "object"


def _rebuild_outputs(values: dict[str, Any], figures: list[bytes], mutated: tuple[str, ...]) -> CellOutputs:
    return CellOutputs(values, figures=figures, mutated=mutated)


def _register_source(filename: str, source: str) -> None:
    # Lets tracebacks show the cell's lines, in the kernel and in worker processes.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)


# Compiled cells by (filename, source): re-running a cell in the kernel makes a new task
# for the same code, and compiling costs more than the rest of a small task's run.
_COMPILED: dict[tuple[str, str], tuple[Any, Any]] = {}
_COMPILED_MAX = 1024


def _compile_cell(filename: str, python: str) -> tuple[Any, Any]:
    known = _COMPILED.get((filename, python))
    if known is not None:
        return known
    module = ast.parse(python)
    last = None
    # A trailing bare expression is shown like Jupyter shows it, unless it ends with ';'.
    if module.body and isinstance(module.body[-1], ast.Expr) and not python.rstrip().endswith(";"):
        tail_statement = module.body.pop()
        assert isinstance(tail_statement, ast.Expr)
        last = ast.Expression(tail_statement.value)
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT  # `await` at the top of a cell, as in Jupyter
    body = compile(module, filename, "exec", flags=flags)
    tail = compile(last, filename, "eval", flags=flags) if last is not None else None
    if len(_COMPILED) >= _COMPILED_MAX:
        _COMPILED.clear()
    _COMPILED[(filename, python)] = (body, tail)
    return body, tail


class SetupCode:
    """The ``%%setup`` cells: run once per flow run in each process, before its first task."""

    def __init__(self, sources: Iterable[str] = ()) -> None:
        self.source = "\n\n".join(s for s in sources if s.strip())
        self.sha = hashlib.sha256(self.source.encode()).hexdigest()[:16]
        self._lock = threading.Lock()
        self._cache: dict[str | None, dict[str, Any]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"source": self.source, "sha": self.sha}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__([state["source"]])  # type: ignore[misc]

    def namespace(self, run_id: str | None = None) -> dict[str, Any]:
        """A fresh copy of the setup namespace of this run (executed on first use)."""
        key = run_id if run_id is not None else context.flow_run_id
        with self._lock:
            base = self._cache.get(key)
            if base is None:
                base = self._execute()
                if len(self._cache) >= 4:  # keep the namespaces of the last few runs only
                    self._cache.pop(next(iter(self._cache)))
                self._cache[key] = base
        return dict(base)

    def _execute(self) -> dict[str, Any]:
        # "__main__", as in Jupyter: dataclasses, pickling and `if __name__ == "__main__"` expect it.
        namespace: dict[str, Any] = {"__name__": "__main__"}
        if not self.source:
            return namespace
        filename = f"<nbflow setup {self.sha}>"
        _register_source(filename, self.source)
        python = transform_ipython(self.source)
        prepare_namespace(namespace)
        try:
            run_code(compile(python, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT), namespace)
        except Exception as exc:
            raise RunError(f"the %%setup cells failed: {type(exc).__name__}: {exc}") from exc
        return namespace


EMPTY_SETUP = SetupCode()


class CellTask(Task):
    """A ``%%task`` cell as an engine task."""

    def __init__(
        self,
        cell: Cell,
        name: str,
        *,
        setup: SetupCode,
        parameter_names: Iterable[str] = (),
        changes: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(name=name, **cell.options.engine_options())
        analysis = cell.analysis
        self.source = cell.source
        self.where = cell.where
        self.cell_magic = leading_cell_magic(cell.source)
        # A leading %%time / %%timeit: nbflow runs the body itself, in the task's namespace.
        self.python = transform_ipython(self.cell_magic.body) if self.cell_magic else analysis.python
        # Inputs it changes in place (declared, detected or seen) are outputs too: later
        # tasks read them from this one.
        self.changes = dict(changes or {})
        self.defines = tuple(dict.fromkeys([*analysis.defines, *self.changes]))
        # What the cell says it changes: assigned names and --mutates; anything else is reported.
        self.declared = frozenset([*analysis.defines, *cell.options.mutates])
        self.uses = analysis.uses
        self.undeclared_mutations: tuple[str, ...] = ()
        self.cell_id = cell.cell_id
        self.setup = setup
        self.parameter_names = frozenset(parameter_names)
        self.hidden: tuple[str, ...] = ()
        self.filename = f"<nbflow task {name}>"
        # Blank lines before the code so a traceback's line numbers are the cell's own
        # (the %%task line is line 1; a leading %%time line is one more).
        self.line_offset = cell.first_line - 1 + (1 if self.cell_magic else 0)
        self._compiled: tuple[Any, Any] | None = None
        if cell.options.map:
            unread = [n for n in cell.options.map if n not in self.uses]
            if unread:
                raise NotebookError(
                    f"{cell.where}: --map {unread[0]} names a variable the cell does not read; "
                    f"map over one of: {', '.join(self.uses) or '(it reads none)'}"
                )
            self.map_keys = frozenset(cell.options.map)

    @property
    def kind(self) -> str:
        """``cell``."""
        return "cell"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_compiled"] = None  # code objects are rebuilt where the task runs
        return state

    def compiled(self) -> tuple[Any, Any]:
        """The cell compiled once per process: its body, and its last bare expression if any."""
        if self._compiled is None:
            python = "\n" * self.line_offset + self.python
            _register_source(self.filename, python)
            self._compiled = _compile_cell(self.filename, python)
        return self._compiled

    def run(self, **inputs: Any) -> CellOutputs:
        """Run the cell in a fresh namespace (setup, parameters, inputs); its outputs."""
        namespace = self.setup.namespace()
        namespace.update(inputs)
        prepare_namespace(namespace)
        draws = may_draw(self.python, inputs)
        watch = InputWatch(inputs)
        with capture_displays() as displays, pyplot_turn(draws):
            try:
                value = self._execute(namespace)
                shown = show(value)
            finally:
                if draws:  # its figures are shown, then closed: none leak into the next task
                    flush_figures()
        # Changed in place and not declared: said every time, until the cell declares it.
        mutated = [n for n in watch.changed(inputs) if n not in self.declared]
        report(self.slug or self.name, mutated, self.where)
        outputs = {n: namespace[n] for n in self.defines if n in namespace}
        result = CellOutputs(outputs, value, figures=displays.figures(), mutated=mutated)
        result.shown = shown and displays.live
        return result

    def _execute(self, namespace: dict[str, Any]) -> Any:
        """The cell's code; the value of its last bare expression."""
        magic = self.cell_magic
        if magic is not None and magic.magic == "timeit":
            time_it(magic, self.python, namespace)
            return None
        body, last = self.compiled()

        def run() -> Any:
            run_code(body, namespace)
            return run_code(last, namespace) if last is not None else None

        return timed(run) if magic is not None else run()

    def collect_inputs(self, incoming: Iterable[tuple[str | None, str, State]]) -> dict[str, Any]:
        """The names this cell reads, from its upstream tasks' outputs and the parameters."""
        inputs: dict[str, Any] = {}
        for key, slug, state in incoming:
            if key is None:
                continue
            if slug in self.parameter_names:
                inputs[key] = state.result
            elif isinstance(state.result, Mapping) and key in state.result:
                inputs[key] = state.result[key]
            # else: the upstream cell deleted the name; this cell then fails naming it.
        return inputs

    def combine_mapped(self, results: list[Any]) -> CellOutputs:
        """A mapped cell's outputs: each name it defines as the list of its children's values
        (``None`` where a child failed), their figures and changed inputs together."""
        children = [r if isinstance(r, CellOutputs) else CellOutputs({}) for r in results]
        names = [n for n in self.defines if n not in self.map_keys]
        values = {n: [child.get(n) for child in children] for n in names}
        displays = [child.display for child in children]
        combined = CellOutputs(
            values,
            displays if any(d is not None for d in displays) else None,
            figures=[f for child in children for f in child.figures],
            mutated=dict.fromkeys(m for child in children for m in child.mutated),
        )
        combined.shown = any(child.shown for child in children)  # shown under the cell as they ran
        return combined

    def portable_result(self, value: Any) -> tuple[Any, list[str]]:
        """Outputs that pickle; a file handle or a lock a cell defined stays behind, named."""
        if not isinstance(value, CellOutputs):
            return value, []
        import cloudpickle

        kept: dict[str, Any] = {}
        dropped: list[str] = []
        for name, item in value.items():
            if _surely_picklable(item):
                kept[name] = item
                continue
            try:
                cloudpickle.dumps(item)
            except Exception:
                dropped.append(name)
            else:
                kept[name] = item
        if not dropped:
            return value, []
        return CellOutputs(kept, None, figures=value.figures, mutated=value.mutated), dropped

    def residue(self, value: Any) -> Any:
        """The figures and the names changed in place: what headless reports at the end."""
        if isinstance(value, CellOutputs) and (value.figures or value.mutated):
            return CellOutputs({}, figures=value.figures, mutated=value.mutated)
        return None

    def cache_source(self) -> str:
        """Name, setup code and cell source: change any, miss the cache."""
        return f"{self.name}\n{self.setup.source}\n---\n{self.source}"

    def metadata(self) -> dict[str, Any]:
        """What the cell defines, uses and reads from outside the flow."""
        return {"defines": list(self.defines), "uses": list(self.uses), "hidden": list(self.hidden)}


class ShellCommandError(RuntimeError):
    """A shell task's script exited with a non-zero code."""

    pass


class ShellTask(Task):
    """A ``%%task --shell`` cell: a bash script; output lines become logs, exit code != 0 fails."""

    def __init__(self, cell: Cell, name: str) -> None:
        super().__init__(name=name, **cell.options.engine_options())
        self.source = cell.source
        self.cell_id = cell.cell_id

    @property
    def kind(self) -> str:
        """``shell``."""
        return "shell"

    def run(self, **inputs: Any) -> None:  # noqa: ARG002 - shell tasks take no Python inputs
        """Run the script with bash; each output line becomes a log line."""
        env = dict(os.environ)
        for name, value in (context.parameters or {}).items():
            env[name] = value if isinstance(value, str) else json.dumps(value)
        # -e / pipefail: a failing command fails the task, like a CI step.
        proc = subprocess.Popen(
            ["bash", "-e", "-o", "pipefail", "-c", self.source],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            start_new_session=True,  # its own process group: stopping it stops what it started
        )
        readers = [
            threading.Thread(target=contextvars.copy_context().run, args=(_pump, stream, is_err), daemon=True)
            for stream, is_err in ((proc.stdout, False), (proc.stderr, True))
        ]
        for reader in readers:
            reader.start()
        try:
            # Poll in Python so a timeout or interrupt can stop us; then stop the script too.
            while proc.poll() is None:
                time.sleep(0.02)
        except BaseException:
            # A timeout, a cancel or Ctrl-C: the script and every process it started go.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            for reader in readers:
                reader.join(5)
        if proc.returncode != 0:
            raise ShellCommandError(f"shell script exited with code {proc.returncode}")

    def cache_source(self) -> str:
        """Name and script."""
        return f"{self.name}\nshell\n{self.source}"

    def metadata(self) -> dict[str, Any]:
        """Shell tasks read and write no Python names."""
        return {"defines": [], "uses": [], "hidden": []}


def _pump(stream: Any, is_err: bool) -> None:
    import sys

    target = sys.stderr if is_err else sys.stdout
    for line in stream:
        target.write(line if line.endswith("\n") else line + "\n")
