"""The mutation guard: a task that changes one of its inputs in place is noticed and named.

Name-based inference sees ``df = df.dropna()`` and ``df["x"] = 1``, but not
``df.drop(columns="x", inplace=True)`` or ``model.fit(X, y)`` on a model
another cell made. In a top-to-bottom run that does not matter; with tasks
in parallel (threads) a reader of ``df`` may see it half-changed, and on Dask
(copies) a later reader never sees the change at all.

* ``InputWatch`` fingerprints a task's inputs before it runs and compares
  after (``cells/fingerprint.py``: sampled, a few ms per large input).
  A changed input the task does not itself define is reported: a WARNING
  line in the task's log naming the task, the variable and the cell.
* ``Detections`` remembers them: in the kernel session, and on disk under
  ``NBFLOW_HOME/mutations/`` for headless runs, so the next plan treats the
  task as defining the name (an edge) before it runs again.
* ``refuse_parallel`` stops a parallel executor from starting a flow with a
  known in-place mutation the cell does not declare (``%%task --mutates df``).
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import re
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from nbflow.cells.fingerprint import fingerprint, is_watched
from nbflow.core.errors import NotebookError
from nbflow.core.files import atomic_write
from nbflow.core.settings import nbflow_home

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from pathlib import Path

    from nbflow.core.executors import Executor
    from nbflow.core.flows import Flow


_unwatched: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "nbflow_unwatched", default=frozenset()
)


@contextmanager
def unwatched(names: Iterable[str]) -> Iterator[None]:
    """Leave ``names`` out of the guard while the block runs: ``%%setup`` and ``%%params``
    values, which a task run in the kernel gets from the kernel's namespace like its inputs."""
    token = _unwatched.set(frozenset(names))
    try:
        yield
    finally:
        _unwatched.reset(token)


class InputWatch:
    """Fingerprints of a task's inputs, taken before it runs."""

    def __init__(self, inputs: Mapping[str, Any]) -> None:
        skipped = _unwatched.get()
        before = {
            name: fingerprint(value)
            for name, value in inputs.items()
            if name not in skipped and is_watched(value)
        }
        self.before = {name: value for name, value in before.items() if value is not None}

    def changed(self, inputs: Mapping[str, Any]) -> list[str]:
        """The inputs whose fingerprint differs now."""
        return [name for name, before in self.before.items() if fingerprint(inputs[name]) != before]


def mutation_message(task: str, names: Iterable[str], where: str) -> str:
    """The warning for inputs a task changed in place, with what to do about it."""
    listed = ", ".join(repr(n) for n in names)
    declared = ",".join(names)
    return (
        f"task {task!r} ({where}) changed its input {listed} in place; later tasks now read it "
        f"from {task!r}. Declare it on the cell's first line (%%task ... --mutates {declared}) "
        "or assign a new value instead; a parallel executor refuses the flow until it is declared."
    )


def report(task: str, names: list[str], where: str) -> None:
    """A WARNING line in the running task's log (its stderr is captured as WARNING)."""
    if names:
        print(f"nbflow: {mutation_message(task, names, where)}", file=sys.stderr)


class Detections:
    """Inputs tasks were seen to change in place, per task, for the cell code seen doing it
    (an edited cell starts afresh). ``path`` (optional) keeps them across headless runs."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._seen: dict[str, tuple[str, set[str]]] = {}  # task -> (code hash, names)
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_text())
                self._seen = {str(t): (str(e["code"]), {str(n) for n in e["names"]}) for t, e in data.items()}
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                self._seen = {}  # a damaged memory is only a lost hint; the guard finds them again

    @classmethod
    def on_disk(cls, flow_name: str) -> Detections:
        """The detections of headless runs of ``flow_name``, under ``NBFLOW_HOME/mutations``."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", flow_name) or "flow"
        return cls(nbflow_home() / "mutations" / f"{safe}.json")

    def names(self, task: str, code: str) -> set[str]:
        """What ``task`` was seen changing in place, while its cell had this ``code``."""
        seen = self._seen.get(task)
        return set(seen[1]) if seen is not None and seen[0] == _code_hash(code) else set()

    def record(self, task: str, code: str, names: Iterable[str]) -> list[str]:
        """Remember ``names`` for ``task`` running ``code``; the ones that are new."""
        known = self.names(task, code)
        new = [n for n in names if n not in known]
        if not new:
            return []
        self._seen[task] = (_code_hash(code), known | set(new))
        if self.path is not None:
            payload = {t: {"code": h, "names": sorted(n)} for t, (h, n) in sorted(self._seen.items())}
            atomic_write(self.path, json.dumps(payload, indent=1).encode())
        return new


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()[:16]


def refuse_parallel(flow: Flow, executor: Executor) -> None:
    """Raise before a parallel run of a flow with a known, undeclared in-place mutation."""
    if executor.synchronous:
        return
    problems = [(task, names) for task in flow.tasks if (names := getattr(task, "undeclared_mutations", ()))]
    if not problems:
        return
    lines = [
        f"  task {task.slug or task.name!r} ({getattr(task, 'where', 'its cell')}) changes "
        f"{', '.join(repr(n) for n in names)} in place: add --mutates {','.join(names)} to its %%task line"
        for task, names in problems
    ]
    raise NotebookError(
        f"refusing to run flow {flow.name!r} on {executor.name}: tasks change their inputs in place, "
        "which parallel tasks would see half-done (or, on Dask, never):\n"
        + "\n".join(lines)
        + "\nDeclare them as shown, or run sequentially (--executor local, the default)."
    )
