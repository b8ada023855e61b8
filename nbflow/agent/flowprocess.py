"""The flow subprocess the agent starts: load the code, check it, run the flow, report.

    python -m nbflow.agent.flowprocess   (NBFLOW_FLOW_RUN_FILE names the run's spec file)

or forked from the agent's warm fork server (``nbflow.agent.launcher``).

Exit codes: 0 the flow ran (whatever its state) and everything was reported or
spooled; 3 the code could not be loaded (reported as Failed); 4 the run was not
ours to run any more (the claim was lost, nothing ran); anything else is a crash
the agent reports.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
import types
from datetime import datetime
from pathlib import Path
from typing import Any

from nbflow import flowrun
from nbflow.agent.reporter import ServerReporter, make_sender
from nbflow.agent.slots import ServerGate
from nbflow.agent.spool import Spool, SpoolSender
from nbflow.config import resolve as resolve_server
from nbflow.core import secrets
from nbflow.core.errors import NbflowError
from nbflow.core.events import EventStream
from nbflow.core.executors import resolve_executor
from nbflow.core.restart import Earlier, plan_restart
from nbflow.core.runner import FlowRunner
from nbflow.storage.code import load_code
from nbflow.terminal.headless import check_executor
from nbflow.terminal.progress import TerminalProgress

CANCEL_GRACE = 3.0


def load_flow(code: str, location: str) -> Any:
    """The flow an exported module builds (``build_flow()``), loaded from ``code``."""
    module = types.ModuleType("nbflow_registered_flow")
    module.__file__ = location
    try:
        exec(compile(code, location, "exec"), module.__dict__)
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("nbflow."):
            raise NbflowError(
                f"{location} was written by an older nbflow ({exc.name} is gone); register the flow again"
            ) from None
        raise
    build = getattr(module, "build_flow", None)
    if build is None:
        raise NbflowError(f"{location} has no build_flow(); register the flow again with this nbflow version")
    return build()


class FlowProcess:
    """One execution of one flow run, in this process: prepare, confirm, run, report."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from nbflow.client import Client

        self.spec = spec
        self.run_id = spec["flow_run_id"]
        self.client = Client(spec["server"], spec["key"], retries=2)
        self.spool = Spool(self.run_id, spec["version"])
        self.spool.hold()  # the agents on this machine leave it to us while we live
        self.reporter = ServerReporter(
            self.spool, self.run_id, spec["version"], private=spec.get("private", False)
        )
        self.superseded = threading.Event()
        self.sender = SpoolSender(
            self.spool, make_sender(self.client, on_superseded=self.superseded.set)
        ).start()
        self.stream = EventStream(max_latency=0.1)

    def prepare(self) -> FlowRunner:
        """Load and check the code, build the runner (raises for bad code, hash or parameters)."""
        spec = self.spec
        roots = [Path(root) for root in spec.get("storage_roots") or []] or None
        flow = load_flow(load_code(spec["storage"], roots), spec["storage"]["location"])
        executor = resolve_executor(spec.get("executor", "local"), dask_address=spec.get("dask_address"))
        check_executor(flow, executor)  # a known undeclared in-place change: fail, never race
        return FlowRunner(
            flow,
            parameters=spec.get("parameters") or {},
            context=spec.get("context") or {},
            gate=ServerGate(self.client, self.run_id),  # tagged tasks wait for the server's slots
            executor=executor,
            stream=self.stream,
            echo=False,
            flow_run_id=self.run_id,
            scheduled_start_time=datetime.fromisoformat(spec["scheduled_start_time"]),
            execution=self.reporter.execution,
            keep="none",  # the flow process ends with the run: results go after their last reader
            results=spec.get("results"),
            initial_states=self.restart_states(flow) if spec.get("restart_of") else None,
        )

    def resolve_secret(self, name: str) -> str | None:
        """A secret's value from the server, for this run (``nbflow.secret`` asks here first)."""
        from nbflow import client_team

        return self.client.execute(client_team.run_secret(self.run_id, name))

    def start_key(self) -> str | None:
        """The key a ``%%task --starts`` cell creates runs with (a run token cannot): the secret
        ``NBFLOW_API_KEY`` (the server's first), else the machine's ``NBFLOW_API_KEY`` or saved
        config, which is often the agent's own key (the server then refuses, saying so)."""
        try:
            return secrets.secret("NBFLOW_API_KEY")
        except secrets.SecretError:
            return resolve_server(self.spec["server"]).key

    def restart_states(self, flow: Any) -> dict[Any, Any]:
        """A restarted run: the states (and stored results) it reuses from the run it restarts."""
        earlier = {
            t.task_slug: Earlier(t.state, t.result_ref) for t in self.client.restart_sources(self.run_id)
        }
        plan = plan_restart(flow, earlier)
        print(
            f"restart of {self.spec['restart_of']}: reusing {len(plan.reused)} tasks, re-running {plan.rerun}"
        )
        for slug, why in plan.notes.items():
            print(f"  {slug} runs again: {why}")
        for slug, (reused, count) in plan.children.items():
            print(f"  {slug} reuses {reused} of its {count} children, runs the others")
        return plan.reused

    def finish(self, timeout: float) -> bool:
        """Deliver what is spooled (within ``timeout``); the spool goes once delivered."""
        delivered = self.sender.close(timeout=timeout)
        if delivered:
            self.spool.remove()  # otherwise the agent delivers it when the server is back
        return delivered

    def cancel_on_sigterm(self, runner: FlowRunner) -> None:
        """SIGTERM (the agent's cancel): stop starting tasks now; if running tasks do not end
        within the grace period, close them as Cancelled, report, and leave."""

        def give_up() -> None:
            time.sleep(CANCEL_GRACE)
            self.stream.flush()
            self.reporter.cancel_open_tasks("cancelled by a user: stopped while running")
            if not self.reporter.final_sent:
                self.reporter.flow_state("Cancelled", "cancelled by a user")
            self.finish(timeout=10)
            os._exit(0)

        def on_term(signum: int, frame: Any) -> None:  # noqa: ARG001
            runner.cancel("cancelled by a user")
            threading.Thread(target=give_up, daemon=True).start()

        signal.signal(signal.SIGTERM, on_term)

    def stop_when_superseded(self, runner: FlowRunner) -> None:
        """When the server refuses this execution's records (the run was resubmitted and runs
        elsewhere now), stop starting tasks: a zombie must not keep working."""

        def watch() -> None:
            self.superseded.wait()
            runner.cancel("superseded: a newer execution runs this run now")

        threading.Thread(target=watch, name="nbflow-superseded", daemon=True).start()

    def main(self) -> int:
        """The exit code (see the module docstring)."""
        try:
            runner = self.prepare()
        except Exception as exc:  # bad code, mismatched hash, bad parameters: the run fails, with the reason
            self.reporter.flow_state("Failed", f"could not start the flow: {exc}")
            self.finish(timeout=30)
            print(f"nbflow flow process: {exc}", file=sys.stderr)
            return 3
        problem = self.reporter.confirm_running(self.client)
        if problem is not None:
            # Another agent has the run now (or the server is gone): run nothing.
            print(f"nbflow flow process: not running {self.run_id}: {problem}", file=sys.stderr)
            self.sender.close(timeout=5)
            return 4
        # nbflow.secret("NAME") in a task asks the server, with this run's token.
        secrets.set_resolver(self.resolve_secret)
        # %%task --starts cells start runs on this run's server.
        flowrun.install(self.spec["server"], key=self.start_key)
        self.stream.subscribe(self.reporter.observe)
        # The run's log file on the agent keeps every line (a private run's only copy).
        self.stream.subscribe(TerminalProgress(sys.stdout, show_logs=self.reporter.private).observe)
        self.cancel_on_sigterm(runner)
        self.stop_when_superseded(runner)
        state = runner.run()
        self.stream.flush()
        if self.superseded.is_set():
            # A newer execution owns the run: whatever is left here would be refused anyway.
            self.spool.remove()
            print(f"nbflow flow process: run {self.run_id} stopped: a newer execution runs it now")
            return 4
        delivered = self.finish(timeout=float(self.spec.get("flush_timeout", 30)))
        outcome = "delivered" if delivered else "spooled"
        print(f"nbflow flow process: run {self.run_id} {state.type.value}; reports {outcome}")
        return 0


def read_spec(path: str) -> dict[str, Any]:
    """The run's spec, from the file the agent wrote; the file goes at once, so task code
    finds neither it nor the run token in it (nor anything in the environment)."""
    spec_path = Path(path)
    try:
        return json.loads(spec_path.read_text())
    finally:
        spec_path.unlink(missing_ok=True)


def run_spec_file(path: str) -> int:
    """Run the flow run the spec file at ``path`` describes, in this process; the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    return FlowProcess(read_spec(path)).main()


def main() -> int:
    """``python -m nbflow.agent.flowprocess``: run the flow run ``NBFLOW_FLOW_RUN_FILE`` describes."""
    return run_spec_file(os.environ.pop("NBFLOW_FLOW_RUN_FILE"))


if __name__ == "__main__":
    sys.exit(main())
