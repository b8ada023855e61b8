"""A task behaves as a Jupyter cell: magics, ``display``, ``get_ipython()``, top-level ``await``.

Inside a kernel the kernel's own shell serves the tasks. Where no kernel
exists (``nbflow run``, exported modules, agents, Dask workers) each process
gets one ``TaskShell``: a real IPython ``InteractiveShell`` whose GUI hooks do
nothing and whose matplotlib backend is always the inline one, so
``%matplotlib inline``, ``%time``, ``%timeit``, ``%env``, ``!cmd`` and
``display`` all work as in Jupyter.

What a task displays belongs to that task: the shell's display publisher is
wrapped once so that, while a task runs, its displays are recorded in the
task's ``TaskDisplays`` (a context variable, so parallel tasks on threads keep
theirs apart). A *live* task (a ``%%task`` cell run in the kernel) still shows
them under its cell; any other task writes their text to its log, and its
figures travel with its result (see ``cells/figures.py``).
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import inspect
import os
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from IPython.core.interactiveshell import InteractiveShell

if TYPE_CHECKING:
    from collections.abc import Iterator

INLINE_BACKEND = "module://matplotlib_inline.backend_inline"

_lock = threading.Lock()
_displays: contextvars.ContextVar[TaskDisplays | None] = contextvars.ContextVar(
    "nbflow_task_displays", default=None
)
_live: contextvars.ContextVar[bool] = contextvars.ContextVar("nbflow_live_displays", default=False)


class TaskShell(InteractiveShell):
    """The IPython shell of a process without a kernel: no GUI, no terminal, no history."""

    def init_sys_modules(self) -> None:
        # Like an embedded shell: the process keeps its own __main__ (pickling, multiprocessing).
        return None

    def enable_gui(self, gui: str | None = None) -> None:
        """No event loop to integrate with: figures are captured per task instead."""
        del gui

    def enable_matplotlib(self, gui: str | None = None) -> tuple[Any, Any]:
        """Every backend is the inline one here: there is no screen, and figures belong to tasks."""
        del gui
        from IPython.core.pylabtools import select_figure_formats
        from matplotlib_inline.backend_inline import InlineBackend

        selected = super().enable_matplotlib("inline")
        # matplotlib_inline registers the PNG formatter for the first shell of a process only.
        config = InlineBackend.instance(parent=self)
        select_figure_formats(self, config.figure_formats, **config.print_figure_kwargs)
        return selected


@dataclass
class TaskDisplays:
    """Everything one task run displayed, as Jupyter display data (mime type -> value)."""

    live: bool = False
    outputs: list[dict[str, Any]] = field(default_factory=list)

    def figures(self) -> list[bytes]:
        """The PNG images the task displayed (its matplotlib figures among them), in order."""
        images = []
        for data in self.outputs:
            png = data.get("image/png")
            if isinstance(png, str):
                png = base64.b64decode(png)
            if isinstance(png, bytes | bytearray):
                images.append(bytes(png))
        return images


def task_shell() -> InteractiveShell:
    """The shell tasks of this process run under: the kernel's, else this process's ``TaskShell``."""
    shell = InteractiveShell.instance() if InteractiveShell.initialized() else None
    if shell is None:
        with _lock:
            if not InteractiveShell.initialized():
                from traitlets.config import Config

                if "matplotlib" not in sys.modules:
                    # As in a kernel: pyplot starts on the inline backend (before anything imports it).
                    os.environ.setdefault("MPLBACKEND", INLINE_BACKEND)
                config = Config()
                config.HistoryManager.enabled = False
                # InteractiveShell.clear_instance() (a test, an embedding) leaves ours stale: start anew.
                TaskShell._instance = None
                TaskShell.instance(config=config)
            shell = InteractiveShell.instance()
    if not getattr(shell.display_pub, "_nbflow_wrapped", False):
        with _lock:  # two tasks starting at once must not wrap it twice
            _wrap_publisher(shell)
    return shell


def _no_gui(gui: str | None = None) -> None:
    del gui  # no GUI event loop where tasks run


def _wrap_publisher(shell: InteractiveShell) -> None:
    publisher = shell.display_pub
    if getattr(publisher, "_nbflow_wrapped", False):
        return
    if type(shell).enable_gui is InteractiveShell.enable_gui:
        # A bare InteractiveShell (embedded, or a test's) raises on `%matplotlib inline`: no GUI here.
        shell.enable_gui = _no_gui  # type: ignore[method-assign]

    original = publisher.publish

    def publish(
        data: dict[str, Any], metadata: dict[str, Any] | None = None, *args: Any, **kwargs: Any
    ) -> Any:
        displays = _displays.get()
        if displays is None:
            return original(data, metadata, *args, **kwargs)
        displays.outputs.append(dict(data))
        if displays.live:
            return original(data, metadata, *args, **kwargs)
        if "text/plain" in data and "image/png" not in data:
            print(data["text/plain"])  # the task's output capture makes it a log line
        return None

    publisher.publish = publish  # type: ignore[method-assign]
    publisher._nbflow_wrapped = True  # type: ignore[attr-defined]


@contextmanager
def live_displays() -> Iterator[None]:
    """Tasks run inside this block show their displays under the current cell (a ``%%task`` run)."""
    token = _live.set(True)
    try:
        yield
    finally:
        _live.reset(token)


@contextmanager
def capture_displays() -> Iterator[TaskDisplays]:
    """Record what the code run inside this block displays."""
    displays = TaskDisplays(live=_live.get())
    token = _displays.set(displays)
    try:
        yield displays
    finally:
        _displays.reset(token)


def show(value: Any) -> bool:
    """Display ``value`` the way a cell shows its last expression: under a live cell through
    the shell's display hook (before the task's figures, as in Jupyter), elsewhere as a
    display of the task. True when it was shown."""
    displays = _displays.get()
    if value is None or displays is None:
        return False
    shell = task_shell()
    if displays.live:
        shell.displayhook(value)
        return True
    if shell.display_formatter is None:
        return False
    data, metadata = shell.display_formatter.format(value)
    shell.display_pub.publish(data=data, metadata=metadata)
    return True


def prepare_namespace(namespace: dict[str, Any]) -> None:
    """``get_ipython`` and ``display`` in a task's namespace, as in a Jupyter cell."""
    from IPython.display import display

    shell = task_shell()
    namespace.setdefault("get_ipython", lambda: shell)
    namespace.setdefault("display", display)


def run_code(code: Any, namespace: dict[str, Any]) -> Any:
    """Run compiled cell code (``exec`` or ``eval`` mode); top-level ``await`` included."""
    result = eval(code, namespace)
    if code.co_flags & inspect.CO_COROUTINE:
        result = run_coroutine(result)
    return result


def run_coroutine(coroutine: Any) -> Any:
    """Run a cell's top-level ``await`` to completion, also when this thread runs an event loop
    (a kernel does): then on a helper thread with a loop of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    box: dict[str, Any] = {}
    context = contextvars.copy_context()

    def target() -> None:
        try:
            box["value"] = context.run(asyncio.run, coroutine)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the task's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="nbflow-await", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")
