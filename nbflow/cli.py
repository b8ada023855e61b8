"""The ``nbflow`` command."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from nbflow._version import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbflow",
        description="Workflow orchestration that lives in the notebook.",
    )
    parser.add_argument("--version", action="version", version=f"nbflow {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
