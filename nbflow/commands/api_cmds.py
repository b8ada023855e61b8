"""Commands that talk to the server: keys, register, flows, runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nbflow.commands.common import add_server_options, client_from, emit_json
from nbflow.notebook.report import shorten, table

if TYPE_CHECKING:
    import argparse


def cmd_keys_create(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        key = client.create_api_key(args.role, args.name or "")
    if args.json:
        emit_json(key)
    else:
        print(f"new {key.role} key {key.name!r} (id {key.id}), shown once:\n\n    {key.key}\n")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        client.revoke_api_key(args.id)
    if args.json:
        emit_json({"revoked": args.id})
    else:
        print(f"revoked key {args.id}")
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        keys = client.api_keys()
    if args.json:
        emit_json(keys)
    else:
        print(
            table(
                ["id", "prefix", "role", "name", "revoked"],
                [[k["id"], k["prefix"], k["role"], k["name"], "yes" if k["revoked"] else ""] for k in keys],
            )
        )
    return 0


def cmd_register(args: argparse.Namespace) -> int:
    from nbflow.core.schedules import CronSchedule, IntervalSchedule
    from nbflow.notebook.ipynb import flow_from_notebook
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
            source=Path(args.notebook).name,
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
    with client_from(args) as client:
        runs, total = client.flow_runs(flow_name=args.flow, states=args.state or None, limit=args.limit)
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
    from nbflow.notebook.params import parse_parameters

    with client_from(args) as client:
        run = client.create_flow_run(
            flow_name=args.flow, parameters=parse_parameters(args.param), idempotency_key=args.idempotency_key
        )
    if args.json:
        emit_json(run)
    else:
        print(
            f"flow run {run.id} of {args.flow!r}: {run.state}"
            + ("" if run.created else " (existing run for this key)")
        )
    return 0


def cmd_runs_show(args: argparse.Namespace) -> int:
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
    if run.task_runs:
        print(
            table(
                ["task", "state", "attempt", "message"],
                [[t.task_slug, t.state, t.attempt or "", shorten(t.message, 60)] for t in run.task_runs],
            )
        )
    for line in logs:
        print(f"{line['taskSlug'] or '-'} [{line['level']}] {line['message']}")
    return 0


def cmd_runs_cancel(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        run = client.cancel_flow_run(args.run_id)
    if args.json:
        emit_json(run)
    else:
        print(f"flow run {run.id}: {run.state}")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="API keys of your tenant (admin key needed)")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)
    create = keys_sub.add_parser("create", help="make a key (shown once)")
    create.add_argument("--role", required=True, choices=["admin", "user", "agent", "read-only"])
    create.add_argument("--name")
    add_server_options(create)
    create.set_defaults(handler=cmd_keys_create)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id or prefix")
    revoke.add_argument("id")
    add_server_options(revoke)
    revoke.set_defaults(handler=cmd_keys_revoke)
    listing = keys_sub.add_parser("list", help="list keys")
    add_server_options(listing)
    listing.set_defaults(handler=cmd_keys_list)

    register = sub.add_parser("register", help="register a notebook's flow with the server")
    register.add_argument("notebook")
    schedule = register.add_mutually_exclusive_group()
    schedule.add_argument("--schedule-cron", metavar="EXPRESSION")
    schedule.add_argument("--schedule-every", metavar="DURATION")
    register.add_argument("--timezone", default="UTC")
    register.add_argument("--labels", metavar="a,b", help="agents need all these labels to run it")
    register.add_argument(
        "--storage", metavar="DIR", help="where agents read the code (default: NBFLOW_HOME/storage)"
    )
    register.add_argument(
        "--max-resubmits", type=int, default=0, metavar="N", help="resubmit a run whose agent died, N times"
    )
    add_server_options(register)
    register.set_defaults(handler=cmd_register)

    flows = sub.add_parser("flows", help="registered flows")
    flows_sub = flows.add_subparsers(dest="flows_command", metavar="COMMAND", required=True)
    flows_list = flows_sub.add_parser("list")
    add_server_options(flows_list)
    flows_list.set_defaults(handler=cmd_flows_list)

    runs = sub.add_parser("runs", help="flow runs on the server")
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="COMMAND", required=True)
    runs_list = runs_sub.add_parser("list")
    runs_list.add_argument("--flow", metavar="NAME")
    runs_list.add_argument("--state", action="append", metavar="STATE")
    runs_list.add_argument("--limit", type=int, default=20)
    add_server_options(runs_list)
    runs_list.set_defaults(handler=cmd_runs_list)
    runs_create = runs_sub.add_parser("create", help="create a flow run (an agent runs it)")
    runs_create.add_argument("flow", metavar="FLOW")
    runs_create.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    runs_create.add_argument("--idempotency-key")
    add_server_options(runs_create)
    runs_create.set_defaults(handler=cmd_runs_create)
    runs_show = runs_sub.add_parser("show")
    runs_show.add_argument("run_id")
    runs_show.add_argument("--logs", action="store_true")
    add_server_options(runs_show)
    runs_show.set_defaults(handler=cmd_runs_show)
    runs_cancel = runs_sub.add_parser("cancel")
    runs_cancel.add_argument("run_id")
    add_server_options(runs_cancel)
    runs_cancel.set_defaults(handler=cmd_runs_cancel)
