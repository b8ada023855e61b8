"""Instructions per GraphQL request of the server, counted by callgrind (not timed).

The server runs in process (``create_app`` on a fresh PostgreSQL database, or a SQLite file,
through httpx's ASGI transport), the client beside it; after 4 warm-up requests callgrind's
instrumentation is switched on (``callgrind_control -i on``) for N requests only, so the count
is the client's and the server's Python per request (the database's own work runs in its own
process and is not counted). The same code counts the same whatever else the machine does,
which wall time on a shared two-core machine does not.

    python benchmarks/server_instructions.py [--cases empty,single,batch,create,log,logs] [--db pg|sqlite]
        [--requests 40] [--refused-only]

Requests go as a flow process sends them, with its run token (``empty`` is ``{ __typename }``;
``batch`` is 500 task states, ``log`` one log line, ``logs`` 500 lines).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "tests"))
sys.path.insert(0, str(ROOT))

INSIDE = "NBFLOW_UNDER_CALLGRIND"


def _toggle(on: bool) -> None:
    subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(os.getpid())], check=True,
                   capture_output=True)  # fmt: skip


async def _requests(url: str, case: str, n: int, refused_only: bool) -> None:
    import httpx

    try:
        import sniffio  # noqa: F401
    except ImportError:
        # httpx's in-process transport tries to import it on every request (a search of
        # sys.path: 0.4 M instructions), which a real client over HTTP never does.
        sys.modules["sniffio"] = None  # type: ignore[assignment]
    from server_helpers import flow_change
    from server_throughput import STORAGE, STRUCTURE, log_lines, task_updates

    from nbflow.client import AsyncClient
    from nbflow.server.app import Settings, create_app

    keys: list[str] = []
    app = create_app(Settings(database_url=url, run_scheduler=False, run_recovery=False, run_hooks=False,
                              on_bootstrap=keys.append))  # fmt: skip
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with AsyncClient("http://bench", keys[0], transport=transport) as admin:
            await admin.register_flow("bench", STRUCTURE, STORAGE)
            run = await admin.create_flow_run(flow_name="bench")
            (claim,) = await admin.set_flow_run_states([flow_change(run.id, "Submitted", run.version)])
            size = 500 if case in ("batch", "logs") else 1
            changes = [{**c, "execution": claim.version} for c in task_updates(run.id, size * (n + 4))]
            async with AsyncClient("http://bench", claim.run_token, transport=transport) as flow_process:

                async def one(i: int) -> None:
                    if case == "create":
                        await admin.create_flow_run(flow_name="bench")
                    elif case == "empty":
                        await flow_process.graphql("{ __typename }")
                    elif case in ("log", "logs"):
                        lines = log_lines(run.id, size, first=i * size, execution=claim.version)
                        assert await flow_process.write_run_logs(lines) == size
                    else:
                        batch = changes[i * size : (i + 1) * size]
                        results = await flow_process.set_task_run_states(batch, refused_only=refused_only)
                        assert all(r.ok for r in results), results

                for i in range(4):
                    await one(i)
                _toggle(True)
                for i in range(4, n + 4):
                    await one(i)
                _toggle(False)


def _inside(case: str, n: int, db: str, refused_only: bool) -> None:
    from server_helpers import fresh_postgres_database

    if db == "pg":
        with fresh_postgres_database(os.environ["NBFLOW_TEST_POSTGRES_URL"]) as url:
            asyncio.run(_requests(url, case, n, refused_only))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(_requests(f"sqlite+aiosqlite:///{tmp}/nbflow.db", case, n, refused_only))


def count(case: str, n: int, db: str, refused_only: bool) -> int:
    """Instructions per request of ``case``, from a fresh process under callgrind."""
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}/cg.%p",
             sys.executable, __file__, "--cases", case, "--requests", str(n), "--db", db,
             *(["--refused-only"] if refused_only else [])],
            env={**os.environ, INSIDE: "1"}, capture_output=True, text=True, check=False,
        )  # fmt: skip
    collected = [int(m.replace(",", "")) for m in re.findall(r"Collected : ([\d,]+)", done.stderr)]
    if done.returncode != 0 or not collected:
        raise RuntimeError(f"{case}: the counted run failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return max(collected) // n


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", default="empty,single,batch,create")
    parser.add_argument("--db", choices=["pg", "sqlite"], default="pg")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--refused-only", action="store_true", help="task states answered with refusals only")
    args = parser.parse_args()
    if os.environ.get(INSIDE):
        _inside(args.cases, args.requests, args.db, args.refused_only)
        return
    if args.db == "pg" and not os.environ.get("NBFLOW_TEST_POSTGRES_URL"):
        raise SystemExit("set NBFLOW_TEST_POSTGRES_URL, or use --db sqlite")
    print(f"instructions per request ({args.db}, {args.requests} requests counted per case)\n")
    print("| request | instructions |\n|---|---:|")
    for case in args.cases.split(","):
        n = max(2, args.requests // 10) if case in ("batch", "logs") else args.requests
        print(f"| {case} | {count(case, n, args.db, args.refused_only):,} |", flush=True)


if __name__ == "__main__":
    main()
