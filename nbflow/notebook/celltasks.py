"""Engine tasks made from cells: Python cells, shell cells, and the shared setup code.

A cell task runs its code in a fresh namespace holding the setup namespace,
the parameters and its inputs; its outputs are the names it defines. The
value of a last bare expression is kept as ``outputs.display`` so a single
cell run can show it under the cell like Jupyter does.
"""

from __future__ import annotations

import ast
import contextvars
import hashlib
import json
import linecache
import os
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from nbflow.core.context import context
from nbflow.core.errors import RunError
from nbflow.core.tasks import Task

if TYPE_CHECKING:
    from nbflow.core.states import State
    from nbflow.notebook.cells import Cell


class CellOutputs(dict):  # type: ignore[type-arg]
    """The names a cell defined, plus the value of its last bare expression."""

    def __init__(self, values: Mapping[str, Any], display: Any = None) -> None:
        super().__init__(values)
        self.display = display

    def __reduce__(self) -> tuple[Any, ...]:
        # The displayed value only matters in the process that shows it.
        return (CellOutputs, (dict(self),))


def _register_source(filename: str, source: str) -> None:
    # Lets tracebacks show the cell's lines, in the kernel and in worker processes.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)


def _shell_for() -> Any:
    """``get_ipython()`` for transformed ``!cmd`` / ``%magic`` lines outside a kernel."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        from IPython.core.interactiveshell import InteractiveShell

        shell = InteractiveShell.instance()
    return shell


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
        namespace: dict[str, Any] = {"__name__": "__nbflow_setup__"}
        if not self.source:
            return namespace
        filename = f"<nbflow setup {self.sha}>"
        _register_source(filename, self.source)
        from nbflow.notebook.analysis import transform_ipython

        python = transform_ipython(self.source)
        if "get_ipython" in python:
            namespace["get_ipython"] = _shell_for
        try:
            exec(compile(python, filename, "exec"), namespace)
        except Exception as exc:
            raise RunError(f"the %%setup cells failed: {type(exc).__name__}: {exc}") from exc
        return namespace


EMPTY_SETUP = SetupCode()


class CellTask(Task):
    """A ``%%task`` cell as an engine task."""

    def __init__(
        self, cell: Cell, name: str, *, setup: SetupCode, parameter_names: Iterable[str] = ()
    ) -> None:
        super().__init__(name=name, **cell.options.engine_options())  # type: ignore[arg-type]
        analysis = cell.analysis
        self.source = cell.source
        self.python = analysis.python
        self.defines = analysis.defines
        self.uses = analysis.uses
        self.cell_id = cell.cell_id
        self.setup = setup
        self.parameter_names = frozenset(parameter_names)
        self.hidden: tuple[str, ...] = ()
        self.filename = f"<nbflow task {name}>"
        self._compiled: tuple[Any, Any] | None = None

    @property
    def kind(self) -> str:
        return "cell"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_compiled"] = None  # code objects are rebuilt where the task runs
        return state

    def compiled(self) -> tuple[Any, Any]:
        if self._compiled is None:
            _register_source(self.filename, self.python)
            module = ast.parse(self.python)
            last = None
            # A trailing bare expression is shown like Jupyter shows it, unless it ends with ';'.
            if (
                module.body
                and isinstance(module.body[-1], ast.Expr)
                and not self.python.rstrip().endswith(";")
            ):
                last = ast.Expression(module.body.pop().value)
            body = compile(module, self.filename, "exec")
            self._compiled = (body, compile(last, self.filename, "eval") if last is not None else None)
        return self._compiled

    def run(self, **inputs: Any) -> CellOutputs:
        namespace = self.setup.namespace()
        namespace.update(inputs)
        if "get_ipython" in self.python and "get_ipython" not in namespace:
            namespace["get_ipython"] = _shell_for
        body, last = self.compiled()
        exec(body, namespace)
        display = eval(last, namespace) if last is not None else None
        return CellOutputs({n: namespace[n] for n in self.defines if n in namespace}, display)

    def collect_inputs(self, incoming: Iterable[tuple[str | None, str, State]]) -> dict[str, Any]:
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

    def portable_result(self, value: Any) -> tuple[Any, list[str]]:
        """Outputs that pickle; a file handle or a lock a cell defined stays behind, named."""
        if not isinstance(value, CellOutputs):
            return value, []
        import cloudpickle

        kept: dict[str, Any] = {}
        dropped: list[str] = []
        for name, item in value.items():
            try:
                cloudpickle.dumps(item)
            except Exception:
                dropped.append(name)
            else:
                kept[name] = item
        if not dropped:
            return value, []
        return CellOutputs(kept, None), dropped

    def cache_source(self) -> str:
        return f"{self.name}\n{self.setup.source}\n---\n{self.source}"

    def metadata(self) -> dict[str, Any]:
        return {"defines": list(self.defines), "uses": list(self.uses), "hidden": list(self.hidden)}


class ShellCommandError(RuntimeError):
    pass


class ShellTask(Task):
    """A ``%%task --shell`` cell: a bash script; output lines become logs, exit code != 0 fails."""

    def __init__(self, cell: Cell, name: str) -> None:
        super().__init__(name=name, **cell.options.engine_options())  # type: ignore[arg-type]
        self.source = cell.source
        self.cell_id = cell.cell_id

    @property
    def kind(self) -> str:
        return "shell"

    def run(self, **inputs: Any) -> None:  # noqa: ARG002 - shell tasks take no Python inputs
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
            proc.kill()
            proc.wait()
            raise
        finally:
            for reader in readers:
                reader.join(5)
        if proc.returncode != 0:
            raise ShellCommandError(f"shell script exited with code {proc.returncode}")

    def cache_source(self) -> str:
        return f"{self.name}\nshell\n{self.source}"

    def metadata(self) -> dict[str, Any]:
        return {"defines": [], "uses": [], "hidden": []}


def _pump(stream: Any, is_err: bool) -> None:
    import sys

    target = sys.stderr if is_err else sys.stdout
    for line in stream:
        target.write(line if line.endswith("\n") else line + "\n")
