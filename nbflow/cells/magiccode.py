"""The Python inside IPython magics, made visible to the dependency analysis.

IPython turns ``%time y = f(x)`` into ``get_ipython().run_line_magic('time',
'y = f(x)')``: a string the analysis cannot see into. This module rewrites such
calls, *for the analysis only*, into the code they run:

* ``%time`` / ``%prun`` / ``%%time``: the statements themselves (they run in
  the cell's namespace, so their assignments define names);
* ``%timeit`` / ``%%timeit``: the statements inside a function (they run in a
  namespace of their own: they read the cell's names but define none);
* any other magic and ``!cmd``: the ``{name}`` and ``$name`` IPython expands
  in the argument are *optional* reads (IPython leaves ``$HOME`` alone when no
  Python name ``HOME`` exists), so they are returned apart, as weak uses.

The executed code is never changed.
"""

from __future__ import annotations

import ast
import re

MAGIC_CALL = "get_ipython()."
#: Name of the function wrapping %timeit code; the analysis drops it from a cell's definitions.
TIMEIT_SCOPE = "__nbflow_timeit__"

_BINDING = frozenset({"time", "prun"})
_SCOPED = frozenset({"timeit"})
#: Magics whose argument (or cell body) is Python code.
CODE_MAGICS = _BINDING | _SCOPED
# Options that take a value, per magic (IPython's own option strings).
_VALUED = {"timeit": "nrp", "prun": "DTls", "time": ""}
_EXPANDED = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)[^{}]*\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def strip_options(magic: str, line: str) -> str:
    """The statement of a ``%timeit -n 10 -r 3 f(x)`` style line, without its options."""
    valued = _VALUED.get(magic, "")
    rest = line.lstrip()
    while len(rest) > 1 and rest[0] == "-" and rest[1].isalpha():
        token, _, after = rest.partition(" ")
        flag = token[1]
        if flag in valued and len(token) == 2:  # the value is the next token
            _, _, after = after.lstrip().partition(" ")
        rest = after.lstrip()
    return rest


def _magic_call(node: ast.AST) -> tuple[str, str, list[ast.expr]] | None:
    """(method, magic name, argument nodes) of ``get_ipython().run_*_magic(...)``/``system``/``getoutput``."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return None
    owner = node.func.value
    if not (
        isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "get_ipython"
    ):
        return None
    method = node.func.attr
    args = node.args
    if method in ("run_line_magic", "run_cell_magic") and args and isinstance(args[0], ast.Constant):
        return method, str(args[0].value), args[1:]
    if method in ("system", "getoutput"):
        return method, "", args
    return None


def _text(node: ast.expr) -> str:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""


def _parse(code: str) -> list[ast.stmt] | None:
    from nbflow.cells.analysis import transform_ipython

    try:
        return ast.parse(transform_ipython(code)).body
    except (SyntaxError, ValueError):
        return None  # a malformed magic argument fails when it runs, like in Jupyter


def _expanded_names(texts: list[str]) -> list[str]:
    return [m.group(1) or m.group(2) for text in texts for m in _EXPANDED.finditer(text)]


def _scoped(body: list[ast.stmt]) -> ast.stmt:
    """``def __nbflow_timeit__(): <body>``: names read inside are free names of a scope."""
    function = ast.parse(f"def {TIMEIT_SCOPE}():\n    pass").body[0]
    assert isinstance(function, ast.FunctionDef)
    function.body = body or [ast.Pass()]
    return function


def _statement_code(method: str, magic: str, args: list[ast.expr]) -> list[ast.stmt] | None:
    """What a magic call standing as a whole statement runs, as statements (None: unknown)."""
    if method == "run_line_magic" and magic in _BINDING | _SCOPED and args:
        body = _parse(strip_options(magic, _text(args[0])))
        if body is None:
            return None
        return body if magic in _BINDING else [_scoped(body)]
    if method == "run_cell_magic" and magic in _BINDING | _SCOPED and len(args) >= 2:
        setup = _parse(strip_options(magic, _text(args[0]))) or []
        body = _parse(_text(args[1]))
        if body is None:
            return None
        return [*setup, *body] if magic in _BINDING else [_scoped([*setup, *body])]
    return None


class _Inliner(ast.NodeTransformer):
    def __init__(self) -> None:
        self.expanded: list[str] = []

    def visit_Expr(self, node: ast.Expr) -> ast.AST | list[ast.stmt]:
        """A magic call standing as a statement becomes the statements it runs."""
        call = _magic_call(node.value)
        if call is not None:
            code = _statement_code(*call)
            if code is not None:
                return [self.visit(stmt) for stmt in code]
        return self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        """A magic call inside an expression: its code as an expression, or its expansions."""
        call = _magic_call(node)
        if call is None:
            return self.generic_visit(node)
        method, magic, args = call
        if method == "run_line_magic" and magic in _BINDING | _SCOPED and args:
            # In an expression (``r = %timeit -o f(x)``): the statement is an expression.
            try:
                return ast.parse(strip_options(magic, _text(args[0])), mode="eval").body
            except SyntaxError:
                return node
        self.expanded += _expanded_names([_text(a) for a in args])
        return node


def inline_magic_code(module: ast.Module) -> tuple[ast.Module, list[str]]:
    """``module`` with magic calls replaced by the code they run (see the module docstring),
    and the names IPython may expand into magic arguments."""
    inliner = _Inliner()
    inlined = inliner.visit(module)
    return ast.fix_missing_locations(inlined), inliner.expanded
