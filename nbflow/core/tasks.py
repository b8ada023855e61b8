"""Tasks: units of work with retries, timeouts, triggers, caching and handlers.

``@task`` turns a function into a ``Task``. Called inside ``with Flow(...)``
a task does not run: it adds a copy of itself to the flow, wired to the tasks
passed as arguments, and returns that copy (the "bound task") so calls nest::

    with Flow("etl") as flow:
        load(extract(Parameter("n", default=3)))
"""

from __future__ import annotations

import contextvars
import hashlib
import inspect
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict, overload

from nbflow.core import triggers as _triggers
from nbflow.core.errors import GraphError, NbflowError, ParameterError

if TYPE_CHECKING:
    from typing import Unpack

    from nbflow.core.flows import Flow
    from nbflow.core.states import State

StateHandler = Callable[["Task", "State | None", "State"], Any]

# The flow a ``with Flow(...)`` block is building; tasks called inside it bind to it.
active_flow: contextvars.ContextVar[Flow | None] = contextvars.ContextVar("nbflow_active_flow", default=None)


class Edge(NamedTuple):
    """``upstream`` must finish before ``downstream``; ``key`` names the input it feeds.

    A named tuple: hashing and comparing one is done in C, and a large flow makes many."""

    upstream: Task
    downstream: Task
    key: str | None = None


def _seconds(value: float | timedelta | None, *, field: str, task: str) -> float | None:
    if value is None:
        return None
    if type(value) is float and 0.0 <= value < math.inf:  # the common case, checked fast
        return value
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
        raise NbflowError(f"task {task!r}: {field} must be a number of seconds or a timedelta, got {value!r}")
    if seconds < 0:
        raise NbflowError(f"task {task!r}: {field} must not be negative, got {value!r}")
    return float(seconds)


_NO_TAGS: frozenset[str] = frozenset()


class EngineOptions(TypedDict, total=False):
    """The options a task takes besides its function and name (``Task(fn, **options)``,
    ``@task(**options)``, a ``%%task`` cell's ``engine_options()``); an option not given
    keeps its default (see ``Task``)."""

    retries: int
    retry_delay: float | timedelta
    timeout: float | timedelta | None
    trigger: str | _triggers.Trigger | None
    cache_for: float | timedelta | None
    tags: Iterable[str]
    state_handlers: Sequence[StateHandler]
    skip_on_upstream_skip: bool


_OPTION_NAMES = frozenset(EngineOptions.__annotations__)


