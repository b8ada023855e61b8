"""The agent: pulls due runs from the server and runs each in a subprocess, on this machine.

Communication always starts here (long-poll, heartbeats, reports); the server
never connects to the agent. A run is claimed with a versioned transition
(Scheduled -> Submitted at the version the queue showed), so two agents never
run the same run. A crashing flow takes only its own subprocess down; the
subprocess dies with the agent, so a killed agent leaves no orphan behind and
the server's recovery service sees the heartbeats stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbflow.agent.reporter import make_sender
from nbflow.agent.spool import Spool, spool_dir
from nbflow.agent.storage import load_code
from nbflow.core.errors import ClientError, StorageError, TransportError
from nbflow.core.settings import nbflow_home

if TYPE_CHECKING:
    from pathlib import Path

    from nbflow.client_ops import FlowRunInfo

logger = logging.getLogger("nbflow.agent")
CANCEL_KILL_AFTER = 10.0


def _die_with_parent() -> None:
    # Linux: the flow subprocess gets SIGKILL when the agent dies (even by kill -9).
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class ActiveRun:
    run: FlowRunInfo
    proc: asyncio.subprocess.Process
    log_path: Path
    started: float = field(default_factory=time.monotonic)
    cancel_sent: float | None = None


class Agent:
    def __init__(
        self,
        server: str | None = None,
        key: str | None = None,
        *,
        labels: list[str] | tuple[str, ...] = (),
        concurrency: int = 4,
        executor: str = "threads",
        dask_address: str | None = None,
        name: str | None = None,
        poll_wait: float = 5.0,
        heartbeat_interval: float = 5.0,
        out: Any = None,
    ) -> None:
        from nbflow.client import AsyncClient, Client

        self.client = AsyncClient(server, key, retries=1)
        self.sync_client = Client(server, key, retries=1)
        self.labels = sorted(set(labels))
        self.concurrency = max(1, concurrency)
        self.executor = executor
        self.dask_address = dask_address
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.poll_wait = poll_wait
        self.heartbeat_interval = heartbeat_interval
        self.active: dict[str, ActiveRun] = {}
        self.agent_id: str | None = None
        self.out = out or sys.stdout
        self.log_dir = nbflow_home() / "agent" / "logs"
        self.finished = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._heartbeat_failing = False

    def say(self, message: str) -> None:
        self.out.write(f"{time.strftime('%H:%M:%S')} agent {self.name}: {message}\n")
        self.out.flush()

    # -- main loop --------------------------------------------------------------------

    async def run(self, *, stop: asyncio.Event | None = None, max_runs: int | None = None) -> None:
        stop = stop or asyncio.Event()
        await self._register()
        self.say(
            f"polling {self.client.url} for runs with labels {self.labels or '(none)'}; up to {self.concurrency} at once"
        )
        heartbeats = asyncio.create_task(self._heartbeat_loop(stop))
        spools = asyncio.create_task(self._spool_loop(stop))
        try:
            while not stop.is_set():
                if max_runs is not None and self.finished >= max_runs and not self.active:
                    break
                if len(self.active) >= self.concurrency or (
                    max_runs is not None and self.finished + len(self.active) >= max_runs
                ):
                    await asyncio.sleep(0.05)
                    continue
                try:
                    await self.run_once(wait=self.poll_wait)
                except TransportError as exc:
                    self.say(f"server unreachable ({exc}); retrying")
                    await asyncio.sleep(2)
        finally:
            stop.set()
            heartbeats.cancel()
            spools.cancel()
            for task in (heartbeats, spools):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._stop_all()
            await self.client.aclose()
            self.sync_client.close()

    async def _register(self) -> None:
        while True:
            try:
                self.agent_id = await self.client.register_agent(self.name, self.labels)
                return
            except TransportError as exc:
                self.say(f"waiting for the server ({exc})")
                await asyncio.sleep(2)

    async def run_once(self, *, wait: float = 0.0) -> list[str]:
        """Pull due runs once (waiting up to ``wait`` s for one), claim them and start them."""
        free = self.concurrency - len(self.active)
        if free <= 0:
            return []
        started = []
        for run in await self.client.get_runs_in_queue(self.labels, limit=free, wait=wait):
            if await self._claim_and_start(run):
                started.append(run.id)
        return started

    async def _claim_and_start(self, run: FlowRunInfo) -> bool:
        (claim,) = await self.client.set_flow_run_states(
            [{"flowRunId": run.id, "version": run.version, "state": "Submitted", "agentId": self.agent_id,
              "message": f"claimed by agent {self.name}"}]
        )  # fmt: skip
        if not claim.ok:
            return False  # another agent was faster
        version = claim.version
        storage = run.storage or {}
        try:
            await asyncio.to_thread(load_code, storage)
        except StorageError as exc:
            self.say(f"run {run.id}: refusing to start: {exc}")
            await self.client.set_flow_run_states(
                [{"flowRunId": run.id, "version": version, "state": "Failed", "message": str(exc)}]
            )
            self.finished += 1
            return False
        spec = {
            "flow_run_id": run.id,
            "version": version,
            "agent_id": self.agent_id,
            "server": self.client.url,
            "key": self.client.key,
            "storage": storage,
            "parameters": run.parameters,
            "scheduled_start_time": run.scheduled_start_time.isoformat(),
            "executor": self.executor,
            "dask_address": self.dask_address,
        }
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{run.id}.log"
        with log_path.open("ab") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "nbflow.agent.flowprocess",
                env={**os.environ, "NBFLOW_FLOW_RUN": json.dumps(spec), "PYTHONUNBUFFERED": "1"},
                stdout=log, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )  # fmt: skip
        self.active[run.id] = ActiveRun(run, proc, log_path)
        self.say(
            f"started run {run.id} of flow {run.flow_name!r} (version {run.flow_version}), pid {proc.pid}"
        )
        task = asyncio.create_task(self._reap(run.id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _reap(self, run_id: str) -> None:
        active = self.active[run_id]
        code = await active.proc.wait()
        self.active.pop(run_id, None)
        self.finished += 1
        if code in (0, 3):
            self.say(f"run {run_id} finished (flow process exit {code})")
            return
        if code == 4:
            self.say(f"run {run_id}: not started here, another agent has it now")
            Spool(run_id).remove()
            return
        # A crash: whatever it spooled goes first, then the failure with its reason.
        spool = Spool(run_id)
        with contextlib.suppress(ClientError):
            await asyncio.to_thread(spool.deliver, make_sender(self.sync_client))
        reason = f"the flow process exited with code {code}"
        if code < 0:
            reason = f"the flow process was killed by signal {-code}"
        with contextlib.suppress(ClientError):
            (current,) = await self.client.heartbeat([run_id], self.agent_id)
            if current.state not in ("Success", "Failed", "Cancelled", "TimedOut", "TriggerFailed"):
                target = "Cancelled" if current.state == "Cancelling" else "Failed"
                await self.client.set_flow_run_states(
                    [
                        {
                            "flowRunId": run_id,
                            "version": current.version,
                            "state": target,
                            "message": f"{reason}; see {active.log_path}",
                        }
                    ]
                )
        self.say(f"run {run_id}: {reason}")

    # -- heartbeats, cancellation, leftover spools ------------------------------------------

    async def _heartbeat_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.heartbeat_interval)
            if not self.active:
                with contextlib.suppress(ClientError):
                    await self.client.heartbeat([], self.agent_id)
                continue
            try:
                runs = await self.client.heartbeat(list(self.active), self.agent_id)
            except ClientError as exc:
                if not self._heartbeat_failing:
                    self.say(f"heartbeats failing: {exc}")
                self._heartbeat_failing = True
                continue
            if self._heartbeat_failing:
                self.say("heartbeats delivered again")
                self._heartbeat_failing = False
            for run in runs:
                active = self.active.get(run.id)
                if active is None:
                    continue
                # Cancelled by a user, or given up on by the server (it may run elsewhere now): stop.
                if (
                    run.state in ("Cancelling", "Cancelled", "Scheduled", "Failed")
                    and active.cancel_sent is None
                ):
                    self.say(f"run {run.id} is {run.state} on the server: stopping its flow process")
                    active.cancel_sent = time.monotonic()
                    with contextlib.suppress(ProcessLookupError):
                        active.proc.send_signal(signal.SIGTERM)
            for active in list(self.active.values()):
                if active.cancel_sent and time.monotonic() - active.cancel_sent > CANCEL_KILL_AFTER:
                    with contextlib.suppress(ProcessLookupError):
                        active.proc.kill()

    async def _spool_loop(self, stop: asyncio.Event) -> None:
        """Deliver spools that flow processes left behind (the server was down when they ended)."""
        while not stop.is_set():
            await asyncio.sleep(2)
            for path in sorted(spool_dir().glob("*.jsonl")) if spool_dir().exists() else []:
                run_id = path.stem
                if run_id in self.active:
                    continue
                spool = Spool(run_id)
                try:
                    await asyncio.to_thread(spool.deliver, make_sender(self.sync_client))
                except ClientError:
                    break  # still unreachable: try again later
                if spool.done():
                    spool.remove()

    async def _stop_all(self) -> None:
        for active in self.active.values():
            with contextlib.suppress(ProcessLookupError):
                active.proc.send_signal(signal.SIGTERM)
        for run_id in list(self.active):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.active[run_id].proc.wait(), CANCEL_KILL_AFTER)
