"""The flow subprocess the agent starts: load the code, check it, run the flow, report.

    python -m nbflow.agent.flowprocess   (configured by NBFLOW_FLOW_RUN, a JSON object)

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
from typing import Any

from nbflow.agent.reporter import ServerReporter, make_sender
from nbflow.agent.spool import Spool, SpoolSender
from nbflow.agent.storage import load_code
from nbflow.core.errors import NbflowError
from nbflow.core.events import EventStream
from nbflow.core.runner import FlowRunner
from nbflow.notebook.headless import make_executor
from nbflow.notebook.progress import TerminalProgress

CANCEL_GRACE = 3.0


def load_flow(code: str, location: str) -> Any:
    module = types.ModuleType("nbflow_registered_flow")
    module.__file__ = location
    exec(compile(code, location, "exec"), module.__dict__)
    build = getattr(module, "build_flow", None)
    if build is None:
        raise NbflowError(f"{location} has no build_flow(); register the flow again with this nbflow version")
    return build()


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    spec = json.loads(os.environ["NBFLOW_FLOW_RUN"])
    from nbflow.client import Client

    client = Client(spec["server"], spec["key"], retries=2)
    run_id = spec["flow_run_id"]
    spool = Spool(run_id)
    reporter = ServerReporter(spool, run_id, spec["version"], spec.get("agent_id"))
    sender = SpoolSender(spool, make_sender(client)).start()

    try:
        flow = load_flow(load_code(spec["storage"]), spec["storage"]["location"])
        stream = EventStream(max_latency=0.1)
        runner = FlowRunner(
            flow,
            parameters=spec.get("parameters") or {},
            executor=make_executor(spec.get("executor", "threads"), spec.get("dask_address")),
            stream=stream,
            echo=False,
            flow_run_id=run_id,
            scheduled_start_time=datetime.fromisoformat(spec["scheduled_start_time"]),
        )
    except Exception as exc:  # bad code, mismatched hash, bad parameters: the run fails, with the reason
        reporter.flow_state("Failed", f"could not start the flow: {exc}")
        if sender.close(timeout=30):
            spool.remove()
        print(f"nbflow flow process: {exc}", file=sys.stderr)
        return 3

    problem = reporter.confirm_running(client)
    if problem is not None:
        # Another agent has the run now (or the server is gone): run nothing.
        print(f"nbflow flow process: not running {run_id}: {problem}", file=sys.stderr)
        sender.close(timeout=5)
        return 4
    stream.subscribe(reporter.observe)
    stream.subscribe(TerminalProgress(sys.stdout).observe)

    def on_term(signum: int, frame: Any) -> None:  # noqa: ARG001
        # Cancelled by the user (the agent sent SIGTERM): stop starting tasks now; if running
        # tasks do not end within the grace period, close them as Cancelled and leave.
        runner.cancel("cancelled by a user")

        def give_up() -> None:
            time.sleep(CANCEL_GRACE)
            stream.flush()
            reporter.cancel_open_tasks("cancelled by a user: stopped while running", time.time())
            if not reporter.final_sent:
                reporter.flow_state("Cancelled", "cancelled by a user")
            if sender.close(timeout=10):
                spool.remove()
            os._exit(0)

        threading.Thread(target=give_up, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    state = runner.run()
    stream.flush()
    delivered = sender.close(timeout=float(spec.get("flush_timeout", 30)))
    if delivered:
        spool.remove()  # otherwise the agent delivers it when the server is back
    print(
        f"nbflow flow process: run {run_id} {state.type.value}; reports {'delivered' if delivered else 'spooled'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
