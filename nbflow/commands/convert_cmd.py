"""``nbflow convert``: an existing notebook as an nbflow notebook, with a report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse


def cmd_convert(args: argparse.Namespace) -> int:
    import nbformat

    from nbflow.cells.convert import convert, read

    source = Path(args.notebook)
    out = Path(args.output) if args.output else source.with_name(f"{source.stem}.nbflow.ipynb")
    if out.resolve() == source.resolve() and not args.in_place:
        print(f"nbflow convert: {out} is the notebook itself; pass --in-place to overwrite it")
        return 2
    conversion = convert(read(source), name=source.stem)
    nbformat.write(conversion.notebook, str(out))
    report = conversion.report()
    if args.report:
        Path(args.report).write_text(report + "\n")
    print(f"wrote {out}: {report.splitlines()[0]}")
    if not args.quiet:
        print("\n".join(report.splitlines()[1:]))
    print(f"run it headless with: nbflow run {out}")
    return 0


def add(sub: argparse._SubParsersAction) -> None:
    convert = sub.add_parser(
        "convert",
        help="turn an existing notebook into an nbflow notebook (%%setup, %%task cells) with a report",
    )
    convert.add_argument("notebook", help="path of the .ipynb file")
    convert.add_argument("-o", "--output", help="the notebook to write (default: NOTEBOOK.nbflow.ipynb)")
    convert.add_argument("--in-place", action="store_true", help="allow -o to name the notebook itself")
    convert.add_argument("--report", metavar="FILE", help="also write the report to FILE")
    convert.add_argument("--quiet", action="store_true", help="print only the summary line")
    convert.set_defaults(handler=cmd_convert)
