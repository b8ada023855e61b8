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
    """The keywords of a cell's task options that differ from the defaults (None: left out)."""
    keywords = {
        "shell": options.shell or None,
        "retries": options.retries or None,
        "retry_delay": options.retry_delay or None,
        "timeout": options.timeout,
        "cache_for": options.cache_for,
        "trigger": None if options.trigger == "all_successful" else options.trigger,
        "tags": list(options.tags) or None,
        "upstream": list(options.upstream) or None,
        "mutates": list(options.mutates) or None,
        "handlers": [list(pair) for pair in options.handlers] or None,
        "map": list(options.map) or None,
        "starts": options.starts,
        "wait": None if options.wait else False,
    }
    return "".join(f", {name}={value!r}" for name, value in keywords.items() if value is not None)


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
