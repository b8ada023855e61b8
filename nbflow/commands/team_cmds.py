"""``nbflow secrets``, ``nbflow hooks`` and ``nbflow limits``: running flows as a team."""

from __future__ import annotations

import getpass
import sys
from typing import TYPE_CHECKING, Any

from nbflow import client_team as team
from nbflow.commands.common import command_group, emit_json, execute, respond, server_command
from nbflow.core.errors import NbflowError
from nbflow.terminal.report import table

if TYPE_CHECKING:
    import argparse


def _read_value(name: str) -> str:
    """The secret's value from stdin (piped) or a prompt that does not echo; never an argument,
    so it stays out of shell history and process lists."""
    if sys.stdin is not None and not sys.stdin.isatty():
        value = sys.stdin.read()
        value = value[:-1] if value.endswith("\n") else value  # `echo value |` adds one newline
    else:
        value = getpass.getpass(f"value of secret {name}: ")
    if not value:
        raise NbflowError(f"no value given for secret {name!r} (pipe it in, or type it at the prompt)")
    return value


def cmd_secrets_set(args: argparse.Namespace) -> int:
    """``nbflow secrets set NAME`` (the value from stdin or a prompt)."""
    value = _read_value(args.name)
    answer = execute(args, team.set_secret(args.name, value))
    return respond(
        args, answer, f"secret {answer['name']!r} set (stored encrypted; its value is never shown again)"
    )


def cmd_secrets_list(args: argparse.Namespace) -> int:
    """``nbflow secrets list``: names and times."""
    rows = execute(args, team.secrets())
    return respond(
        args,
        rows,
        table(["secret", "updated"], [[r["name"], r["updated"]] for r in rows]) if rows else "no secrets",
    )


def cmd_secrets_delete(args: argparse.Namespace) -> int:
    """``nbflow secrets delete NAME``."""
    execute(args, team.delete_secret(args.name))
    print(f"secret {args.name!r} deleted")
    return 0


def cmd_hooks_add(args: argparse.Namespace) -> int:
    """``nbflow hooks add NAME (--webhook URL | --email ADDRESSES) [--flow F] [--on S,...]``."""
    kind, target = ("webhook", args.webhook) if args.webhook else ("email", args.email)
    states = [s.strip() for s in args.on.split(",") if s.strip()]
    scope = "task_run" if args.task_runs else "flow_run"
    operation = team.add_hook(
        args.name,
        kind,
        target,
        states=states,
        scope=scope,
        flow_name=args.flow,
        late_minutes=args.late_minutes,
    )
    hook = execute(args, operation)
    return respond(args, hook, f"hook {hook['name']!r} ({hook['id']}) added: {_describe(hook)}")


def _describe(hook: dict[str, Any]) -> str:
    runs = "task runs" if hook["scope"] == "task_run" else "flow runs"
    flow = f"flow {hook['flowName']!r}" if hook["flowName"] else "every flow"
    late = f" ({hook['lateMinutes']} min)" if hook.get("lateMinutes") else ""
    return f"{runs} of {flow} on {', '.join(hook['states'])}{late} -> {hook['kind']} {hook['target']}"


def cmd_hooks_list(args: argparse.Namespace) -> int:
    """``nbflow hooks list [--deliveries]``: the hooks, and their recent deliveries."""
    rows = execute(args, team.hooks())
    deliveries = execute(args, team.hook_deliveries(args.hook, limit=args.limit)) if args.deliveries else []
    if args.json:
        emit_json({"hooks": rows, "deliveries": deliveries})
        return 0
    print(
        table(["hook", "id", "fires on"], [[h["name"], h["id"], _describe(h)] for h in rows])
        if rows
        else "no hooks"
    )
    if args.deliveries:
        lines = [
            [d["hookName"], d["state"], d["flowRunId"], d["status"], d["attempts"], d["lastError"][:60]]
            for d in deliveries
        ]
        headers = ["hook", "state", "run", "status", "attempts", "last error"]
        print(table(headers, lines) if lines else "no deliveries")
    return 0


def cmd_hooks_remove(args: argparse.Namespace) -> int:
    """``nbflow hooks remove HOOK``."""
    execute(args, team.remove_hook(args.hook))
    print(f"hook {args.hook!r} removed")
    return 0


def cmd_hooks_test(args: argparse.Namespace) -> int:
    """``nbflow hooks test HOOK``: send a test message now; exit 1 if it did not arrive."""
    delivery = execute(args, team.test_hook(args.hook))
    if args.json:
        emit_json(delivery)
    elif delivery["status"] == "delivered":
        print(f"hook {delivery['hookName']!r}: test message delivered")
    else:
        print(f"hook {delivery['hookName']!r}: not delivered ({delivery['lastError']}); it will be retried")
    return 0 if delivery["status"] == "delivered" else 1


