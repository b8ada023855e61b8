"""``FlowWidget``: the live DAG of a flow in the notebook (an anywidget).

The front end is the bundle built from ``labextension/`` (``nbflow/static``).
Two synced traits carry everything the view draws:

``graph``
    The flow's ``structure()``, sent once per structure change.

``states``
    A compact snapshot of the current run, updated while it runs::

        {"run": {"flow_run_id": str, "state": str, "message": str,
                 "started": float, "ended": float} | None,
         "tasks": {slug: {"state": str, "attempt": int, "message": str,
                          "started": float, "ended": float}}}

    Times are epoch seconds rounded to milliseconds. To keep a 10,000-task
    snapshot small, a task entry leaves out ``attempt`` when 0, ``message``
    when empty and ``started``/``ended`` when unknown; ``run`` leaves out the
    same. ``started`` is the task's first Running of the run, ``ended`` its
    finished state. A flow-run ``Running`` event starts a new run: every task
    of the graph goes back to ``Pending``.

The widget is an observer of the engine's ``EventStream`` (``observe``); the
stream calls it from its dispatcher thread. It syncs ``states`` at most about
five times a second (less for very large flows), always followed by a
trailing sync, so the last state arrives and the comm is never flooded.

Messages from the front end: ``run``, ``cancel``, ``rerun_failed`` and
``run_to`` (with ``slug``) go to ``on_action(type, content)``; ``detail``
(with ``slug``) is answered with ``{"type": "detail", "slug", "state",
"message", "attempt", "logs", "inputs", "outputs"}``. ``notify_error`` sends
``{"type": "error", "message"}``, shown as a transient notice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from nbflow.core.record import STATE, record_from_wire
from nbflow.core.runview import RunView
from nbflow.kernel.throttle import Throttle

logger = logging.getLogger("nbflow.widget")

STATIC = Path(__file__).resolve().parent.parent / "static"
ACTIONS = frozenset({"run", "cancel", "rerun_failed", "run_to"})

SYNC_INTERVAL = 0.2
"""Seconds between ``states`` syncs; grows to 1 s for a 10,000-task flow."""
LOG_LINES_PER_TASK = 200

_MISSING_BUNDLE_ESM = """
export default { render({ el }) {
  el.textContent = "nbflow: the widget's front end is not built (nbflow/static/widget.js is missing). "
    + "Reinstall with `pip install -e .` (needs npm) or run `npm run build` in labextension/.";
} };
"""


def _bundle(name: str, fallback: str) -> Path | str:
    # A missing bundle must not make `import nbflow.kernel` fail: show why in the output instead.
    path = STATIC / name
    return path if path.is_file() else fallback


Action = Callable[[str, dict[str, Any]], None]
DetailProvider = Callable[[str], Mapping[str, Any]]


class FlowWidget(anywidget.AnyWidget):
    """The live DAG of a flow: structure, task states, run controls and task details.

    ``on_action(type, content)`` receives the toolbar's ``run`` / ``cancel`` /
    ``rerun_failed`` and the detail panel's ``run_to``; it is called on the
    kernel's comm thread, so a long run should be started in the background
    (a blocking handler keeps ``cancel`` from arriving until the run is over).
    ``detail_provider(slug)`` may add to or override what a task's detail
    shows; by default it comes from the events this widget observed.
    """

    _esm = _bundle("widget.js", _MISSING_BUNDLE_ESM)
    _css = _bundle("widget.css", "")

    graph = traitlets.Dict().tag(sync=True)
    states = traitlets.Dict().tag(sync=True)

    def __init__(
        self,
        structure: Mapping[str, Any] | None = None,
        *,
        on_action: Action | None = None,
        detail_provider: DetailProvider | None = None,
        view: RunView | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._on_action = on_action
        self._detail_provider = detail_provider
        # A notebook session shares its RunView (it folds the records; we only draw them);
        # a widget on its own folds what it observes into a view of its own.
        self._owns_view = view is None
        self._view = view if view is not None else RunView(max_logs=LOG_LINES_PER_TASK)
        self._lock = threading.Lock()  # guards the graph's slugs and the sync version
        self._send_lock = threading.Lock()  # keeps syncs in snapshot order across threads
        self._version = 0
        self._synced_version = 0
        self._slugs: list[str] = []
        self._throttle = Throttle(self._sync, self._sync_interval)
        self.states = self._view.snapshot([])
        if structure is not None:
            self.set_structure(structure)
        self.on_msg(self._on_message)

    # -- feeding -------------------------------------------------------------

    def set_structure(self, structure: Mapping[str, Any] | None) -> None:
        """Show a (new) flow structure; states of tasks it still has are kept."""
        graph = dict(structure or {})
        with self._lock:
            self._slugs = [t["slug"] for t in graph.get("tasks", [])]
        self.graph = graph

    def observe(self, handler: Any, names: Any = traitlets.All, type: str = "change") -> None:
        """An ``EventStream`` observer: ``observe(batch)`` folds a batch of events into the view.

        ``observe(handler, names=...)`` keeps its traitlets meaning, which
        ipywidgets' own helpers (``link``, ``interact``) rely on.
        """
        if callable(handler):
            super().observe(handler, names=names, type=type)
            return
        batch = [record_from_wire(e) if isinstance(e, dict) else e for e in handler]
        if self._owns_view:
            changed = self._view.observe(batch)
        else:
            changed = any(record.kind == STATE for record in batch)
        if changed:
            with self._lock:
                self._version += 1
            self._throttle.request()

    def flush(self) -> None:
        """Sync ``states`` now instead of at the next throttle tick."""
        self._throttle.flush()

    def close(self) -> None:
        """Stop syncing and close the widget."""
        self._throttle.cancel()
        super().close()

    def notify_error(self, message: str) -> None:
        """Show ``message`` as a transient notice in every view of this widget."""
        self.send({"type": "error", "message": str(message)})

    # -- reading -------------------------------------------------------------

    def task_detail(self, slug: str) -> dict[str, Any]:
        """What the detail panel shows for ``slug`` (the ``detail`` message without its ``type``)."""
        detail: dict[str, Any] = {"slug": slug, **self._view.detail(slug, log_lines=LOG_LINES_PER_TASK)}
        task: dict[str, Any] = next((t for t in self.graph.get("tasks", []) if t.get("slug") == slug), {})
        edges = self.graph.get("edges", [])
        detail |= {
            "inputs": list(task.get("uses") or _keys(e for e in edges if e.get("downstream") == slug)),
            "outputs": list(task.get("defines") or _keys(e for e in edges if e.get("upstream") == slug)),
        }
        if self._detail_provider is not None:
            detail.update(self._detail_provider(slug))
        detail["slug"] = slug
        return detail

    def __repr__(self) -> str:
        lock = getattr(self, "_lock", None)
        if lock is None:  # ipywidgets may repr a half-built instance while reporting an error
            return "FlowWidget()"
        # Parameters are the flow's inputs, drawn as nodes but not counted as tasks.
        slugs = [t["slug"] for t in self.graph.get("tasks", []) if t.get("kind") != "parameter"]
        counts = self._view.counts(slugs)
        parts = [f"flow={self.graph.get('name', '')!r}", f"tasks={len(slugs)}"]
        parts += [f"{state}={n}" for state, n in counts.items()]
        return f"FlowWidget({', '.join(parts)})"

    # -- internals -----------------------------------------------------------

    def _sync_interval(self) -> float:
        return max(SYNC_INTERVAL, len(self._slugs) / 10_000)

    def _sync(self) -> None:
        with self._send_lock:
            with self._lock:
                if self._version == self._synced_version:
                    return
                self._synced_version = self._version
                slugs = list(self._slugs)
            self.states = self._view.snapshot(slugs)

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        try:
            if kind == "detail":
                slug = str(content.get("slug", ""))
                self.send({"type": "detail", **self.task_detail(slug)})
            elif kind in ACTIONS:
                if self._on_action is None:
                    self.notify_error(f"{kind!r} is not available: this widget was created without on_action")
                    return
                self._on_action(kind, dict(content))
            else:
                self.notify_error(f"unknown widget message {kind!r}")
        except Exception as exc:  # the kernel must keep serving the widget
            logger.exception("FlowWidget message %r failed", kind)
            self.notify_error(f"{kind} failed: {type(exc).__name__}: {exc}")


def _keys(edges: Iterable[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(e["key"] for e in edges if e.get("key") is not None))
