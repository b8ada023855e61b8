"""``nbflow secrets``, ``nbflow hooks`` and ``nbflow limits``: running flows as a team."""

from __future__ import annotations

import getpass
import sys
from typing import TYPE_CHECKING, Any

from nbflow import client_team as team
from nbflow.commands.common import add_server_options, client_from, emit_json
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
    with client_from(args) as client:
        answer = client.execute(team.set_secret(args.name, value))
    if args.json:
        emit_json(answer)
    else:
        print(f"secret {answer['name']!r} set (stored encrypted; its value is never shown again)")
    return 0


def cmd_secrets_list(args: argparse.Namespace) -> int:
    """``nbflow secrets list``: names and times."""
    with client_from(args) as client:
        rows = client.execute(team.secrets())
    if args.json:
        emit_json(rows)
    else:
        print(
            table(["secret", "updated"], [[r["name"], r["updated"]] for r in rows]) if rows else "no secrets"
        )
    return 0


def cmd_secrets_delete(args: argparse.Namespace) -> int:
    """``nbflow secrets delete NAME``."""
    with client_from(args) as client:
        client.execute(team.delete_secret(args.name))
    print(f"secret {args.name!r} deleted")
    return 0


def _command(
    group: argparse._SubParsersAction, name: str, help: str, handler: Any
) -> argparse.ArgumentParser:
    parser = group.add_parser(name, help=help, description=help)
    add_server_options(parser)
    parser.set_defaults(handler=handler)
    return parser


def _add_secrets(sub: argparse._SubParsersAction) -> None:
    secrets = sub.add_parser("secrets", help="secrets tasks read with nbflow.secret(NAME) on agents")
    group = secrets.add_subparsers(dest="secrets_command", metavar="COMMAND", required=True)
    setter = _command(group, "set", "set a secret; the value comes from stdin or a prompt", cmd_secrets_set)
    setter.add_argument("name")
    _command(group, "list", "list the secrets (names only)", cmd_secrets_list)
    deleter = _command(group, "delete", "delete a secret", cmd_secrets_delete)
    deleter.add_argument("name")


def add(sub: argparse._SubParsersAction) -> None:
    """The team commands: secrets, hooks, limits."""
    _add_secrets(sub)