class Task:
    """A unit of work. Subclasses override ``run``; function tasks wrap ``fn``."""

    #: The inputs a mapped task maps over (set by ``map``); empty for a plain task.
    map_keys: frozenset[str] = frozenset()
    #: A mapped task's children an earlier run finished, index -> result: a restart reuses
    #: them (``core.restart.plan_restart`` sets it; ``core.mapping`` records them Cached).
    reused_children: dict[int, Any] | None = None
    # Options at their defaults are read from the class: a task stores only what differs.
    # A large flow's tasks are mostly default, and every attribute a task holds is one
    # more to set, to keep in memory and for the garbage collector to visit on each pass.
    retries: int = 0
    retry_delay: float = 0.0
    timeout: float | None = None
    trigger: _triggers.Trigger = staticmethod(_triggers.resolve(None))
    cache_for: float | None = None
    tags: frozenset[str] = _NO_TAGS
    state_handlers: tuple[StateHandler, ...] = ()
    skip_on_upstream_skip: bool = True
    #: The task's unique name in its flow (set when it is added to one).
    slug: str | None = None
    _cache_source: str | None = None

    def __init__(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        **options: Unpack[EngineOptions],
    ) -> None:
        # The options come as one mapping rather than as keyword parameters with defaults:
        # Python fills a keyword-only default by a look-up per parameter on every call,
        # which cost a tenth of building a large flow, and most tasks give none.
        self.fn = fn
        self.name = name or getattr(fn, "__name__", None) or type(self).__name__
        if options:
            self._set_options(options)
        if fn is not None:
            self.__doc__ = fn.__doc__
            self.__wrapped__ = fn

    def _set_options(self, options: EngineOptions) -> None:
        """Check the given options and keep those that differ from the class's defaults."""
        unknown = options.keys() - _OPTION_NAMES
        if unknown:
            raise TypeError(
                f"task {self.name!r}: unknown option {min(unknown)!r}; the options are: "
                + ", ".join(EngineOptions.__annotations__)
            )
        retries = options.get("retries", 0)
        if type(retries) is not int or retries != 0:
            if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
                raise NbflowError(f"task {self.name!r}: retries must be a whole number >= 0, got {retries!r}")
            self.retries = retries
        retry_delay = options.get("retry_delay", 0.0)
        if type(retry_delay) is not float or retry_delay != 0.0:
            self.retry_delay = _seconds(retry_delay, field="retry_delay", task=self.name) or 0.0
        timeout = options.get("timeout")
        if timeout is not None:
            seconds = _seconds(timeout, field="timeout", task=self.name)
            if seconds == 0:
                raise NbflowError(f"task {self.name!r}: timeout must be more than 0 seconds")
            self.timeout = seconds
        trigger = options.get("trigger")
        if trigger is not None:
            self.trigger = _triggers.resolve(trigger)
        cache_for = options.get("cache_for")
        if cache_for is not None:
            self.cache_for = _seconds(cache_for, field="cache_for", task=self.name)
        tags = options.get("tags", ())
        if tags:
            self.tags = frozenset(tags)
        state_handlers = options.get("state_handlers", ())
        if state_handlers:
            self.state_handlers = tuple(state_handlers)
        skip_on_upstream_skip = options.get("skip_on_upstream_skip", True)
        if skip_on_upstream_skip is not True:
            self.skip_on_upstream_skip = skip_on_upstream_skip

    # -- running -------------------------------------------------------------

    def run(self, **inputs: Any) -> Any:
        """The task's work: its function called with the inputs (subclasses override this)."""
        if self.fn is None:
            raise NotImplementedError(f"task {self.name!r} has no function; subclasses override run()")
        return self.fn(**inputs)

    def collect_inputs(self, incoming: Iterable[tuple[str | None, str, State]]) -> dict[str, Any]:
        """Keyword inputs from ``(input key, upstream slug, upstream final state)`` triples."""
        return {key: state.result for key, _, state in incoming if key is not None}

    def portable_result(self, value: Any) -> tuple[Any, list[str]]:
        """The result as it can be stored or shipped to another process, and what was left out."""
        return value, []

    def combine_mapped(self, results: list[Any]) -> Any:
        """A mapped task's result from its children's, in order: the list itself here (a cell
        collects each output name into a list)."""
        return results

    def residue(self, value: Any) -> Any:  # noqa: ARG002
        """What a run keeps of this task's result once nothing reads it any more: nothing here;
        a cell keeps its figures and the names it changed in place (headless reports them)."""
        return None

    def has_residue(self) -> bool:
        """True when ``residue`` can keep something (the Dask driver then fetches it)."""
        return type(self).residue is not Task.residue

    def cache_source(self) -> str:
        """The code identity a cached result is tied to: change the code, miss the cache."""
        if self._cache_source is None:
            fn = self.fn
            try:
                source = inspect.getsource(fn) if fn is not None else type(self).__qualname__
            except (OSError, TypeError):
                code = getattr(fn, "__code__", None)
                source = (
                    hashlib.sha256(code.co_code + repr(code.co_consts).encode()).hexdigest()
                    if code is not None
                    else repr(fn)
                )
            self._cache_source = f"{self.name}\n{source}"
        return self._cache_source

    def options(self) -> dict[str, Any]:
        """JSON-able options, as the widget and the server see them."""
        options = {
            "retries": self.retries,
            "retry_delay": self.retry_delay,
            "timeout": self.timeout,
            "trigger": _triggers.trigger_name(self.trigger),
            "cache_for": self.cache_for,
            "tags": sorted(self.tags),
        }
        if self.map_keys:
            options["map"] = sorted(self.map_keys)
        return options

    @property
    def kind(self) -> str:
        """``task`` (``parameter``, ``cell`` and ``shell`` for the other kinds)."""
        return "task"

    # -- building flows --------------------------------------------------------

    def copy(self, **overrides: Any) -> Task:
        """A copy with some attributes changed (a bound task in a flow is a copy)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.__dict__.update(overrides)
        new.slug = None
        new.state_handlers = self.state_handlers
        return new

    def __call__(self, *args: Any, upstream_tasks: Iterable[Task] = (), **kwargs: Any) -> Any:
        flow = active_flow.get()
        if flow is None:
            # Outside a flow a task is just its function, which keeps it testable.
            if self.fn is None:
                raise GraphError(f"task {self.name!r} can only be called inside `with Flow(...)`")
            return self.fn(*args, **kwargs)
        return self._add_to(flow, self.copy(), self._bind_arguments(args, kwargs), upstream_tasks)

    @staticmethod
    def _add_to(
        flow: Flow, bound: Task, arguments: Mapping[str, Any], upstream_tasks: Iterable[Task]
    ) -> Task:
        """Add ``bound`` to ``flow``: task arguments become edges, plain values constants."""
        flow.add_task(bound)
        for key, value in arguments.items():
            if isinstance(value, Task):
                flow.add_edge(value, bound, key=key)
            else:
                flow.set_constant(bound, key, value)
        for upstream in upstream_tasks:
            flow.add_edge(upstream, bound)
        return bound

    def map(self, *args: Any, upstream_tasks: Iterable[Task] = (), **kwargs: Any) -> Any:
        """One run per element of the inputs not wrapped in ``unmapped(...)`` (``nbflow.mapping``).
        Inside ``with Flow(...)`` it adds one mapped task whose result is the list of its
        children's results; outside a flow it calls the function per element."""
        from nbflow.core.mapping import split_arguments

        values, keys = split_arguments(self.name, self._bind_arguments(args, kwargs))
        flow = active_flow.get()
        if flow is None:
            if self.fn is None:
                raise GraphError(f"task {self.name!r} can only be mapped inside `with Flow(...)`")
            count = min((len(values[k]) for k in keys), default=0)
            return [
                self.fn(**{k: (v[i] if k in keys else v) for k, v in values.items()}) for i in range(count)
            ]
        return self._add_to(flow, self.copy(map_keys=keys), values, upstream_tasks)

    def _bind_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.fn is None:
            if args:
                raise GraphError(f"task {self.name!r} takes keyword arguments only")
            return dict(kwargs)
        signature = inspect.signature(self.fn)
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            params = ", ".join(signature.parameters)
            raise GraphError(f"task {self.name!r}({params}): {exc}") from None
        for name, param in signature.parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) and name in bound.arguments:
                raise GraphError(
                    f"task {self.name!r}: *args/**kwargs cannot carry task results; "
                    "give each input its own parameter"
                )
        return dict(bound.arguments)

    def __repr__(self) -> str:
        return f"<Task {self.slug or self.name}>"


