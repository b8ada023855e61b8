"""``nbflow agent start``: run registered flows on this machine."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import TYPE_CHECKING, Any

from nbflow.commands.common import command_group

if TYPE_CHECKING:
    import argparse


def cmd_start(args: argparse.Namespace) -> int:
    """``nbflow agent start``."""
    from nbflow.agent.agent import Agent
    from nbflow.core.settings import private_files

    private_files()  # spools, run logs and run specs are this user's alone (flow processes inherit it)

    agent = Agent(
        args.server,
        args.key,
        labels=[label.strip() for label in (args.labels or "").split(",") if label.strip()],
        concurrency=args.concurrency,
        executor=args.executor,
        dask_address=args.dask_address,
        name=args.name,
        poll_wait=args.poll_wait,
        heartbeat_interval=args.heartbeat_interval,
        private=args.private,
        storage_roots=args.storage_root,
        cold_start=args.cold_start,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await agent.run(stop=stop, max_runs=args.max_runs)

    asyncio.run(main())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """``nbflow demo``."""
    from nbflow.core.settings import private_files
    from nbflow.demo import Demo

    private_files()  # the demo's server database and agent files are this user's alone

    demo = Demo(port=args.port)
    # SIGTERM (a service manager, `kill`) stops the server and agent too, as Ctrl-C does.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return demo.run(serve=args.serve)
    finally:
        demo.close()
        signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def add(sub: argparse._SubParsersAction) -> None:
    """The agent and demo commands."""
    demo = sub.add_parser("demo", help="server + agent + an example notebook run, on this machine")
    demo.add_argument("--serve", action="store_true", help="keep the server and agent running afterwards")
    demo.add_argument("--port", type=int, default=None, help="server port (default 4200, or a free one)")
    demo.set_defaults(handler=cmd_demo)

    agent_sub = command_group(sub, "agent", "run registered flows on this machine")
    start = agent_sub.add_parser("start", help="pull runs from the server and run them in subprocesses")
    start.add_argument(
        "--server", metavar="URL", help="server URL (default: NBFLOW_API_URL or ~/.nbflow/config.toml)"
    )
    start.add_argument(
        "--key", metavar="KEY", help="an agent key (default: NBFLOW_API_KEY or ~/.nbflow/config.toml)"
    )
    start.add_argument("--labels", metavar="a,b", help="run only flows whose labels this agent has")
    start.add_argument("--concurrency", type=int, default=4, metavar="N", help="flow runs at once")
    start.add_argument("--executor", choices=["local", "threads", "dask"], default="local")
    start.add_argument("--dask-address", metavar="ADDRESS", help="run tasks on this Dask cluster")
    start.add_argument("--name", help="how the agent shows on the server (default: host-pid)")
    start.add_argument("--poll-wait", type=float, default=5.0, metavar="SECONDS", help="long-poll wait")
    start.add_argument("--heartbeat-interval", type=float, default=5.0, metavar="SECONDS")
    start.add_argument(
        "--max-runs", type=int, default=None, metavar="N", help="exit after N runs (for scripts)"
    )
    start.add_argument(
        "--storage-root",
        action="append",
        default=[],
        metavar="DIR",
        help="also read flow code from DIR (a shared folder flows were registered with --storage DIR)",
    )
    start.add_argument(
        "--private",
        action="store_true",
        help="keep every run's log lines and failure details in this agent's run logs; send states only",
    )
    start.add_argument(
        "--cold-start",
        action="store_true",
        help="start each flow process as a fresh Python (slower) instead of forking it from a warm, "
        "pre-imported parent; for code that cannot run in a forked process",
    )
    start.set_defaults(handler=cmd_start)
