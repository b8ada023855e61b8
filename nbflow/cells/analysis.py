"""What a cell defines and uses: the input to dependency inference (DESIGN 2).

Two passes over a cell, after IPython syntax (line magics, ``!cmd``) is
turned into Python:

1. An ordered walk of the *top level*, in evaluation order, records each name
   bound (assignment, augmented/annotated assignment, import, def, class,
   for/with/except targets, walrus, match captures, ``del``, and ``df[...] =``
   / ``obj.attr =`` which rebind their base name) and each name loaded before
   the cell has bound it: those are the cell's ``uses``.
2. ``symtable`` (Python's own scoping) finds the free names of nested scopes:
   functions, lambdas, classes and comprehensions. A free name the cell binds
   in an *earlier* statement is local; one it binds in the same statement or
   later (``def f(): return k`` ... ``k = 2``) is a ``weak use``: it links to an
   earlier task that defines it, and is never a hidden dependency. Builtins
   are weak uses too (a task may shadow ``list``).
"""

from __future__ import annotations

import ast
import builtins
import symtable
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

from nbflow.cells.magiccode import MAGIC_CALL as _MAGIC_CALL
from nbflow.cells.magiccode import TIMEIT_SCOPE, inline_magic_code
from nbflow.core.errors import NotebookError

if TYPE_CHECKING:
    from collections.abc import Iterator

# Names IPython puts in every namespace; never dependencies.
_IPYTHON_NAMES = frozenset({"get_ipython", "display", "In", "Out", "exit", "quit", "_", "__", "___"})
_BUILTINS = frozenset(dir(builtins)) | _IPYTHON_NAMES

# Method calls that mutate their receiver in place: invisible to name-based
# inference, so `%flow check` warns about them.
_MUTATORS = frozenset(
    {
        "append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse",
        "update", "setdefault", "popitem", "add", "discard", "difference_update",
        "intersection_update", "symmetric_difference_update", "__setitem__", "__delitem__",
        # scikit-learn style estimators learn in place
        "fit", "partial_fit", "fit_transform", "fit_predict", "set_params",
    }
)  # fmt: skip


@dataclass(frozen=True)
class CellAnalysis:
    """Names a cell binds and reads, each in order of first appearance."""

    defines: tuple[str, ...]
    uses: tuple[str, ...]
    weak_uses: tuple[str, ...] = ()
    mutations: tuple[str, ...] = ()
    star_imports: tuple[str, ...] = ()
    python: str = field(default="", compare=False, repr=False)
    #: Inputs changed in place by item or attribute assignment (``df["x"] = ...``): also in
    #: ``defines``, so later readers get the change; parallel readers must not overlap it.
    writes_into: tuple[str, ...] = ()


def transform_ipython(source: str) -> str:
    """IPython syntax (``%magic``, ``!cmd``, ``x = !cmd``) as plain Python."""
    if "%" not in source and "!" not in source and "?" not in source:
        return source
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _base_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Starred):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


