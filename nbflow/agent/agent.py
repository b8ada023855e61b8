"""The agent: pulls due runs from the server and runs each in a process of its own, on this machine.

Communication always starts here (long-poll, heartbeats, reports); the server
never connects to the agent. A run is claimed with a versioned transition
(Scheduled -> Submitted at the version the queue showed), so two agents never
run the same run. A crashing flow takes only its own flow process down (forked
from a warm parent, see ``launcher``); flow processes die with the agent, so a
killed agent leaves no orphan behind and the server's recovery service sees the
heartbeats stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbflow.agent.launcher import FlowProcessHandle, WarmLauncher, launcher_for
from nbflow.agent.reporter import make_sender
from nbflow.agent.spool import Spool, left_behind
from nbflow.core.errors import APIError, ClientError, StorageError, TransportError, asks_again
from nbflow.core.files import atomic_write
from nbflow.core.record import StateRecord, new_id
from nbflow.core.results import default_results_url
from nbflow.core.settings import nbflow_home
from nbflow.core.states import FINISHED_TYPES, StateType
from nbflow.storage.code import load_code
from nbflow.storage.code import storage_roots as storage_roots_for

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from nbflow.client_ops import FlowRunInfo

logger = logging.getLogger("nbflow.agent")
S = StateType
# Server states of a run this agent is running that mean: stop its flow process.
NOT_OURS_ANY_MORE = frozenset({S.CANCELLING, S.CANCELLED, S.SCHEDULED, S.FAILED})
CANCEL_KILL_AFTER = 10.0


@dataclass
class ActiveRun:
    """A run this agent is running: its flow process, log, and the execution it claimed."""

    run: FlowRunInfo
    proc: FlowProcessHandle
    log_path: Path
    execution: int
    started: float = field(default_factory=time.monotonic)
    cancel_sent: float | None = None
    superseded: bool = False
    """The server gave the run to a newer execution (or back to the queue): this one only stops."""


class Agent:
    """Pulls due runs for its labels, runs each in a flow process, heartbeats, stops cancelled runs."""

    def __init__(
        self,
        server: str | None = None,
        key: str | None = None,
        *,
        labels: list[str] | tuple[str, ...] = (),
        concurrency: int = 4,
        executor: str = "local",
        dask_address: str | None = None,
        name: str | None = None,
        poll_wait: float = 5.0,
        heartbeat_interval: float = 5.0,
        private: bool = False,
        storage_roots: Sequence[str] = (),
        cold_start: bool = False,
        out: Any = None,
    ) -> None:
        from nbflow.client import AsyncClient, Client

        self.client = AsyncClient(server, key, retries=1)
        self.sync_client = Client(server, key, retries=1)
        self.labels = sorted(set(labels))
        self.private = private
        self.storage_roots = storage_roots_for(storage_roots)
        self.concurrency = max(1, concurrency)
        self.executor = executor
        self.dask_address = dask_address
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.poll_wait = poll_wait
        self.launcher = launcher_for(cold_start)
        self.heartbeat_interval = heartbeat_interval
        self.active: dict[str, ActiveRun] = {}
        # Flow processes of superseded executions, still stopping (their run may be active again).
        self.stopping: list[ActiveRun] = []
        self.agent_id: str | None = None
        self.out = out or sys.stdout
        self.log_dir = nbflow_home() / "agent" / "logs"
        self.finished = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._heartbeat_failing = False

    def _change(self, run_id: str, current: str, new: StateType, message: str) -> dict[str, Any]:
        """A flow-run state change the agent makes (claim, refusal, crash), in wire form."""
        return StateRecord(
            flow_run_id=run_id,
            state=new.value,
            transition_id=new_id(),
            timestamp=time.time(),
            previous=current,
            message=message,
        ).to_wire()

    def say(self, message: str) -> None:
        """Print one line of the agent's log."""
        self.out.write(f"{time.strftime('%H:%M:%S')} agent {self.name}: {message}\n")
        self.out.flush()

    # -- main loop --------------------------------------------------------------------

    async def run(self, *, stop: asyncio.Event | None = None, max_runs: int | None = None) -> None:
        """Poll and run until ``stop`` is set (or ``max_runs`` runs finished)."""
        stop = stop or asyncio.Event()
        await self._register()
        if isinstance(self.launcher, WarmLauncher):
            await asyncio.to_thread(self.launcher.warm_up)
        self.say(
            f"polling {self.client.url} for runs with labels {self.labels or '(none)'}; up to {self.concurrency} "
            f"at once; flow processes start {self.launcher.name}"
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
                except APIError as exc:
                    # A database outage, or a failure of the server's own (no code): it passes,
                    # and the runs this agent has keep running meanwhile. A refusal with a code
                    # (a bad label, a revoked key) is for the person who started the agent.
                    if not (asks_again(exc) or exc.code is None):
                        raise
                    self.say(f"the server could not take the poll ({exc}); retrying")
                    await asyncio.sleep(2)
        finally:
            stop.set()
            heartbeats.cancel()
            spools.cancel()
            for task in (heartbeats, spools):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._stop_all()
            await self._finish_reapers()
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
            except APIError as exc:
                if not asks_again(exc):
                    raise
                self.say(f"waiting for the server's database ({exc})")
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
        claim_change = self._change(run.id, run.state, S.SUBMITTED, f"claimed by agent {self.name}")
        (claim,) = await self.client.set_flow_run_states(
            [{**claim_change, "version": run.version, "agent_id": self.agent_id}]
        )
        if not claim.ok:
            return False  # another agent was faster
        try:
            await self._start(run, claim.version, claim.run_token or "")
        except Exception as exc:  # one bad run (code, parameters, storage) never takes the agent down
            reason = str(exc) if isinstance(exc, StorageError) else f"{type(exc).__name__}: {exc}"
            self.say(f"run {run.id}: refusing to start: {reason}")
            failed = self._change(
                run.id, S.SUBMITTED.value, S.FAILED, f"the agent could not start it: {reason}"
            )
            with contextlib.suppress(ClientError):
                await self.client.set_flow_run_states([{**failed, "version": claim.version}])
            self.finished += 1
            return False
        return True

    async def _start(self, run: FlowRunInfo, execution: int, token: str) -> None:
        """Check the code, write the run's spec file (0600) and start its flow process."""
        storage = run.storage or {}
        await asyncio.to_thread(load_code, storage, self.storage_roots)
        spec = {
            "flow_run_id": run.id,
            "version": execution,
            "server": self.client.url,
            # The flow process reports with a token for this run alone, never the agent's key.
            "key": token,
            "storage": storage,
            "storage_roots": [str(root) for root in self.storage_roots],
            "parameters": run.parameters,
            "context": run.context,
            "scheduled_start_time": run.scheduled_start_time.isoformat(),
            "executor": self.executor,
            "dask_address": self.dask_address,
            # Private: log lines and failure details stay in this agent's run log, not the server.
            "private": self.private or run.private,
            # Every task run's result goes here (registered with the code, else this agent's home).
            "results": storage.get("results") or default_results_url(),
            "restart_of": run.restart_of,
        }
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{run.id}.log"
        # Parameters can be large: they go by file (the process deletes it), not in the environment.
        spec_path = self.log_dir / f"{run.id}.spec.json"
        atomic_write(spec_path, json.dumps(spec).encode())
        proc = await self.launcher.start(spec_path, log_path)
        older = self.active.pop(run.id, None)
        if older is not None:  # this agent claimed the run again while its old process stops
            older.superseded = True
            self.stopping.append(older)
        self.active[run.id] = active = ActiveRun(run, proc, log_path, execution)
        self.say(
            f"started run {run.id} of flow {run.flow_name!r} (version {run.flow_version}), pid {proc.pid}"
        )
        task = asyncio.create_task(self._reap(active))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reap(self, active: ActiveRun) -> None:
        run_id = active.run.id
        code = await active.proc.wait()
        if self.active.get(run_id) is active:
            del self.active[run_id]
        else:
            self.stopping.remove(active)
        self.finished += 1
        if code in (0, 3):
            self.say(f"run {run_id} finished (flow process exit {code})")
            return
        if code == 4 or active.superseded:
            # Whatever this execution said now would overwrite the one that has the run.
            if code == 4:
                self.say(f"run {run_id}: not started here, another agent has it now")
            else:
                self.say(f"run {run_id}: stopped here, the server gave it to a newer execution")
            Spool(run_id, active.execution).remove()
            return
        # A crash: whatever it spooled goes first, then the failure with its reason.
        spool = Spool(run_id, active.execution)
        if spool.hold():  # its flow process is gone, so only another agent could hold it
            try:
                with contextlib.suppress(ClientError):
                    await asyncio.to_thread(spool.deliver, make_sender(self.sync_client))
            finally:
                spool.release()
        reason = f"the flow process exited with code {code}"
        if code < 0:
            reason = f"the flow process was killed by signal {-code}"
        with contextlib.suppress(ClientError):
            (current,) = await self.client.heartbeat([run_id], self.agent_id)
            if current.execution == active.execution and StateType(current.state) not in FINISHED_TYPES:
                target = S.CANCELLED if current.state == S.CANCELLING.value else S.FAILED
                change = self._change(run_id, current.state, target, f"{reason}; see {active.log_path}")
                await self.client.set_flow_run_states([{**change, "version": current.version}])
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
                # Cancelled by a user, given up on by the server, or run by a newer execution: stop.
                not_ours = StateType(run.state) in NOT_OURS_ANY_MORE or run.execution != active.execution
                if not_ours and active.cancel_sent is None:
                    self.say(f"run {run.id} is {run.state} on the server: stopping its flow process")
                    active.cancel_sent = time.monotonic()
                    active.superseded = run.state != S.CANCELLING.value or run.execution != active.execution
                    with contextlib.suppress(ProcessLookupError):
                        active.proc.send_signal(signal.SIGTERM)
            for active in [*self.active.values(), *self.stopping]:
                if active.cancel_sent and time.monotonic() - active.cancel_sent > CANCEL_KILL_AFTER:
                    with contextlib.suppress(ProcessLookupError):
                        active.proc.kill()

    async def _spool_loop(self, stop: asyncio.Event) -> None:
        """Deliver spools that flow processes left behind (the server was down when they ended)."""
        while not stop.is_set():
            await asyncio.sleep(2)
            for spool in left_behind():
                active = self.active.get(spool.flow_run_id)
                if active is not None and active.execution == spool.execution:
                    continue  # its flow process is still delivering it
                if not spool.hold():
                    continue  # a live flow process (perhaps another agent's) is delivering it
                try:
                    await asyncio.to_thread(spool.deliver, make_sender(self.sync_client))
                except ClientError:
                    break  # still unreachable: try again later
                finally:
                    spool.release()
                if spool.done():
                    spool.remove()

    async def _finish_reapers(self) -> None:
        """Let the reapers of stopped processes report before the clients close.

        A reaper still running when the client closes fails with httpx's "client has been
        closed", which asyncio reports as "Task exception was never retrieved".
        """
        reapers = set(self._tasks)  # finished ones leave self._tasks; their exceptions must be read
        if not reapers:
            return
        _, pending = await asyncio.wait(reapers, timeout=CANCEL_KILL_AFTER)
        for task in pending:
            task.cancel()
        for outcome in await asyncio.gather(*reapers, return_exceptions=True):
            if isinstance(outcome, Exception):
                self.say(f"while stopping: {type(outcome).__name__}: {outcome}")

    async def _stop_all(self) -> None:
        for active in [*self.active.values(), *self.stopping]:
            with contextlib.suppress(ProcessLookupError):
                active.proc.send_signal(signal.SIGTERM)
        for active in [*self.active.values(), *self.stopping]:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(active.proc.wait(), CANCEL_KILL_AFTER)
