"""Helpers shared by CLI commands: JSON output and a client from the common options."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """``--server``, ``--key`` and ``--json``."""
    parser.add_argument(
        "--server", metavar="URL", help="server URL (default: NBFLOW_API_URL or ~/.nbflow/config.toml)"
    )
    parser.add_argument(
        "--key", metavar="KEY", help="API key (default: NBFLOW_API_KEY or ~/.nbflow/config.toml)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")


def command_group(sub: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    """A command made of subcommands (``nbflow NAME COMMAND``): the group to add them to."""
    parser = sub.add_parser(name, help=help, description=help)
    return parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)


def server_command(
    group: argparse._SubParsersAction, name: str, help: str, handler: Any
) -> argparse.ArgumentParser:
    """A subcommand that talks to the server: its help line (so the group's --help lists it),
    the server options, and the function that runs it."""
    parser = group.add_parser(name, help=help, description=help)
    add_server_options(parser)
    parser.set_defaults(handler=handler)
    return parser


def client_from(args: argparse.Namespace) -> Any:
    """A client for the command's server and key."""
    from nbflow.client import Client

    return Client(args.server, args.key)


def execute(args: argparse.Namespace, operation: Any) -> Any:
    """Send one client operation (``client_ops``/``client_team``) to the command's server: its answer."""
    with client_from(args) as client:
        return client.execute(operation)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def emit_json(value: Any) -> None:
    """Print ``value`` (dataclasses included) as JSON."""
    json.dump(_plain(value), sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def respond(args: argparse.Namespace, value: Any, text: str) -> int:
    """What a command prints when it is done: ``value`` as JSON with ``--json``, else ``text``;
    the command's exit code (0)."""
    if args.json:
        emit_json(value)
    else:
        print(text)
    return 0