def cmd_limits_set(args: argparse.Namespace) -> int:
    """``nbflow limits set TAG N`` (``--label``: flow runs with the label LABEL)."""
    kind = "label" if args.label else "tag"
    row = execute(args, team.set_concurrency_limit(args.tag, args.limit, kind=kind))
    if kind == "label":
        print(f"at most {row['limit']} flow runs with label {row['tag']!r} are active at once")
    else:
        print(f"at most {row['limit']} task runs tagged {row['tag']!r} run at once (across all agents)")
    return 0


def cmd_limits_list(args: argparse.Namespace) -> int:
    """``nbflow limits list``: each limit, its slots in use and who holds them."""
    rows = execute(args, team.concurrency_limits())
    if args.json:
        emit_json(rows)
        return 0
    lines = [
        [
            r["kind"],
            r["tag"],
            r["limit"],
            r["inUse"],
            ", ".join(f"{h['taskSlug']} ({h['flowRunId'][:8]})" for h in r["holders"]),
        ]
        for r in rows
    ]
    print(table(["on", "name", "limit", "in use", "held by"], lines) if lines else "no concurrency limits")
    return 0


def cmd_limits_delete(args: argparse.Namespace) -> int:
    """``nbflow limits delete TAG``."""
    kind = "label" if args.label else "tag"
    execute(args, team.delete_concurrency_limit(args.tag, kind=kind))
    print(f"{kind} {args.tag!r} has no limit now")
    return 0


def _add_secrets(sub: argparse._SubParsersAction) -> None:
    group = command_group(sub, "secrets", "secrets tasks read with nbflow.secret(NAME) on agents")
    setter = server_command(
        group, "set", "set a secret; the value comes from stdin or a prompt", cmd_secrets_set
    )
    setter.add_argument("name")
    server_command(group, "list", "list the secrets (names only)", cmd_secrets_list)
    deleter = server_command(group, "delete", "delete a secret", cmd_secrets_delete)
    deleter.add_argument("name")


def _add_hooks(sub: argparse._SubParsersAction) -> None:
    group = command_group(sub, "hooks", "webhooks and email the server sends on run states")
    add = server_command(group, "add", "add a hook", cmd_hooks_add)
    add.add_argument("name")
    target = add.add_mutually_exclusive_group(required=True)
    target.add_argument("--webhook", metavar="URL", help="POST a JSON body (Slack-compatible `text`) to URL")
    target.add_argument("--email", metavar="ADDRESSES", help="send email (the server needs --smtp-host)")
    add.add_argument("--flow", metavar="NAME", help="only runs of this flow (default: every flow)")
    add.add_argument("--on", default="Failed", metavar="STATES",
                     help="comma-separated states (Failed, TimedOut, Cancelled, Success, ..., Late)")  # fmt: skip
    add.add_argument(
        "--task-runs", action="store_true", help="fire on task-run states instead of flow-run states"
    )
    add.add_argument(
        "--late-minutes", type=int, metavar="N", help="for Late: a run not started N minutes after its time"
    )
    listing = server_command(group, "list", "list the hooks (and their deliveries)", cmd_hooks_list)
    listing.add_argument("--deliveries", action="store_true", help="show recent deliveries too")
    listing.add_argument("--hook", metavar="HOOK", help="deliveries of this hook only")
    listing.add_argument("--limit", type=int, default=20)
    remove = server_command(group, "remove", "remove a hook (by id or name)", cmd_hooks_remove)
    remove.add_argument("hook")
    test = server_command(group, "test", "send a test message through a hook now", cmd_hooks_test)
    test.add_argument("hook")


def _add_limits(sub: argparse._SubParsersAction) -> None:
    group = command_group(sub, "limits", "tag concurrency limits across all agents")
    setter = server_command(group, "set", "at most N task runs with TAG run at once", cmd_limits_set)
    setter.add_argument("tag", metavar="TAG")
    setter.add_argument("limit", type=int, metavar="N")
    setter.add_argument(
        "--label", action="store_true", help="TAG is a run label: at most N active flow runs with it"
    )
    server_command(group, "list", "the limits and the slots in use", cmd_limits_list)
    deleter = server_command(group, "delete", "remove a tag's limit", cmd_limits_delete)
    deleter.add_argument("tag", metavar="TAG")
    deleter.add_argument("--label", action="store_true", help="TAG is a run label")


def add(sub: argparse._SubParsersAction) -> None:
    """The team commands: secrets, hooks, limits."""
    _add_secrets(sub)
    _add_hooks(sub)
    _add_limits(sub)
