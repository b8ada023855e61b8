"""Commands that talk to the server: keys, register, flows, runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nbflow.commands.common import (
    add_server_options,
    client_from,
    command_group,
    emit_json,
    respond,
    server_command,
)
from nbflow.terminal.report import shorten, table

if TYPE_CHECKING:
    import argparse


def cmd_keys_create(args: argparse.Namespace) -> int:
    """``nbflow keys create``."""
    with client_from(args) as client:
        key = client.create_api_key(args.role, args.name or "")
    return respond(
        args, key, f"new {key.role} key {key.name!r} (id {key.id}), shown once:\n\n    {key.key}\n"
    )


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    """``nbflow keys revoke``."""
    with client_from(args) as client:
        client.revoke_api_key(args.id)
    return respond(args, {"revoked": args.id}, f"revoked key {args.id}")


def cmd_keys_list(args: argparse.Namespace) -> int:
    """``nbflow keys list``."""
    with client_from(args) as client:
        keys = client.api_keys()
    return respond(
        args,
        keys,
        table(
            ["id", "prefix", "role", "name", "revoked"],
            [[k["id"], k["prefix"], k["role"], k["name"], "yes" if k["revoked"] else ""] for k in keys],
        ),
    )


def cmd_register(args: argparse.Namespace) -> int:
    """``nbflow register NOTEBOOK``."""
    from nbflow.cells.ipynb import flow_from_notebook
    from nbflow.core.schedules import CronSchedule, IntervalSchedule
    from nbflow.register import register_notebook_flow

    notebook = flow_from_notebook(args.notebook)
    if args.schedule_cron:
        notebook.schedule = CronSchedule(args.schedule_cron, timezone=args.timezone)
    elif args.schedule_every:
        notebook.schedule = IntervalSchedule(args.schedule_every, timezone=args.timezone)
    labels = [label.strip() for label in (args.labels or "").split(",") if label.strip()]
    with client_from(args) as client:
        registered = register_notebook_flow(
            notebook, client, labels=labels, storage_dir=args.storage, max_resubmits=args.max_resubmits,
            private=args.private, source=Path(args.notebook).name,
        )  # fmt: skip
    if args.json:
        emit_json({"name": notebook.name, **vars(registered)})
    else:
        what = "registered" if registered.created else "already registered (same structure and code)"
        print(f"flow {notebook.name!r} {what}: id {registered.flow_id}, version {registered.version}")
        if notebook.schedule is not None:
            print(f"schedule: {notebook.schedule.describe()} (the server keeps the next 10 runs)")
    return 0


def cmd_flows_list(args: argparse.Namespace) -> int:
    """``nbflow flows list``."""
    with client_from(args) as client:
        flows = client.flows()
    if args.json:
        emit_json(flows)
        return 0
    from nbflow.core.schedules import Schedule

    rows = []
    for f in flows:
        schedule = Schedule.from_dict(f.schedule).describe() if f.schedule else ""
        rows.append([f.name, f.version, schedule, "on" if f.schedule_active else "off", f.id])
    print(table(["flow", "version", "schedule", "active", "id"], rows) if rows else "no flows registered yet")
    return 0


def cmd_runs_list(args: argparse.Namespace) -> int:
    """``nbflow runs list``."""
    from nbflow.core.states import state_types

    states = [t.value for t in state_types(args.state)] if args.state else None  # `failed` is Failed
    with client_from(args) as client:
        runs, total = client.flow_runs(flow_name=args.flow, states=states, limit=args.limit)
    if args.json:
        emit_json({"total": total, "runs": runs})
        return 0
    rows = [
        [
            r.id,
            r.flow_name,
            r.state,
            r.scheduled_start_time.isoformat(timespec="seconds"),
            shorten(r.message, 50),
        ]
        for r in runs
    ]
    print(table(["run", "flow", "state", "scheduled", "message"], rows) if rows else "no runs")
    if total > len(runs):
        print(f"({len(runs)} of {total}; --limit shows more)")
    return 0


def cmd_runs_create(args: argparse.Namespace) -> int:
    """``nbflow runs create FLOW``."""
    from nbflow.cells.params import parse_context, parse_parameters

    with client_from(args) as client:
        run = client.create_flow_run(
            flow_name=args.flow,
            parameters=parse_parameters(args.param),
            idempotency_key=args.idempotency_key,
            context=parse_context(args.context) or None,
        )
    return respond(
        args,
        run,
        f"flow run {run.id} of {args.flow!r}: {run.state}"
        + ("" if run.created else " (existing run for this key)"),
    )


def cmd_runs_show(args: argparse.Namespace) -> int:
    """``nbflow runs show RUN_ID``."""
    with client_from(args) as client:
        run = client.flow_run(args.run_id)
        logs = client.run_logs(args.run_id) if args.logs else []
    if args.json:
        emit_json({"run": run, "logs": logs})
        return 0
    print(
        f"flow run {run.id} of {run.flow_name!r} (version {run.flow_version}): {run.state} {run.message}".rstrip()
    )
    print(f"parameters: {run.parameters}")
    if run.context:
        print(f"context: {run.context}")
    if run.task_runs:
        rows = [[t.task_slug, t.state, t.attempt or "", shorten(t.message, 60)] for t in run.task_runs]
        headers = ["task", "state", "attempt", "message"]
        if any(t.children for t in run.task_runs):  # mapped tasks: their children by state
            headers.insert(2, "children")
            for row, t in zip(rows, run.task_runs, strict=True):
                row.insert(2, ", ".join(f"{n} {state.lower()}" for state, n in t.children.items()))
        print(table(headers, rows))
    for line in logs:
        print(f"{line['taskSlug'] or '-'} [{line['level']}] {line['message']}")
    return 0


def cmd_runs_cancel(args: argparse.Namespace) -> int:
    """``nbflow runs cancel RUN_ID``."""
    with client_from(args) as client:
        run = client.cancel_flow_run(args.run_id)
    return respond(args, run, f"flow run {run.id}: {run.state}")


def cmd_runs_restart(args: argparse.Namespace) -> int:
    """``nbflow runs restart RUN_ID``: a new run from the failed tasks, reusing stored results."""
    with client_from(args) as client:
        run = client.restart_flow_run(args.run_id)
    return respond(
        args, run, f"flow run {run.id} restarts {run.restart_of} from its failed tasks: {run.state}"
    )


def add(sub: argparse._SubParsersAction) -> None:
    """The server-side commands: keys, register, flows, runs."""
    _add_keys(sub)
    _add_register(sub)
    _add_flows(sub)
    _add_runs(sub)


def _add_keys(sub: argparse._SubParsersAction) -> None:
    group = command_group(sub, "keys", "API keys of your tenant (admin key needed)")
    create = server_command(group, "create", "make a key (shown once)", cmd_keys_create)
    create.add_argument("--role", required=True, choices=["admin", "user", "agent", "read-only"])
    create.add_argument("--name")
    revoke = server_command(group, "revoke", "revoke a key by id or prefix", cmd_keys_revoke)
    revoke.add_argument("id")
    server_command(group, "list", "list the keys (never their secrets)", cmd_keys_list)


def _add_register(sub: argparse._SubParsersAction) -> None:
    register = sub.add_parser("register", help="register a notebook's flow with the server")
    register.add_argument("notebook")
    schedule = register.add_mutually_exclusive_group()
    schedule.add_argument("--schedule-cron", metavar="EXPRESSION")
    schedule.add_argument("--schedule-every", metavar="DURATION")
    register.add_argument("--timezone", default="UTC")
    register.add_argument("--labels", metavar="a,b", help="agents need all these labels to run it")
    register.add_argument(
        "--storage",
        metavar="DIR|URL",
        help="where agents read the code: a folder (default NBFLOW_HOME/storage) or a URL such as "
        "s3://bucket/prefix (results go there too)",
    )
    register.add_argument(
        "--max-resubmits", type=int, default=0, metavar="N", help="resubmit a run whose agent died, N times"
    )
    register.add_argument(
        "--private",
        action="store_true",
        help="agents keep log lines and failure details; the server gets states only, no variable names",
    )
    add_server_options(register)
    register.set_defaults(handler=cmd_register)


def _add_flows(sub: argparse._SubParsersAction) -> None:
    group = command_group(sub, "flows", "registered flows")
    server_command(group, "list", "list the registered flows with their version and schedule", cmd_flows_list)


def _add_runs(sub: argparse._SubParsersAction) -> None:
    group = command_group(sub, "runs", "flow runs on the server")
    listing = server_command(group, "list", "list flow runs, newest first", cmd_runs_list)
    listing.add_argument("--flow", metavar="NAME")
    listing.add_argument("--state", action="append", metavar="STATE")
    listing.add_argument("--limit", type=int, default=20)
    create = server_command(group, "create", "create a flow run (an agent runs it)", cmd_runs_create)
    create.add_argument("flow", metavar="FLOW")
    create.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    create.add_argument("-c", "--context", action="append", default=[], metavar="KEY=VALUE",
                        help="a value tasks read as nbflow.context.KEY (repeatable)")  # fmt: skip
    create.add_argument("--idempotency-key")
    show = server_command(group, "show", "a run's state, task runs and (with --logs) its logs", cmd_runs_show)
    show.add_argument("run_id")
    show.add_argument("--logs", action="store_true")
    cancel = server_command(group, "cancel", "cancel a run (its agent stops it)", cmd_runs_cancel)
    cancel.add_argument("run_id")
    restart = server_command(
        group,
        "restart",
        "re-run a failed run from its failed tasks, reusing stored results",
        cmd_runs_restart,
    )
    restart.add_argument("run_id")
