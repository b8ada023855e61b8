"""Export the notebook's flow as a standalone, readable Python module.

The module holds the setup, params and task cells in task order, as the
cell sources themselves, and rebuilds the flow with the same analysis, so it
has exactly the notebook's edges. ``python flow.py -p name=value`` runs it;
importing it runs nothing (``build_flow()`` makes the flow).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbflow._version import __version__

if TYPE_CHECKING:
    from nbflow.cells.cellflow import NotebookFlow
    from nbflow.cells.cells import TaskOptions


def _literal(source: str) -> str:
    text = source.strip("\n")
    if "'''" not in text and not text.endswith("\\") and "\r" not in text:
        return f"r'''\n{text}\n'''"
    return repr(text + "\n")


def _options(options: TaskOptions) -> str:
    parts = []
    if options.shell:
        parts.append("shell=True")
    if options.retries:
        parts.append(f"retries={options.retries}")
    if options.retry_delay:
        parts.append(f"retry_delay={options.retry_delay!r}")
    if options.timeout is not None:
        parts.append(f"timeout={options.timeout!r}")
    if options.cache_for is not None:
        parts.append(f"cache_for={options.cache_for!r}")
    if options.trigger != "all_successful":
        parts.append(f"trigger={options.trigger!r}")
    if options.tags:
        parts.append(f"tags={list(options.tags)!r}")
    if options.upstream:
        parts.append(f"upstream={list(options.upstream)!r}")
    if options.mutates:
        parts.append(f"mutates={list(options.mutates)!r}")
    if options.handlers:
        parts.append(f"handlers={[list(pair) for pair in options.handlers]!r}")
    if options.map:
        parts.append(f"map={list(options.map)!r}")
    if options.starts is not None:
        parts.append(f"starts={options.starts!r}")
    if not options.wait:
        parts.append("wait=False")
    return "".join(f", {p}" for p in parts)


def export_module(flow: NotebookFlow, *, source: str = "a notebook") -> str:
    """The source of a standalone module that rebuilds and runs the notebook's flow."""
    lines = [
        f'"""Flow {flow.name!r}, exported by nbflow {__version__} from {source}.',
        "",
        "Run it:    python this_file.py [-p name=value ...] [--executor local|threads|dask] [--output-dir DIR]",
        "Import it: build_flow() returns the engine Flow; importing runs nothing.",
        '"""',
        "",
        "from nbflow.terminal.exported import NotebookModule",
        "",
        f"nb = NotebookModule({flow.name!r})",
    ]
    if flow.schedule is not None:
        lines.append(f"nb.schedule({flow.schedule.to_dict()!r})")
    for cell in flow.setup_cells:
        lines += ["", f"nb.setup({_literal(cell.source)})"]
    for event, handler in flow.flow_handlers:
        lines.append(f"nb.on({event!r}, {handler!r})")
    for cell in flow.params_cells:
        lines += ["", f"nb.params({_literal(cell.source)})"]
    for name in flow.task_names:
        cell = flow.task_cell(name)
        lines += ["", f"nb.task({name!r}, {_literal(cell.source)}{_options(cell.options)})"]
    lines += [
        "",
        "",
        "def build_flow():",
        '    """The engine Flow of this notebook."""',
        "    return nb.build()",
        "",
        "",
        'if __name__ == "__main__":',
        "    raise SystemExit(nb.main())",
        "",
    ]
    return "\n".join(lines)
