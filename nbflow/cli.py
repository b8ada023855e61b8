"""The ``nbflow`` command. Each subcommand exits non-zero with a one-line reason on errors."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from nbflow._version import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """The ``nbflow`` argument parser with every subcommand."""
    from nbflow.commands import agent_cmds, api_cmds, convert_cmd, notebook_cmds, server_cmds, team_cmds

    parser = argparse.ArgumentParser(
        prog="nbflow", description="Workflow orchestration that lives in the notebook."
    )
    parser.add_argument("--version", action="version", version=f"nbflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    notebook_cmds.add(sub)
    convert_cmd.add(sub)
    server_cmds.add(sub)
    api_cmds.add(sub)
    agent_cmds.add(sub)
    team_cmds.add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; its exit code (1 for server errors, 2 for bad input, 130 when interrupted)."""
    from nbflow.core.errors import ClientError, NbflowError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.handler(args))
    except ClientError as exc:
        print(f"nbflow {args.command}: {exc}", file=sys.stderr)
        return 1
    except NbflowError as exc:
        print(f"nbflow {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nbflow {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`nbflow runs list | head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
