"""``nbflow agent start``: run registered flows on this machine."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse


def cmd_start(args: argparse.Namespace) -> int:
    from nbflow.agent.agent import Agent

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
    from nbflow.demo import Demo

    demo = Demo(port=args.port)
    try:
        return demo.run(serve=args.serve)
    finally:
        demo.close()


def add(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="server + agent + an example notebook run, on this machine")
    demo.add_argument("--serve", action="store_true", help="keep the server and agent running afterwards")
    demo.add_argument("--port", type=int, default=None, help="server port (default 4200, or a free one)")
    demo.set_defaults(handler=cmd_demo)

    agent = sub.add_parser("agent", help="run registered flows on this machine")
    agent_sub = agent.add_subparsers(dest="agent_command", metavar="COMMAND", required=True)
    start = agent_sub.add_parser("start", help="pull runs from the server and run them in subprocesses")
    start.add_argument(
        "--server", metavar="URL", help="server URL (default: NBFLOW_API_URL or ~/.nbflow/config.toml)"
    )
    start.add_argument(
        "--key", metavar="KEY", help="an agent key (default: NBFLOW_API_KEY or ~/.nbflow/config.toml)"
    )
    start.add_argument("--labels", metavar="a,b", help="run only flows whose labels this agent has")
    start.add_argument("--concurrency", type=int, default=4, metavar="N", help="flow runs at once")
    start.add_argument("--executor", choices=["local", "threads", "dask"], default="threads")
    start.add_argument("--dask-address", metavar="ADDRESS", help="run tasks on this Dask cluster")
    start.add_argument("--name", help="how the agent shows on the server (default: host-pid)")
    start.add_argument("--poll-wait", type=float, default=5.0, metavar="SECONDS", help="long-poll wait")
    start.add_argument("--heartbeat-interval", type=float, default=5.0, metavar="SECONDS")
    start.add_argument(
        "--max-runs", type=int, default=None, metavar="N", help="exit after N runs (for scripts)"
    )
    start.set_defaults(handler=cmd_start)
