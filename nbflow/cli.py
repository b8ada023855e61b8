"""The ``nbflow`` command. Each subcommand exits non-zero with a one-line reason on errors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from nbflow._version import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence


def cmd_run(args: argparse.Namespace) -> int:
    from nbflow.notebook.headless import run_notebook_flow
    from nbflow.notebook.ipynb import flow_from_notebook
    from nbflow.notebook.params import parse_parameters

    notebook = flow_from_notebook(args.notebook)
    code, _ = run_notebook_flow(
        notebook,
        parameters=parse_parameters(args.param),
        executor=args.executor,
        dask_address=args.dask_address,
        cache=not args.no_cache,
        quiet=args.quiet,
        show_logs=args.show_logs,
    )
    return code


def cmd_export(args: argparse.Namespace) -> int:
    from nbflow.notebook.export import export_module
    from nbflow.notebook.ipynb import flow_from_notebook

    notebook = flow_from_notebook(args.notebook)
    notebook.build()  # a flow that cannot run headless is not exported
    out = Path(args.output) if args.output else Path(args.notebook).with_suffix(".py")
    out.write_text(export_module(notebook, source=Path(args.notebook).name))
    print(f"wrote {out} ({len(notebook.task_names)} tasks); run it with: python {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from nbflow.notebook.headless import add_run_arguments

    parser = argparse.ArgumentParser(
        prog="nbflow",
        description="Workflow orchestration that lives in the notebook.",
    )
    parser.add_argument("--version", action="version", version=f"nbflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a notebook's flow headless (no Jupyter, no kernel)")
    run.add_argument("notebook", help="path of the .ipynb file")
    add_run_arguments(run)
    run.set_defaults(handler=cmd_run)

    export = sub.add_parser("export", help="write a notebook's flow as a standalone Python module")
    export.add_argument("notebook", help="path of the .ipynb file")
    export.add_argument("-o", "--output", help="the module to write (default: NOTEBOOK.py)")
    export.set_defaults(handler=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from nbflow.core.errors import NbflowError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.handler(args))
    except NbflowError as exc:
        print(f"nbflow {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nbflow {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