class _TopLevel(ast.NodeVisitor):
    """Walks top-level statements in evaluation order; stops at nested scopes."""

    def __init__(self) -> None:
        self.first_bind: dict[str, int] = {}
        self.uses: dict[str, None] = {}
        self.mutations: dict[str, None] = {}
        self.writes_into: dict[str, None] = {}
        self.star_imports: list[str] = []
        self.statement = 0
        # Free names of comprehensions with their statement: since Python 3.12 (PEP 709)
        # symtable inlines comprehensions, so the AST is the one source on every version.
        self.scoped: list[tuple[str, int]] = []
        self.type_params: frozenset[str] = frozenset()

    # -- bookkeeping --------------------------------------------------------

    def load(self, name: str) -> None:
        if name not in self.first_bind and name not in self.type_params and not _is_dunder(name):
            self.uses.setdefault(name)

    def bind(self, name: str) -> None:
        self.first_bind.setdefault(name, self.statement)

    def target(self, node: ast.expr) -> None:
        """Bind an assignment target; ``a[i] = v`` and ``a.x = v`` read then rebind ``a``."""
        if isinstance(node, ast.Name):
            self.bind(node.id)
        elif isinstance(node, ast.Tuple | ast.List):
            for elt in node.elts:
                self.target(elt)
        elif isinstance(node, ast.Starred):
            self.target(node.value)
        elif isinstance(node, ast.Attribute | ast.Subscript):
            self.visit(node)  # loads the base and any index expressions
            base = _base_name(node)
            if base is not None:
                if base not in self.first_bind:
                    self.writes_into.setdefault(base)
                self.bind(base)
        else:
            self.visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.load(node.id)
        elif isinstance(node.ctx, ast.Store):
            self.bind(node.id)
        else:  # del x: needs x, then x is (un)bound by this cell
            self.load(node.id)
            self.bind(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        # Loads only: a Store context is handled by target().
        self.visit(node.value)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        self.visit(node.value)
        self.visit(node.slice)

    # -- statements in evaluation order ---------------------------------------------

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for t in node.targets:
            self.target(t)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self.load(node.target.id)
        self.target(node.target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.annotation)
        if node.value is not None or not isinstance(node.target, ast.Name):
            self.target(node.target)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self.target(node.target)
        for stmt in [*node.body, *node.orelse]:
            self.visit(stmt)

    visit_AsyncFor = visit_For

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self.target(item.optional_vars)
        for stmt in node.body:
            self.visit(stmt)

    visit_AsyncWith = visit_With

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.bind(node.name)
        for stmt in node.body:
            self.visit(stmt)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for expr in node.decorator_list:
            self.visit(expr)
        with self._type_params(node):
            self._visit_arguments(node.args)
            if node.returns is not None:
                self.visit(node.returns)
        self.bind(node.name)

    @contextmanager
    def _type_params(self, node: ast.AST) -> Iterator[None]:
        """PEP 695 type parameters (``def f[U](u: U)``) are names of their own scope, never uses."""
        names = {p.name for p in getattr(node, "type_params", ())}
        saved = self.type_params
        self.type_params = saved | names
        try:
            yield
        finally:
            self.type_params = saved

    def visit_TypeAlias(self, node: ast.AST) -> None:
        # ``type A[T] = ...``: the value is evaluated lazily in its own scope (symtable sees it).
        self.target(node.name)  # type: ignore[attr-defined]

    visit_AsyncFunctionDef = visit_FunctionDef

    def _visit_arguments(self, args: ast.arguments) -> None:
        for default in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
            self.visit(default)
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None and arg.annotation is not None:
                self.visit(arg.annotation)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_arguments(node.args)  # the body is a nested scope

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in node.decorator_list:
            self.visit(expr)
        with self._type_params(node):
            for expr in [*node.bases, *(k.value for k in node.keywords)]:
                self.visit(expr)
        self.bind(node.name)

    def _visit_comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp
    ) -> None:
        # Only the first iterable runs in this scope; walrus targets bind here too.
        self.visit(node.generators[0].iter)
        self.scoped.extend((name, self.statement) for name in _comprehension_free(node, skip_first=True))
        for target in _walrus_targets(node):
            self.bind(target)

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _visit_comprehension

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self.bind(node.target.id)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.bind(alias.asname or alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                self.star_imports.append(node.module or ".")
            else:
                self.bind(alias.asname or alias.name)

    def visit_Delete(self, node: ast.Delete) -> None:
        for t in node.targets:
            if isinstance(t, ast.Name):
                self.load(t.id)
                self.bind(t.id)
            else:
                self.target(t)

    def visit_Global(self, node: ast.Global | ast.Nonlocal) -> None:  # noqa: ARG002 - module-level global is a no-op
        return None

    visit_Nonlocal = visit_Global

    def visit_Match(self, node: ast.Match) -> None:
        self.visit(node.subject)
        for case in node.cases:
            self._pattern(case.pattern)
            if case.guard is not None:
                self.visit(case.guard)
            for stmt in case.body:
                self.visit(stmt)

    def _pattern(self, pattern: ast.pattern) -> None:
        if isinstance(pattern, ast.MatchValue):
            self.visit(pattern.value)
        elif isinstance(pattern, ast.MatchSequence | ast.MatchOr):
            for p in pattern.patterns:
                self._pattern(p)
        elif isinstance(pattern, ast.MatchMapping):
            for key in pattern.keys:
                self.visit(key)
            for p in pattern.patterns:
                self._pattern(p)
            if pattern.rest:
                self.bind(pattern.rest)
        elif isinstance(pattern, ast.MatchClass):
            self.visit(pattern.cls)
            for p in [*pattern.patterns, *pattern.kwd_patterns]:
                self._pattern(p)
        elif isinstance(pattern, ast.MatchStar):
            if pattern.name:
                self.bind(pattern.name)
        elif isinstance(pattern, ast.MatchAs):
            if pattern.pattern is not None:
                self._pattern(pattern.pattern)
            if pattern.name:
                self.bind(pattern.name)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute):
            base = _base_name(func.value)
            inplace = any(
                k.arg == "inplace" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in node.keywords
            )
            if base is not None and (func.attr in _MUTATORS or inplace):
                self.mutations.setdefault(base)
        self.generic_visit(node)


