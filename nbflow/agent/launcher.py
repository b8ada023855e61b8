"""How the agent starts a flow process: forked from a warm parent, or a fresh interpreter.

Warm (the default where the platform can fork): multiprocessing's fork server
imports nbflow (the flow process, the cell runtime, IPython) once; each run is a
child forked from it, so it starts in milliseconds instead of half a second.
Every run still has a process of its own: its memory, globals, working directory
and a crash stay in it, and the next run is forked from the same clean parent,
which never runs flow code. Cold (``--cold-start``, or where fork is unavailable):
``python -m nbflow.agent.flowprocess``, a fresh interpreter per run.

Either way the agent holds a ``FlowProcessHandle`` (pid, ``wait``,
``send_signal``, ``kill``), and the flow process dies with the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import select
import signal
import sys
import threading
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pathlib import Path

PRELOAD = ["nbflow.agent.warm"]
"""What the fork server imports once, for every run it forks."""


class FlowProcessHandle(Protocol):
    """A started flow process, as the agent follows and stops it."""

    pid: int

    async def wait(self) -> int:
        """Its exit code once it ends (negative: the signal that ended it)."""
        ...

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` (``ProcessLookupError`` once it is gone)."""
        ...

    def kill(self) -> None:
        """SIGKILL."""
        ...


def die_with_parent() -> None:
    """Linux: this process gets SIGKILL when its parent dies (even by ``kill -9``)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def warm_available() -> bool:
    """True where runs can be forked from a warm parent."""
    return "forkserver" in multiprocessing.get_all_start_methods()


class ColdLauncher:
    """A fresh ``python -m nbflow.agent.flowprocess`` per run."""

    name = "cold"

    async def start(self, spec_path: Path, log_path: Path) -> FlowProcessHandle:
        """Start the flow process of the run ``spec_path`` describes; output to ``log_path``."""
        with log_path.open("ab") as log:
            return await asyncio.create_subprocess_exec(
                sys.executable, "-m", "nbflow.agent.flowprocess",
                env={**os.environ, "NBFLOW_FLOW_RUN_FILE": str(spec_path), "PYTHONUNBUFFERED": "1"},
                stdout=log, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL,
                preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
            )  # fmt: skip

    def close(self) -> None:
        """Nothing to stop."""


class WarmLauncher:
    """Runs forked from multiprocessing's fork server, which has nbflow imported."""

    name = "warm"

    def __init__(self) -> None:
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(PRELOAD)

    def warm_up(self) -> None:
        """Start the fork server now (it imports for ~0.3 s), not at the first run."""
        from multiprocessing import forkserver

        forkserver.ensure_running()

    async def start(self, spec_path: Path, log_path: Path) -> FlowProcessHandle:
        """Fork the flow process of the run ``spec_path`` describes; output to ``log_path``."""
        process = self.context.Process(
            target=run_forked, args=(str(spec_path), str(log_path)), name="nbflow-flow", daemon=False
        )
        await asyncio.to_thread(process.start)
        return _ForkedProcess(process)

    def close(self) -> None:
        """The fork server ends with the agent's process (it watches it)."""


class _ForkedProcess:
    """A forked flow process behind the ``FlowProcessHandle`` the agent uses."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self.process = process
        self.pid = process.pid or 0

    async def wait(self) -> int:
        loop = asyncio.get_running_loop()
        ended = loop.create_future()
        sentinel = self.process.sentinel
        loop.add_reader(sentinel, lambda: ended.done() or ended.set_result(None))
        try:
            await ended
        finally:
            loop.remove_reader(sentinel)
        self.process.join()
        code = self.process.exitcode
        self.process.close()
        return code if code is not None else -signal.SIGKILL

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def die_with_agent() -> None:
    """A forked flow process's parent is the fork server, which outlives the agent while any
    child runs: watch the pipe from the agent instead (it reads end-of-file once the agent is
    gone, however it died) and go with it."""
    agent = multiprocessing.parent_process()
    if agent is None:
        return
    sentinel = agent.sentinel

    def watch() -> None:
        select.select([sentinel], [], [])
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="nbflow-agent-watch", daemon=True).start()


def run_forked(spec_path: str, log_path: str) -> None:
    """The forked child: output to the run's log, then the flow process (its exit code)."""
    die_with_agent()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    from nbflow.agent.flowprocess import run_spec_file

    try:
        code = run_spec_file(spec_path)
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    sys.exit(code)


def launcher_for(cold: bool) -> ColdLauncher | WarmLauncher:
    """Warm unless asked for cold starts (or the platform cannot fork)."""
    return ColdLauncher() if cold or not warm_available() else WarmLauncher()
