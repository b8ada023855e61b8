"""Flow: the tasks, the edges between them, parameters and an optional schedule."""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nbflow.core.errors import CycleError, GraphError, UnknownTaskError
from nbflow.core.tasks import Edge, Parameter, StateHandler, Task, active_flow

if TYPE_CHECKING:
    import contextvars

    from nbflow.core.events import Event, EventStream
    from nbflow.core.executors import Executor
    from nbflow.core.schedules import Schedule
    from nbflow.core.states import State

LogHandler = Callable[["Event"], Any]


class Flow:
    """A DAG of tasks. Build it with ``with Flow(name):`` or ``add_task``/``add_edge``."""

    def __init__(
        self,
        name: str,
        *,
        tasks: Iterable[Task] = (),
        edges: Iterable[Edge] = (),
        schedule: Schedule | None = None,
        state_handlers: Sequence[StateHandler] = (),
        log_handlers: Sequence[LogHandler] = (),
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise GraphError("a flow needs a non-empty name, e.g. Flow('etl')")
        self.name = name
        self.schedule = schedule
        self.state_handlers = list(state_handlers)
        self.log_handlers = list(log_handlers)
        # Each task maps to its position in the order of adding (the topological tie-break);
        # ``_order`` is the reverse.
        self._tasks: dict[Task, int] = {}
        self._order: list[Task] = []
        self._by_slug: dict[str, Task] = {}
        # Edges as columns of plain numbers: edge ``n`` runs from the task at position
        # ``_ups[n]`` to the one at ``_downs[n]`` and feeds input ``_keys[n]``. Numbers and
        # strings are not objects the garbage collector follows, and no object is kept per
        # edge: an ``Edge`` kept per edge doubled the objects each collection walks while
        # a large flow is built (a third of the build time). ``Edge`` objects are made
        # when asked for.
        self._ups: list[int] = []
        self._downs: list[int] = []
        self._keys: list[str | None] = []
        # The edges into each task that has more than one, by what makes an edge unique
        # there: (its position, input key) for an edge that feeds an input, (its position,
        # the upstream's position) for one that only orders. A task's first edge needs no
        # look-up (most tasks have one), so only tasks with several are indexed.
        self._inputs: dict[tuple[int, str | int], int] = {}
        # A task's edges by number: the one number, or a list once it has several.
        self._upstream: dict[Task, int | list[int]] = {}
        self._downstream: dict[Task, int | list[int]] = {}
        # True while every edge runs from an earlier-added task to a later one: then the
        # order of adding is a topological order and sorting is a copy.
        self._added_in_order = True
        self._sorted: list[Task] | None = None
        # Each task's edges (upstream, downstream) as made on first asking: a run asks a few
        # times per task; adding an edge forgets them.
        self._views: tuple[dict[Task, Sequence[Edge]], dict[Task, Sequence[Edge]]] | None = None
        self.constants: dict[Task, dict[str, Any]] = {}
        self._token: contextvars.Token | None = None
        for t in tasks:
            self.add_task(t)
        for edge in edges:
            self.add_edge(edge.upstream, edge.downstream, key=edge.key)

    # -- context manager -----------------------------------------------------

    def __enter__(self) -> Flow:
        self._token = active_flow.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            active_flow.reset(self._token)
            self._token = None

    # -- building --------------------------------------------------------------

    @property
    def tasks(self) -> list[Task]:
        """The tasks in the order they were added."""
        return list(self._tasks)

    @property
    def edges(self) -> list[Edge]:
        """Every edge, in the order it was added."""
        return [self._edge(n) for n in range(len(self._keys))]

    def __contains__(self, task: object) -> bool:
        return task in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def add_task(self, task: Task) -> Task:
        """Add ``task`` (once) and give it a unique slug; returns it."""
        if not isinstance(task, Task):
            raise GraphError(f"flow {self.name!r}: add_task expects a Task, got {task!r}")
        tasks = self._tasks
        if task in tasks:
            return task
        by_slug = self._by_slug
        name = task.name
        # Most names are slugs already: that is checked here rather than in a call per task.
        slug = task.slug or (name if name.isascii() and name.isidentifier() else _slugify(name))
        if slug in by_slug:
            if isinstance(task, Parameter):
                raise GraphError(f"flow {self.name!r} already has a parameter or task named {task.name!r}")
            base, n = slug, 2
            while f"{base}-{n}" in by_slug:
                n += 1
            slug = f"{base}-{n}"
        task.slug = slug
        by_slug[slug] = task
        tasks[task] = len(tasks)
        self._order.append(task)
        self._sorted = None
        return task

    def add_edge(self, upstream: Task, downstream: Task, key: str | None = None) -> Edge:
        """``upstream`` must finish before ``downstream``; ``key`` names the input it feeds."""
        tasks = self._tasks
        up_at = tasks.get(upstream)
        if up_at is None:
            up_at = tasks[self.add_task(upstream)]
        down_at = tasks.get(downstream)
        if down_at is None:
            down_at = tasks[self.add_task(downstream)]
        if upstream is downstream:
            raise CycleError(
                f"flow {self.name!r}: task {upstream.slug!r} cannot depend on itself",
                cycle=[upstream.slug or "", upstream.slug or ""],
            )
        keys = self._keys
        number = len(keys)
        upstream_of = self._upstream
        feeding = upstream_of.get(downstream)
        if feeding is None:  # its first edge in: nothing to compare it with
            upstream_of[downstream] = number
        else:
            same = self._check_input(up_at, down_at, key, feeding, number)
            if same is not None:
                return self._edge(same)  # already in the flow
            _attach(upstream_of, downstream, feeding, number)
        self._ups.append(up_at)
        self._downs.append(down_at)
        keys.append(key)
        downstream_of = self._downstream
        leaving = downstream_of.get(upstream)
        if leaving is None:
            downstream_of[upstream] = number
        elif isinstance(leaving, list):  # inline: a fan-out's root gets here once per edge
            leaving.append(number)
        else:
            downstream_of[upstream] = [leaving, number]
        if up_at > down_at:
            self._added_in_order = False
        self._sorted = self._views = None
        return _new_edge(Edge, (upstream, downstream, key))

    def _check_input(
        self, up_at: int, down_at: int, key: str | None, feeding: int | list[int], number: int
    ) -> int | None:
        """A new edge ``number`` into a task that has edges in (``feeding``): the number of
        the same edge if the flow has it; a ``GraphError`` if another task feeds that input.
        Indexes the new edge (and, on the second edge in, the first)."""
        inputs, ups, keys = self._inputs, self._ups, self._keys
        if not isinstance(feeding, list):  # the task's second edge in: index its first
            first_key = keys[feeding]
            inputs[(down_at, ups[feeding] if first_key is None else first_key)] = feeding
        slot = (down_at, up_at if key is None else key)
        held = inputs.get(slot)
        if held is not None:
            if ups[held] == up_at:
                return held
            raise GraphError(
                f"flow {self.name!r}: input {key!r} of task {self._order[down_at].slug!r} is already "
                f"fed by {self._order[ups[held]].slug!r}; an input takes one upstream task"
            )
        inputs[slot] = number
        return None

    def set_dependencies(
        self,
        task: Task,
        upstream_tasks: Iterable[Task] = (),
        keyword_tasks: Mapping[str, Task] | None = None,
    ) -> None:
        """Add ``task`` with upstream tasks (order only) and keyword tasks (inputs)."""
        self.add_task(task)
        for upstream in upstream_tasks:
            self.add_edge(upstream, task)
        for key, upstream in (keyword_tasks or {}).items():
            self.add_edge(upstream, task, key=key)

    def set_constant(self, task: Task, key: str, value: Any) -> None:
        """Bind a plain value to one of ``task``'s inputs."""
        self.constants.setdefault(task, {})[key] = value

    # -- reading -----------------------------------------------------------------

    def get_task(self, name: str) -> Task:
        """A task by slug, or by name when that name is unambiguous."""
        if name in self._by_slug:
            return self._by_slug[name]
        matches = [t for t in self._tasks if t.name == name]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(self._by_slug) or "(no tasks)"
        if matches:
            slugs = ", ".join(t.slug or "" for t in matches)
            raise UnknownTaskError(f"flow {self.name!r}: {name!r} names several tasks ({slugs}); use a slug")
        raise UnknownTaskError(f"flow {self.name!r} has no task {name!r}; its tasks: {known}")

    def upstream_edges(self, task: Task) -> Sequence[Edge]:
        """The edges into ``task``."""
        return self._view(task, 0)

    def downstream_edges(self, task: Task) -> Sequence[Edge]:
        """The edges out of ``task``."""
        return self._view(task, 1)

    def _view(self, task: Task, side: int) -> Sequence[Edge]:
        views = self._views
        if views is None:
            views = self._views = ({}, {})
        edges = views[side].get(task)
        if edges is None:
            held = (self._upstream, self._downstream)[side]
            edges = views[side][task] = self._edges_of(held.get(task))
        return edges

    def _edges_of(self, numbers: int | list[int] | None) -> tuple[Edge, ...]:
        """The edges a task holds by number (none, one, or a list)."""
        if numbers is None:
            return _NO_EDGES
        if isinstance(numbers, list):
            return tuple([self._edge(n) for n in numbers])
        return (self._edge(numbers),)

    def _edge(self, n: int) -> Edge:
        order = self._order
        return _new_edge(Edge, (order[self._ups[n]], order[self._downs[n]], self._keys[n]))

    def upstream_tasks(self, task: Task) -> list[Task]:
        """The tasks ``task`` waits for, once each."""
        return list(dict.fromkeys(e.upstream for e in self.upstream_edges(task)))

    def downstream_tasks(self, task: Task) -> list[Task]:
        """The tasks that wait for ``task``, once each."""
        return list(dict.fromkeys(e.downstream for e in self.downstream_edges(task)))

    def parameters(self) -> list[Parameter]:
        """The flow's parameters (its inputs)."""
        return [t for t in self._tasks if isinstance(t, Parameter)]

    def root_tasks(self) -> list[Task]:
        """Tasks with no upstream task."""
        return [t for t in self._tasks if t not in self._upstream]

    def terminal_tasks(self) -> list[Task]:
        """Tasks nothing waits for."""
        return [t for t in self._tasks if t not in self._downstream]

    def ancestors(self, targets: Iterable[Task]) -> set[Task]:
        """The targets and every task they (transitively) depend on."""
        return _reachable(targets, lambda task: (e.upstream for e in self.upstream_edges(task)))

    def descendants(self, sources: Iterable[Task]) -> set[Task]:
        """The sources and every task that (transitively) depends on them."""
        return _reachable(sources, lambda task: (e.downstream for e in self.downstream_edges(task)))

    def sorted_tasks(self) -> list[Task]:
        """Topological order; ties keep the order tasks were added. Raises ``CycleError``.
        Kept until the flow changes (runs and validation ask for it again and again)."""
        if self._sorted is None:
            self._sorted = self._sort()
        return list(self._sorted)

    def _sort(self) -> list[Task]:
        if self._added_in_order:  # added upstream first (the usual way): that is the order
            return list(self._tasks)
        index, order_list, ups, downs = self._tasks, self._order, self._ups, self._downs
        upstream, downstream = self._upstream, self._downstream
        indegree = dict.fromkeys(self._tasks, 0)
        for t, numbers in upstream.items():
            indegree[t] = len({ups[n] for n in numbers}) if isinstance(numbers, list) else 1
        heap = [index[t] for t, d in indegree.items() if d == 0]
        heapq.heapify(heap)
        out: list[Task] = []
        while heap:
            task = order_list[heapq.heappop(heap)]
            out.append(task)
            leaving = downstream.get(task)
            if leaving is None:
                continue
            for down in (
                dict.fromkeys(order_list[downs[n]] for n in leaving)
                if isinstance(leaving, list)
                else (order_list[downs[leaving]],)
            ):
                indegree[down] -= 1
                if indegree[down] == 0:
                    heapq.heappush(heap, index[down])
        if len(out) != len(self._tasks):
            cycle = self._find_cycle({t for t, d in indegree.items() if d > 0})
            path = " -> ".join(cycle)
            raise CycleError(
                f"flow {self.name!r} has a cycle: {path}; remove one of these dependencies",
                cycle=cycle,
            )
        return out

    def _find_cycle(self, remaining: set[Task]) -> list[str]:
        start = next(t for t in self._tasks if t in remaining)
        path: list[Task] = []
        on_path: dict[Task, int] = {}
        task = start
        # Every remaining task has an upstream that is also remaining: walk until we repeat.
        while task not in on_path:
            on_path[task] = len(path)
            path.append(task)
            task = next(e.upstream for e in self.upstream_edges(task) if e.upstream in remaining)
        loop = path[on_path[task] :]
        loop.reverse()  # report in execution direction: upstream -> downstream
        names = [t.slug or t.name for t in loop]
        return [*names, names[0]]

    def validate(self) -> None:
        """Raise a ``GraphError`` (e.g. ``CycleError`` naming the cycle) if the flow cannot run.
        Every edge's tasks are in the flow by construction (``add_edge`` adds them), so
        what is left to check is that the tasks can be ordered."""
        self.sorted_tasks()

    def structure(self) -> dict[str, Any]:
        """The JSON-able description the widget and the server receive (no code, no data)."""
        ordered = self.sorted_tasks()
        tasks = []
        for position, t in enumerate(ordered):
            entry: dict[str, Any] = {
                "slug": t.slug,
                "name": t.name,
                "kind": t.kind,
                "order": position,
                "options": t.options(),
                "upstream": [u.slug for u in self.upstream_tasks(t)],
            }
            entry.update(getattr(t, "metadata", dict)())
            tasks.append(entry)
        return {
            "name": self.name,
            "tasks": tasks,
            "edges": [
                {"upstream": e.upstream.slug, "downstream": e.downstream.slug, "key": e.key}
                for e in self.edges
            ],
            "parameters": [
                {"name": p.name, "default": p.default, "required": p.required} for p in self.parameters()
            ],
            "schedule": self.schedule.to_dict() if self.schedule is not None else None,
        }

    # -- running -------------------------------------------------------------

    def run(
        self,
        parameters: Mapping[str, Any] | None = None,
        *,
        executor: str | Executor = "local",
        run_on_schedule: bool | None = None,
        runs: int | None = 1,
        cache: bool = True,
        targets: Iterable[Task | str] | None = None,
        initial_states: Mapping[Task, State] | None = None,
        stream: EventStream | None = None,
        echo: bool = True,
        results: str | None = None,
    ) -> State:
        """Run the flow here and return the flow-run state.

        ``state.result`` maps each task to its final state. With a schedule (and
        ``run_on_schedule`` not False) this waits for the next scheduled time first:
        the local convenience scheduler; ``runs`` scheduled runs happen (``None``: forever).
        ``targets`` runs only those tasks and their upstream; ``initial_states``
        reuses finished states of an earlier run instead of running those tasks.
        ``results``: a result store's URL (a folder, ``s3://...``): every task run's result
        is written there and its state's ``result_ref`` names it (``nbflow.core.results``).
        """
        from nbflow.core.runner import FlowRunner, run_on_schedule_loop

        runner_kwargs: dict[str, Any] = {
            "parameters": parameters,
            "executor": executor,
            "cache": cache,
            "targets": targets,
            "initial_states": initial_states,
            "stream": stream,
            "echo": echo,
            "results": results,
        }
        if self.schedule is not None and run_on_schedule is not False:
            return run_on_schedule_loop(self, runs=runs, **runner_kwargs)
        return FlowRunner(self, **runner_kwargs).run()

    def __repr__(self) -> str:
        return f"<Flow {self.name!r}: {len(self._tasks)} tasks>"


_NO_EDGES: tuple[Edge, ...] = ()


def _attach(held: dict[Any, int | list[int]], owner: Any, current: int | list[int], number: int) -> None:
    """Add edge ``number`` to ``owner``'s entry in ``held``, which is ``current`` (one or more)."""
    if isinstance(current, list):
        current.append(number)
    else:
        held[owner] = [current, number]


# Makes an Edge in C: the named tuple's own ``__new__`` is a Python function, and an edge
# is made for every edge added and every edge a run reads.
_new_edge = tuple.__new__


_SLUG_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


def _slugify(name: str) -> str:
    if name.isascii() and name.isidentifier():  # already a slug (most names): no regex
        return name
    return _SLUG_BAD.sub("-", name).strip("-") or "task"


def _reachable(start: Iterable[Task], neighbours: Callable[[Task], Iterable[Task]]) -> set[Task]:
    """``start`` and every task reached from it by following ``neighbours``."""
    seen: set[Task] = set()
    stack = list(start)
    while stack:
        task = stack.pop()
        if task in seen:
            continue
        seen.add(task)
        stack.extend(neighbours(task))
    return seen
