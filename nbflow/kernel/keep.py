"""What a flow run in the kernel keeps of its results: what the notebook's variables will hold.

A notebook run top to bottom frees a value when a later cell rebinds its name
(``df = clean(df)``). A run in the kernel does the same: once nothing in the run
reads a task's outputs, they go if every name among them has been rebound by a
later task that succeeded. Anything else stays to the end, when the outputs are
written back into the kernel (so a failed rebinding leaves the earlier value, as
a plain run would).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from nbflow.core.states import State
    from nbflow.core.tasks import Task


class NamespaceKeeper:
    """``keep(task)`` for the run's plan: True while the notebook would still hold its outputs."""

    def __init__(self, order: Sequence[Task], states: Mapping[Task, State]) -> None:
        self.states = states
        self.rebinders: dict[Task, dict[str, list[Task]]] = {}
        writers: dict[str, list[Task]] = {}
        for task in reversed(order):
            names = _defines(task)
            if names:
                self.rebinders[task] = {name: list(writers.get(name, ())) for name in names}
            for name in names:
                writers.setdefault(name, []).append(task)

    def __call__(self, task: Task) -> bool:
        names = self.rebinders.get(task)
        if not names:
            return True  # a parameter, or a task that binds no name: its result is small
        return not all(
            any(self._succeeded(later) for later in later_writers) for later_writers in names.values()
        )

    def _succeeded(self, task: Task) -> bool:
        state = self.states.get(task)
        return state is not None and state.is_successful()


def _defines(task: Task) -> tuple[str, ...]:
    if task.kind == "parameter":
        return ()
    return tuple(getattr(task, "defines", ()))
