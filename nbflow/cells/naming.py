"""Task names derived from cells: readable, never missing, unique in document order.

A ``%%task`` without a name is named after the first name the cell defines (a
``--starts FLOW`` cell after the outcome it binds, ``FLOW_run``);
a cell that defines nothing is named after what it does: ``plt.plot(x)`` is
``plot_x``, ``df.head()`` is ``df_head``, ``%timeit f(x)`` is ``timeit_f_x``,
``(n**2 for n in range(12))`` is ``generator_n``. When nothing readable is
left, ``cell_<number>``. ``unique_name`` adds ``_2``, ``_3``, ... for the
second and later cells deriving the same name.
"""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING

from nbflow.cells.cells import starts_outcome_name

if TYPE_CHECKING:
    from collections.abc import Container

    from nbflow.cells.cells import Cell

_MAX_PARTS = 3
_KINDS = {ast.GeneratorExp: "generator", ast.ListComp: "list", ast.SetComp: "set", ast.DictComp: "dict"}


def _identifier(parts: list[str]) -> str | None:
    text = "_".join(p for p in parts[:_MAX_PARTS] if p)
    text = re.sub(r"\W+", "_", text).strip("_")
    if not text:
        return None
    return text if text[0].isalpha() or text[0] == "_" else f"t_{text}"


def _name_of(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _name_of(node.value)
        return f"{base}_{node.attr}" if base else node.attr
    if isinstance(node, ast.Subscript):
        key = node.slice
        base = _name_of(node.value)
        if isinstance(key, ast.Constant) and isinstance(key.value, str | int):
            return f"{base}_{key.value}"
        return base
    if isinstance(node, ast.Call):
        return _call_parts(node)
    return None


def _first_argument(call: ast.Call) -> str | None:
    for arg in [*call.args, *(k.value for k in call.keywords)]:
        if isinstance(arg, ast.Name | ast.Attribute | ast.Subscript):
            return _name_of(arg)
    return None


def _call_parts(call: ast.Call) -> str | None:
    func = call.func
    argument = _first_argument(call)
    if isinstance(func, ast.Name):
        return f"{func.id}_{argument}" if argument else func.id
    if isinstance(func, ast.Attribute):
        if argument:  # plt.plot(x) -> plot_x: the module alias says little
            return f"{func.attr}_{argument}"
        base = _name_of(func.value)
        return f"{base}_{func.attr}" if base else func.attr
    return _name_of(func)


def _magic_name(call: ast.Call) -> str | None:
    """``get_ipython().run_line_magic('timeit', 'f(x)')`` -> ``timeit_f_x``."""
    from nbflow.cells.magiccode import CODE_MAGICS, strip_options

    func = call.func
    if not (isinstance(func, ast.Attribute) and func.attr in ("run_line_magic", "run_cell_magic")):
        return None
    if not (call.args and isinstance(call.args[0], ast.Constant)):
        return None
    magic = str(call.args[0].value)
    code = call.args[-1]
    inner = None
    if isinstance(code, ast.Constant) and isinstance(code.value, str):
        if magic in CODE_MAGICS:
            inner = expression_name(strip_options(magic, code.value))
        else:  # %matplotlib inline -> matplotlib_inline
            inner = (code.value.split() or [""])[0]
    return f"{magic}_{inner}" if inner else magic


def _expression_parts(node: ast.expr) -> str | None:
    if isinstance(node, ast.Await):
        return _expression_parts(node.value)
    if isinstance(node, ast.Call):
        return _magic_name(node) or _call_parts(node)
    if isinstance(node, ast.Name):
        return f"show_{node.id}"
    if isinstance(node, ast.Attribute | ast.Subscript):
        return _name_of(node)
    if isinstance(node, ast.GeneratorExp | ast.ListComp | ast.SetComp | ast.DictComp):
        targets = [n.id for g in node.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)]
        return "_".join([_KINDS[type(node)], *targets])
    names = [n.id for n in ast.walk(node) if isinstance(n, ast.Name)]
    return "_".join(["expr", *dict.fromkeys(names)]) if names else None


def expression_name(python: str) -> str | None:
    """A readable name for code that defines nothing, from its first expression statement."""
    try:
        body = ast.parse(python).body
    except SyntaxError:
        return None
    for stmt in body:
        if isinstance(stmt, ast.Expr):
            name = _identifier((_expression_parts(stmt.value) or "").split("_"))
            if name:
                return name
    return None


def _shell_name(source: str) -> str:
    for line in source.splitlines():
        words = line.strip().split()
        if words and not words[0].startswith("#"):
            stem = re.sub(r"\W+", "_", words[0].split("/")[-1]).strip("_") or "shell"
            return f"shell_{stem}"
    return "shell"


def derive_task_name(cell: Cell) -> str:
    """The explicit name, else the first name the cell defines, else what it does; never fails
    (a syntax error in the cell still raises, naming the cell)."""
    if cell.options.name:
        return cell.options.name
    if cell.options.shell:
        return _shell_name(cell.source)
    if cell.options.starts is not None:  # named like the outcome it binds: etl_run
        return starts_outcome_name(cell.options.starts)
    analysis = cell.analysis
    if analysis.defines:
        return analysis.defines[0]
    named = expression_name(analysis.python)
    if named:
        return named
    return f"cell_{cell.index + 1}" if cell.index is not None else "cell"


def unique_name(base: str, taken: Container[str]) -> str:
    """``base``, else ``base_2``, ``base_3``, ...: the first not in ``taken``."""
    if base not in taken:
        return base
    number = 2
    while f"{base}_{number}" in taken:
        number += 1
    return f"{base}_{number}"
