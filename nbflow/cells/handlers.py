"""State handlers named in cells: ``%%task --on-failure NAME`` and ``%flow on failed NAME``.

A handler is a function a ``%%setup`` cell defines; the cell only names it, so
the same notebook runs it in the kernel, headless, from an exported module and
on an agent (each builds its flow through ``NotebookFlow.build``). It is looked
up when it fires, in the setup namespace of the run it fires for (the one the
run's tasks see), and called as ``handler(task_or_flow, old_state, new_state)``
with ``nbflow.context`` set to the run. A handler that fails is logged on the
``nbflow.handlers`` logger; it never changes the run.

Events: ``failed`` (Failed, TriggerFailed, TimedOut), ``success`` (Success,
Cached, Skipped), ``finished`` (any final state), ``state`` (every change), or
one state's name (``TimedOut``, ``cancelled``, ...).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Protocol

from nbflow.core.errors import NotebookError
from nbflow.core.states import FAILED_TYPES, FINISHED_TYPES, SUCCESSFUL_TYPES, StateType

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from nbflow.core.states import State

logger = logging.getLogger("nbflow.handlers")

_GROUPS: dict[str, frozenset[StateType] | None] = {
    "failed": FAILED_TYPES,
    "failure": FAILED_TYPES,
    "success": SUCCESSFUL_TYPES,
    "finished": FINISHED_TYPES,
    "state": None,  # every change
    "any": None,
}
_BY_NAME = {s.value.lower(): s for s in StateType}
EVENTS_HELP = "failed|success|finished|state|<state name>"
#: A ``%flow on EVENT NAME`` line in any code cell (headless runs read it without running it).
_FLOW_ON = re.compile(r"^\s*%flow\s+on\s+(\S+)\s+(\S+)\s*$", re.MULTILINE)


class NamespaceSource(Protocol):
    """Where a handler is looked up: ``SetupCode`` (a run's setup namespace) or the kernel."""

    def namespace(self) -> Mapping[str, Any]:
        """The names the handler may be defined in."""
        ...


class MappingSource:
    """A namespace that is already there: the kernel's, for a ``%%task`` cell run on its own."""

    def __init__(self, names: Mapping[str, Any]) -> None:
        self.names = names

    def namespace(self) -> Mapping[str, Any]:
        """The mapping itself."""
        return self.names


def event_states(event: str, *, where: str = "handler") -> frozenset[StateType] | None:
    """The states an event fires on (``None``: every state); ``NotebookError`` for an unknown event."""
    key = event.strip().lower()
    if key in _GROUPS:
        return _GROUPS[key]
    state = _BY_NAME.get(key)
    if state is None:
        raise NotebookError(f"{where}: unknown event {event!r}; use {EVENTS_HELP}")
    return frozenset({state})


def check_handler_name(name: str, *, where: str) -> str:
    """``name`` if it can name a function; a ``NotebookError`` otherwise."""
    if not name.isidentifier():
        raise NotebookError(f"{where}: handler {name!r} is not a function name")
    return name


class SetupHandler:
    """A named handler, looked up in ``source`` when its event fires. Picklable with its source."""

    def __init__(self, event: str, name: str, source: NamespaceSource, *, owner: str) -> None:
        self.event = event
        self.name = name
        self.states = event_states(event, where=owner)
        self.source = source
        self.owner = owner  # "task 'load'" or "flow 'etl'": how a failure names it

    def wants(self, new: State) -> bool:
        """True when ``new`` is a state this handler's event fires on."""
        return self.states is None or new.type in self.states

    def __call__(self, obj: Any, old: State | None, new: State) -> None:
        if not self.wants(new):
            return
        try:
            function = self.source.namespace().get(self.name)
            if not callable(function):
                raise NotebookError(f"no %%setup cell defines a function {self.name!r}")
            function(obj, old, new)
        except Exception:
            logger.exception(
                "nbflow: handler %r (on %s of %s) failed when it became %s",
                self.name,
                self.event,
                self.owner,
                new.type.value,
            )

    def __repr__(self) -> str:
        return f"<handler {self.name} on {self.event} of {self.owner}>"


def handlers_for(
    pairs: Iterable[tuple[str, str]], source: NamespaceSource, *, owner: str
) -> list[SetupHandler]:
    """One ``SetupHandler`` per (event, name) pair."""
    return [SetupHandler(event, name, source, owner=owner) for event, name in pairs]


def check_defined(pairs: Iterable[tuple[str, str]], defined: Iterable[str], *, where: str) -> None:
    """Every named handler must be a name a ``%%setup`` cell defines (checked before a run)."""
    known = set(defined)
    for event, name in pairs:
        if name not in known:
            raise NotebookError(
                f"{where}: the {event} handler {name!r} is not defined by any %%setup cell; "
                f"define `def {name}(obj, old_state, new_state): ...` in a %%setup cell"
            )


def flow_handler_lines(source: str, *, where: str) -> list[tuple[str, str]]:
    """The ``%flow on EVENT NAME`` lines of a code cell, as (event, name), checked."""
    found = []
    for match in _FLOW_ON.finditer(source):
        event, name = match.group(1), match.group(2)
        event_states(event, where=where)
        found.append((event.lower(), check_handler_name(name, where=where)))
    return found