_REQUIRED = object()


class Parameter(Task):
    """A flow input whose value a run may override (JSON-typed)."""

    def __init__(self, name: str, default: Any = _REQUIRED, *, required: bool | None = None) -> None:
        super().__init__(name=name)
        if not name.isidentifier():
            raise ParameterError(f"parameter name {name!r} must be a Python identifier")
        self.required = default is _REQUIRED if required is None else required
        self.default = None if default is _REQUIRED else default
        try:
            json.dumps(self.default)
        except (TypeError, ValueError):
            raise ParameterError(
                f"parameter {name!r}: default {self.default!r} is not JSON-serialisable; "
                "use a string, number, boolean, list or dict"
            ) from None
        flow = active_flow.get()
        if flow is not None:
            flow.add_task(self)

    def run(self, **inputs: Any) -> Any:  # noqa: ARG002
        """The run's value of this parameter."""
        from nbflow.core.context import context

        return context.parameters[self.name]

    def cache_source(self) -> str:
        """A parameter's identity is its name."""
        return f"parameter:{self.name}"

    @property
    def kind(self) -> str:
        """``parameter``."""
        return "parameter"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:  # noqa: ARG002
        raise GraphError(f"parameter {self.name!r} is an input, not a function; pass it to a task")

    def __repr__(self) -> str:
        return f"<Parameter {self.name}>"


@overload
def task(fn: Callable[..., Any], /) -> Task:
    """Decorator: ``@task`` or ``@task(retries=2, timeout=30, trigger="any_failed")``."""


@overload
def task(fn: None = None, /, **options: Any) -> Callable[[Callable[..., Any]], Task]:
    """Decorator: ``@task`` or ``@task(retries=2, timeout=30, trigger="any_failed")``."""


def task(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Decorator: ``@task`` or ``@task(retries=2, timeout=30, trigger="any_failed")``."""
    if fn is not None:
        return Task(fn, **options)

    def decorate(f: Callable[..., Any]) -> Task:
        return Task(f, **options)

    return decorate


def parameter_values(
    parameters: Sequence[Parameter | Mapping[str, Any]],
    given: Mapping[str, Any] | None,
    *,
    require_json: bool = False,
) -> dict[str, Any]:
    """Defaults merged with ``given``; unknown or missing names raise ``ParameterError``
    naming the known ones. ``parameters`` are ``Parameter`` tasks, or their registered form
    (``{"name", "default", "required"}``, as the server keeps them): one rule for both.
    ``require_json``: the values must be plain JSON (no NaN), as a server stores them."""
    specs = [
        (p.name, p.default, p.required)
        if isinstance(p, Parameter)
        else (p["name"], p.get("default"), bool(p.get("required")))
        for p in parameters
    ]
    given = dict(given or {})
    known = [name for name, _, _ in specs]
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ParameterError(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"this flow's parameters are: {', '.join(known) or '(none)'}",
            known=known,
        )
    values: dict[str, Any] = {}
    for name, default, required in specs:
        if name in given:
            values[name] = given[name]
        elif required:
            raise ParameterError(
                f"parameter {name!r} is required; pass it, e.g. parameters={{'{name}': ...}}", known=known
            )
        else:
            values[name] = default
    if require_json:
        try:
            json.dumps(values, allow_nan=False)
        except (TypeError, ValueError):
            raise ParameterError(
                "parameter values must be plain JSON: strings, finite numbers, booleans, null, lists or objects"
            ) from None
    return values