_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
_SCOPES = (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _target_names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _comprehension_free(node: ast.AST, *, skip_first: bool = False) -> list[str]:
    """Names a comprehension reads from outside itself (its loop variables are its own).
    Lambdas and functions inside are left to symtable, which still scopes them."""
    found: list[str] = []

    def visit(current: ast.AST, bound: frozenset[str]) -> None:
        if isinstance(current, ast.Name):
            if isinstance(current.ctx, ast.Load) and current.id not in bound:
                found.append(current.id)
        elif isinstance(current, _COMPREHENSIONS):
            inner = bound
            for index, generator in enumerate(current.generators):
                if index or not (skip_first and current is node):
                    visit(generator.iter, inner)
                inner = inner | _target_names(generator.target)
                for condition in generator.ifs:
                    visit(condition, inner)
            parts = [current.key, current.value] if isinstance(current, ast.DictComp) else [current.elt]
            for part in parts:
                visit(part, inner)
        elif not isinstance(current, _SCOPES):
            for child in ast.iter_child_nodes(current):
                visit(child, bound)

    visit(node, frozenset())
    return found


def _class_reads(node: ast.ClassDef) -> list[str]:
    """Names a class body reads before binding them: such a read looks up the module
    (``class Config: lr = lr`` reads the global ``lr``), which symtable reports as local."""
    walker = _TopLevel()
    for stmt in node.body:
        walker.visit(stmt)
    return [n for n in walker.uses if n in walker.first_bind] + [n for n, _ in walker.scoped]


def _global_deletes(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """``global x`` then ``del x`` in a function needs ``x`` (symtable calls it an assignment)."""
    declared: set[str] = set()
    deleted: list[str] = []
    stack: list[ast.AST] = list(node.body)
    while stack:
        current = stack.pop()
        if isinstance(current, ast.Global):
            declared.update(current.names)
        elif isinstance(current, ast.Delete):
            deleted += [t.id for t in current.targets if isinstance(t, ast.Name)]
        if not isinstance(current, _SCOPES):
            stack.extend(ast.iter_child_nodes(current))
    return [n for n in deleted if n in declared]


def _ast_scoped_reads(body: list[ast.stmt]) -> list[tuple[str, int]]:
    """Free reads of class bodies and global deletes, anywhere in the cell, by statement."""
    found: list[tuple[str, int]] = []
    for index, stmt in enumerate(body):
        for current in ast.walk(stmt):
            if isinstance(current, ast.ClassDef):
                found += [(n, index) for n in _class_reads(current)]
            elif isinstance(current, ast.FunctionDef | ast.AsyncFunctionDef):
                found += [(n, index) for n in _global_deletes(current)]
    return found


def _walrus_targets(node: ast.AST) -> list[str]:
    found: list[str] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ast.NamedExpr):
            found.append(current.target.id)
        if isinstance(current, ast.Lambda | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        stack.extend(ast.iter_child_nodes(current))
    return found


def _statement_spans(body: list[ast.stmt]) -> list[tuple[int, int]]:
    spans = []
    for stmt in body:
        start = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", []))])
        spans.append((start, stmt.end_lineno or stmt.lineno))
    return spans


def _nested_names(python: str, body: list[ast.stmt]) -> tuple[list[tuple[str, int]], list[str]]:
    """(free module-level names of nested scopes with their statement index, names declared global and assigned)."""
    spans = _statement_spans(body)

    def statement_of(line: int) -> int:
        for index, (start, end) in enumerate(spans):
            if start <= line <= end:
                return index
        return len(spans)

    free: list[tuple[str, int]] = []
    declared: list[str] = []
    table = symtable.symtable(python, "<cell>", "exec")  # the caller checked it compiles
    stack = [(child, statement_of(child.get_lineno())) for child in table.get_children()]
    while stack:
        scope, index = stack.pop(0)
        for sym in scope.get_symbols():
            name = sym.get_name()
            if sym.is_declared_global() and sym.is_assigned():
                declared.append(name)
            if sym.is_referenced() and sym.is_global():
                free.append((name, index))
        stack.extend((child, index) for child in scope.get_children())
    return free, declared


def _checked_module(python: str, where: str, first_line: int = 1) -> ast.Module:
    """The cell's AST; any syntax error, including those only the compiler or symtable
    raise (``global x`` after ``x = 1``, ``return`` outside a function), is a NotebookError."""
    try:
        module = ast.parse(python)
        # Top-level await is fine in a cell, as in Jupyter.
        compile(module, "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
        symtable.symtable(python, "<cell>", "exec")
    except (SyntaxError, ValueError) as exc:
        line = (getattr(exc, "lineno", None) or 1) + first_line - 1  # the cell's own line numbers
        text = (getattr(exc, "text", None) or "").rstrip()
        message = getattr(exc, "msg", None) or str(exc)
        raise NotebookError(
            f"syntax error in {where}, line {line}: {message}"
            + (f"\n    {text}" if text else "")
            + "\nFix the cell and run it again; nothing else was changed."
        ) from None
    return module


def analyze(source: str, *, where: str = "the cell", first_line: int = 1) -> CellAnalysis:
    """Defines and uses of a cell; a syntax error names ``where`` and the line, counted
    from ``first_line`` (the line of the notebook cell ``source`` starts at)."""
    return _analyze(source, where, first_line)


@lru_cache(maxsize=1024)
def _analyze(source: str, where: str, first_line: int = 1) -> CellAnalysis:
    try:
        python = transform_ipython(source)
    except Exception as exc:  # IPython's transformer rejects some malformed magics
        raise NotebookError(f"cannot read {where}: {type(exc).__name__}: {exc}") from None
    module = _checked_module(python, where, first_line)
    analysed = python
    expanded: list[str] = []
    if _MAGIC_CALL in python:
        module, expanded = inline_magic_code(module)
        analysed = ast.unparse(module)
        module = _checked_module(analysed, where)
    walker = _TopLevel()
    for index, stmt in enumerate(module.body):
        walker.statement = index
        walker.visit(stmt)
    free, declared = _nested_names(analysed, module.body)
    free += walker.scoped + _ast_scoped_reads(module.body)
    for name in declared:
        walker.first_bind.setdefault(name, len(module.body))

    uses: dict[str, None] = {}
    weak: dict[str, None] = {}
    for name in walker.uses:
        (weak if name in _BUILTINS else uses).setdefault(name)
    for name, index in free:
        if _is_dunder(name) or name in _IPYTHON_NAMES:
            continue
        bound_at = walker.first_bind.get(name)
        if bound_at is not None and bound_at < index:
            continue  # the cell's own binding, made before the statement holding the scope
        if bound_at is not None or name in _BUILTINS:
            weak.setdefault(name)
        elif name not in uses:
            uses.setdefault(name)
    for name in expanded:
        if not _is_dunder(name):
            weak.setdefault(name)
    for name in uses:
        weak.pop(name, None)
    walker.first_bind.pop(TIMEIT_SCOPE, None)
    defines = tuple(walker.first_bind)
    mutations = tuple(m for m in walker.mutations if m not in defines or m in uses)
    return CellAnalysis(
        defines=defines,
        uses=tuple(n for n in uses if n not in _IPYTHON_NAMES),
        weak_uses=tuple(n for n in weak if n not in _IPYTHON_NAMES),
        mutations=mutations,
        star_imports=tuple(walker.star_imports),
        python=python,
        writes_into=tuple(n for n in walker.writes_into if n in uses),
    )
