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
        self._tasks: dict[Task, None] = {}
        self._by_slug: dict[str, Task] = {}
        self._edges: dict[Edge, None] = {}
        self._upstream: dict[Task, list[Edge]] = {}
        self._downstream: dict[Task, list[Edge]] = {}
        self._sorted: list[Task] | None = None
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
        return list(self._edges)

    def __contains__(self, task: object) -> bool:
        return task in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def add_task(self, task: Task) -> Task:
        """Add ``task`` (once) and give it a unique slug; returns it."""
        if not isinstance(task, Task):
            raise GraphError(f"flow {self.name!r}: add_task expects a Task, got {task!r}")
        if task in self._tasks:
            return task
        slug = task.slug or _slugify(task.name)
        if slug in self._by_slug:
            if isinstance(task, Parameter):
                raise GraphError(f"flow {self.name!r} already has a parameter or task named {task.name!r}")
            base, n = slug, 2
            while f"{base}-{n}" in self._by_slug:
                n += 1
            slug = f"{base}-{n}"
        task.slug = slug
        self._by_slug[slug] = task
        self._tasks[task] = None
        self._sorted = None
        return task

    def add_edge(self, upstream: Task, downstream: Task, key: str | None = None) -> Edge:
        """``upstream`` must finish before ``downstream``; ``key`` names the input it feeds."""
        tasks = self._tasks
        if upstream not in tasks:
            self.add_task(upstream)
        if downstream not in tasks:
            self.add_task(downstream)
        if upstream is downstream:
            raise CycleError(
                f"flow {self.name!r}: task {upstream.slug!r} cannot depend on itself",
                cycle=[upstream.slug or "", upstream.slug or ""],
            )
        feeding = self._upstream.get(downstream)
        if key is not None and feeding:
            for edge in feeding:
                if edge.key == key and edge.upstream is not upstream:
                    raise GraphError(
                        f"flow {self.name!r}: input {key!r} of task {downstream.slug!r} is already "
                        f"fed by {edge.upstream.slug!r}; an input takes one upstream task"
                    )
        edge = Edge(upstream, downstream, key)
        edges = self._edges
        count = len(edges)
        edges[edge] = None
        if len(edges) != count:  # new: one hash instead of a lookup and an insert
            # Edge lists are made on first use: most tasks of a large flow have one or none.
            if feeding is None:
                self._upstream[downstream] = [edge]
            else:
                feeding.append(edge)
            self._downstream.setdefault(upstream, []).append(edge)
            self._sorted = None
        return edge

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
        return self._upstream.get(task, _NO_EDGES)

    def downstream_edges(self, task: Task) -> Sequence[Edge]:
        """The edges out of ``task``."""
        return self._downstream.get(task, _NO_EDGES)

    def upstream_tasks(self, task: Task) -> list[Task]:
        """The tasks ``task`` waits for, once each."""
        return list(dict.fromkeys(e.upstream for e in self._upstream.get(task, _NO_EDGES)))

    def downstream_tasks(self, task: Task) -> list[Task]:
        """The tasks that wait for ``task``, once each."""
        return list(dict.fromkeys(e.downstream for e in self._downstream.get(task, _NO_EDGES)))

    def parameters(self) -> list[Parameter]:
        """The flow's parameters (its inputs)."""
        return [t for t in self._tasks if isinstance(t, Parameter)]

    def root_tasks(self) -> list[Task]:
        """Tasks with no upstream task."""
        return [t for t in self._tasks if not self._upstream.get(t)]

    def terminal_tasks(self) -> list[Task]:
        """Tasks nothing waits for."""
        return [t for t in self._tasks if not self._downstream.get(t)]

    def ancestors(self, targets: Iterable[Task]) -> set[Task]:
        """The targets and every task they (transitively) depend on."""
        return _reachable(targets, lambda task: (e.upstream for e in self._upstream.get(task, _NO_EDGES)))

    def descendants(self, sources: Iterable[Task]) -> set[Task]:
        """The sources and every task that (transitively) depends on them."""
        return _reachable(sources, lambda task: (e.downstream for e in self._downstream.get(task, _NO_EDGES)))

    def sorted_tasks(self) -> list[Task]:
        """Topological order; ties keep the order tasks were added. Raises ``CycleError``.
        Kept until the flow changes (runs and validation ask for it again and again)."""
        if self._sorted is None:
            self._sorted = self._sort()
        return list(self._sorted)

    def _sort(self) -> list[Task]:
        index = {t: i for i, t in enumerate(self._tasks)}
        if all(index[e.upstream] < index[e.downstream] for e in self._edges):
            # Added upstream first (the usual way): the order of adding is the order.
            return list(self._tasks)
        upstream, downstream = self._upstream, self._downstream
        indegree = dict.fromkeys(self._tasks, 0)
        for t, edges in upstream.items():
            indegree[t] = 1 if len(edges) == 1 else len({e.upstream for e in edges})
        heap = [index[t] for t, d in indegree.items() if d == 0]
        heapq.heapify(heap)
        order_list = list(self._tasks)
        out: list[Task] = []
        while heap:
            task = order_list[heapq.heappop(heap)]
            out.append(task)
            edges = downstream.get(task)
            if not edges:
                continue
            for down in (
                (edges[0].downstream,) if len(edges) == 1 else dict.fromkeys(e.downstream for e in edges)
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
            task = next(e.upstream for e in self._upstream.get(task, _NO_EDGES) if e.upstream in remaining)
        loop = path[on_path[task] :]
        loop.reverse()  # report in execution direction: upstream -> downstream
        names = [t.slug or t.name for t in loop]
        return [*names, names[0]]

    def validate(self) -> None:
        """Raise a ``GraphError`` (e.g. ``CycleError`` naming the cycle) if the flow cannot run."""
        for edge in self._edges:
            for t in (edge.upstream, edge.downstream):
                if t not in self._tasks:
                    raise UnknownTaskError(f"flow {self.name!r}: edge refers to task {t!r} not in the flow")
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
                for e in self._edges
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
