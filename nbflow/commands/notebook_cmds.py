"""``nbflow run`` and ``nbflow export``: a notebook's flow without Jupyter."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse


def cmd_run(args: argparse.Namespace) -> int:
    """``nbflow run NOTEBOOK``."""
    from nbflow.cells.ipynb import flow_from_notebook
    from nbflow.terminal.headless import run_with_arguments

    return run_with_arguments(flow_from_notebook(args.notebook), args)


def cmd_export(args: argparse.Namespace) -> int:
    """``nbflow export NOTEBOOK``."""
    from nbflow.cells.export import export_module
    from nbflow.cells.ipynb import flow_from_notebook

    notebook = flow_from_notebook(args.notebook)
    notebook.build()  # a flow that cannot run headless is not exported
    out = Path(args.output) if args.output else Path(args.notebook).with_suffix(".py")
    out.write_text(export_module(notebook, source=Path(args.notebook).name))
    print(f"wrote {out} ({len(notebook.task_names)} tasks); run it with: python {out}")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    """The notebook commands: run and export."""
    from nbflow.terminal.headless import add_run_arguments

    run = sub.add_parser("run", help="run a notebook's flow headless (no Jupyter, no kernel)")
    run.add_argument("notebook", help="path of the .ipynb file")
    add_run_arguments(run)
    run.set_defaults(handler=cmd_run)

    export = sub.add_parser("export", help="write a notebook's flow as a standalone Python module")
    export.add_argument("notebook", help="path of the .ipynb file")
    export.add_argument("-o", "--output", help="the module to write (default: NOTEBOOK.py)")
    export.set_defaults(handler=cmd_export)
