"""Dependency analysis: hand-written cases (table) and generated programs checked by running them."""

from __future__ import annotations

import builtins
import sys
import textwrap
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbflow.cells.analysis import analyze
from nbflow.core.errors import NotebookError


@dataclass
class Case:
    id: str
    code: str
    defines: list[str]
    uses: list[str]
    weak: list[str] = field(default_factory=list)
    mutations: list[str] = field(default_factory=list)


CASES = [
    Case("assign", "x = 1", ["x"], []),
    Case("use-then-rebind", "df = df.dropna()", ["df"], ["df"]),
    Case("rebind-then-use", "df = load()\nsummary = df.describe()", ["df", "summary"], ["load"]),
    Case("use-before-and-after-rebinding", "a = b\nb = 2\nc = b", ["a", "b", "c"], ["b"]),
    Case("augmented", "total += x", ["total"], ["x", "total"]),
    Case("augmented-after-bind", "total = 0\ntotal += x", ["total"], ["x"]),
    Case("annotated", "x: int = y", ["x"], ["y"], ["int"]),
    Case("annotation-only-binds-nothing", "x: Sequence", [], ["Sequence"]),
    Case("annotated-attribute", "obj.attr: int = 3", ["obj"], ["obj"], ["int"]),
    Case("walrus", "if (n := len(items)) > 3:\n    big = n", ["n", "big"], ["items"], ["len"]),
    Case("star-assign", "first, *rest = seq", ["first", "rest"], ["seq"]),
    Case("nested-unpack", "(a, [b, c]) = pair", ["a", "b", "c"], ["pair"]),
    Case("chained-assign", "a = b = value", ["a", "b"], ["value"]),
    Case("del", "del tmp", ["tmp"], ["tmp"]),
    Case("del-after-bind", "tmp = 1\ndel tmp", ["tmp"], []),
    Case("del-subscript", "del cache['k']", ["cache"], ["cache"]),
    Case("subscript-assign", "df['x'] = df['a'] * k", ["df"], ["df", "k"]),
    Case("attribute-assign", "model.weights = w", ["model"], ["model", "w"]),
    Case("deep-attribute-assign", "a.b[i].c = v", ["a"], ["v", "a", "i"]),
    Case("import", "import numpy as np\nimport os.path", ["np", "os"], []),
    Case("from-import", "from math import pi, sqrt as root", ["pi", "root"], []),
    Case("star-import", "from math import *", [], []),
    Case("def", "def f(x, y=default):\n    return x + y + scale", ["f"], ["default", "scale"]),
    Case("def-annotations", "def f(x: Frame) -> Result:\n    pass", ["f"], ["Frame", "Result"]),
    Case("decorator", "@cache\ndef f():\n    return 1", ["f"], ["cache"]),
    Case(
        "recursion-is-weak",
        "def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)",
        ["fact"],
        [],
        ["fact"],
    ),
    Case("same-statement-binding-is-weak", "b = (lambda: b)()", ["b"], [], ["b"]),
    Case(
        "free-name-bound-later-is-weak",
        "def f():\n    return k\nk = 2\nresult = f()",
        ["f", "k", "result"],
        [],
        ["k"],
    ),
    Case("free-name-bound-earlier-is-local", "k = 2\ndef f():\n    return k", ["k", "f"], []),
    Case("free-name-never-bound-is-a-use", "def f():\n    return threshold", ["f"], ["threshold"]),
    Case("lambda", "g = lambda x: x * factor", ["g"], ["factor"]),
    Case("lambda-default", "g = lambda x=base: x", ["g"], ["base"]),
    Case(
        "class-body",
        "class A(Base):\n    size = n\n    def m(self):\n        return size",
        ["A"],
        ["Base", "n", "size"],
    ),
    Case(
        "class-attr-invisible-to-method",
        "class A:\n    x = 1\n    def m(self):\n        return x",
        ["A"],
        ["x"],
    ),
    Case("list-comprehension", "ys = [x * w for x in xs if x > lo]", ["ys"], ["xs", "w", "lo"]),
    Case("comprehension-var-does-not-leak", "ys = [x for x in xs]\nz = x", ["ys", "z"], ["xs", "x"]),
    Case("nested-comprehension", "m = [[i * j for j in cols] for i in rows]", ["m"], ["rows", "cols"]),
    Case("dict-comprehension", "d = {k: v for k, v in pairs.items()}", ["d"], ["pairs"]),
    Case("generator", "s = sum(x for x in data)", ["s"], ["data"], ["sum"]),
    Case("walrus-in-comprehension-binds-outside", "ys = [y := f(x) for x in xs]", ["y", "ys"], ["xs", "f"]),
    Case("for", "for i in range(n):\n    acc = i", ["i", "acc"], ["n"], ["range"]),
    Case("for-else", "for i in items:\n    pass\nelse:\n    done = True", ["i", "done"], ["items"]),
    Case("while", "while x > 0:\n    x = x - step", ["x"], ["x", "step"]),
    Case("with", "with open(path) as fh:\n    text = fh.read()", ["fh", "text"], ["path"], ["open"]),
    Case("with-tuple-target", "with ctx as (a, b):\n    c = a + b", ["a", "b", "c"], ["ctx"]),
    Case(
        "try-except-as",
        "try:\n    v = risky()\nexcept ValueError as e:\n    err = e\nfinally:\n    done = 1",
        ["v", "e", "err", "done"],
        ["risky"],
        ["ValueError"],
    ),
    Case(
        "global-in-function-defines",
        "def setup():\n    global conn\n    conn = make()",
        ["setup", "conn"],
        ["make"],
    ),
    Case("global-read-in-function", "def f():\n    global counter\n    return counter", ["f"], ["counter"]),
    Case(
        "nonlocal",
        "def outer():\n    x = 1\n    def inner():\n        nonlocal x\n        x = 2\n    return inner",
        ["outer"],
        [],
    ),
    Case("fstring", "msg = f'{name!r} has {count:>{width}} rows'", ["msg"], ["name", "count", "width"]),
    Case("builtins-are-weak", "n = len(xs)\nprint(n)", ["n"], ["xs"], ["len", "print"]),
    Case("shadowed-builtin-used", "list = [1]\ny = list", ["list", "y"], []),
    Case("dunder-ignored", "name = __name__", ["name"], []),
    Case(
        "match",
        "match cmd:\n    case Point(x=px, y=0):\n        r = px\n    case [first, *others]:\n        r = first\n    case {'k': v, **rest}:\n        r = v\n    case Color.RED | None as c:\n        r = c",
        ["px", "r", "first", "others", "v", "rest", "c"],
        ["cmd", "Point", "Color"],
    ),
    Case(
        "mutation-warning",
        "items.append(1)\nframe.dropna(inplace=True)",
        [],
        ["items", "frame"],
        [],
        ["items", "frame"],
    ),
    Case("mutation-of-own-name-is-fine", "out = []\nout.append(1)", ["out"], []),
    Case("async-def", "async def fetch():\n    return await client.get(url)", ["fetch"], ["client", "url"]),
    Case("line-magic-time-binds", "%time x = 1\ny = z", ["x", "y"], ["z"]),
    Case("line-magic-time-reads", "%time y = f(x)", ["y"], ["f", "x"]),
    Case("line-magic-timeit-reads-only", "%timeit np.histogram(x, bins)", [], ["np", "x", "bins"]),
    Case("line-magic-timeit-options", "%timeit -n 10 -r 3 -q f(data)", [], ["f", "data"]),
    Case("line-magic-timeit-assigns-nothing", "%timeit y = g(x)", [], ["g", "x"]),
    Case("line-magic-timeit-in-expression", "r = %timeit -o f(x)", ["r"], ["f", "x"]),
    Case("line-magic-prun", "%prun -s cumulative result = solve(grid)", ["result"], ["solve", "grid"]),
    Case("cell-magic-time", "%%time\ny = f(x)\nz = y + 1", ["y", "z"], ["f", "x"]),
    Case("cell-magic-timeit", "%%timeit -n 3 k = 2\nfit(X, k)", [], ["fit", "X"]),
    Case("other-magic-expansion-is-weak", "%env DATA={data_dir}", [], [], ["data_dir"]),
    Case("shell-capture", "files = !ls {folder}\nn = len(files)", ["files", "n"], [], ["len", "folder"]),
    Case("shell-env-variable-is-weak", "!echo $HOME", [], [], ["HOME"]),
    Case("class-body-reads-global-before-binding", "class Config:\n    lr = lr", ["Config"], ["lr"]),
    Case(
        "class-body-binding-earlier-in-cell",
        "lr = 0.1\nclass Config:\n    lr = lr",
        ["lr", "Config"],
        [],
    ),
    Case("class-body-comprehension", "class C:\n    ys = [x * w for x in xs]", ["C"], ["xs", "w"]),
    Case("comprehension-pep709", "ys = [x * w for x in xs]", ["ys"], ["xs", "w"]),
    Case("dict-comprehension-pep709", "d = {k: v * w for k, v in items}", ["d"], ["items", "w"]),
    Case("set-comprehension-condition", "s = {x for x in xs if x > lo}", ["s"], ["xs", "lo"]),
    Case(
        "del-after-global-in-function",
        "def drop():\n    global cache\n    del cache",
        ["drop", "cache"],
        [],
        ["cache"],
    ),
    Case("shell-escape", "!echo hi\nout = 1", ["out"], []),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_analysis_table(case: Case) -> None:
    result = analyze(case.code)
    assert list(result.defines) == case.defines
    assert sorted(result.uses) == sorted(case.uses)
    assert sorted(result.weak_uses) == sorted(case.weak)
    assert sorted(result.mutations) == sorted(case.mutations)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="PEP 695 syntax needs Python 3.12")
@pytest.mark.parametrize(
    ("code", "defines", "uses"),
    [
        ("def first[U](items: list[U]) -> U:\n    return items[0]", ["first"], []),
        ("class Box[T](Base[T]):\n    item: T", ["Box"], ["Base"]),
        ("type Pair[K] = tuple[K, Other]", ["Pair"], ["Other"]),
    ],
)
def test_pep695_type_parameters_are_not_uses(code: str, defines: list[str], uses: list[str]) -> None:
    result = analyze(code)
    assert list(result.defines) == defines
    assert sorted(result.uses) == sorted(uses)


@pytest.mark.parametrize(
    ("code", "line", "reason"),
    [
        ("def f():\n    x = 1\n    global x", 3, "assigned to before global declaration"),
        ("nonlocal x", 1, "nonlocal declaration not allowed at module level"),
        ("for i in range(3):\n    pass\nbreak", 3, "'break' outside loop"),
    ],
)
def test_errors_only_the_compiler_raises_are_notebook_errors(code: str, line: int, reason: str) -> None:
    with pytest.raises(NotebookError) as info:
        analyze(code, where="cell 4 of demo.ipynb")
    assert f"syntax error in cell 4 of demo.ipynb, line {line}" in str(info.value)
    assert reason in str(info.value)


def test_top_level_await_is_not_a_syntax_error() -> None:
    result = analyze("data = await fetch(url)")
    assert result.defines == ("data",)
    assert sorted(result.uses) == ["fetch", "url"]


def test_uses_keep_order_of_first_appearance() -> None:
    assert analyze("c = a + b\nd = b + e + a").uses == ("a", "b", "e")


def test_star_import_is_reported() -> None:
    assert analyze("from os.path import *").star_imports == ("os.path",)


def test_syntax_error_names_the_cell_and_line() -> None:
    with pytest.raises(NotebookError) as info:
        analyze("x = 1\ny = (2 +\n", where="task 'clean' (cell 3)")
    message = str(info.value)
    assert "syntax error in task 'clean' (cell 3), line 2" in message
    assert "nothing else was changed" in message


# -- generated programs, checked by running them --------------------------------

NAMES = ["a", "b", "c", "d"]


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> str:
    choice = draw(st.integers(0, 2 if depth < 2 else 1))
    if choice == 0:
        return draw(st.sampled_from(NAMES))
    if choice == 1:
        return str(draw(st.integers(0, 9)))
    return f"({draw(expressions(depth + 1))} + {draw(expressions(depth + 1))})"


@st.composite
def programs(draw: st.DrawFn) -> str:
    lines: list[str] = []
    functions: list[str] = []
    for i in range(draw(st.integers(1, 7))):
        target = draw(st.sampled_from(NAMES))
        expr = draw(expressions())
        kind = draw(st.integers(0, 10))
        if kind == 0:
            lines.append(f"{target} = {expr}")
        elif kind == 1:
            lines.append(f"{target} += {expr}")
        elif kind == 2:
            other = draw(st.sampled_from(NAMES))
            lines.append(f"{target}, {other} = {expr}, {draw(expressions())}")
        elif kind == 3:
            lines.append(f"def f{i}():\n    return {expr}")
            functions.append(f"f{i}")
        elif kind == 4 and functions:
            lines.append(f"{target} = {draw(st.sampled_from(functions))}()")
        elif kind == 5:
            var = draw(st.sampled_from(NAMES))
            lines.append(f"{target} = sum([{var} + {expr} for {var} in range(2)])")
        elif kind == 6:
            lines.append(f"{target} = (lambda: {expr})()")
        elif kind == 7:
            lines.append(f"for {target} in range(2):\n    {draw(st.sampled_from(NAMES))} = {expr}")
        elif kind == 8:
            lines.append(f"if ({target} := {expr}) >= 0:\n    pass")
        elif kind == 9:
            lines.append(f"try:\n    {target} = {expr}\nexcept ZeroDivisionError as err{i}:\n    pass")
        else:
            lines.append(f"{target} = f'{{{expr}}}'.count('1')")
    # Call every function at the end so each free name is really read.
    lines.extend(f"{fn}()" for fn in functions)
    return "\n".join(lines)


def run(code: str, inputs: set[str]) -> dict:
    namespace = {name: 1 for name in inputs}
    exec(compile(code, "<generated>", "exec"), namespace)
    namespace.pop("__builtins__", None)
    return namespace


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_generated_programs_run_with_exactly_their_inputs(code: str) -> None:
    result = analyze(code)
    # Weak uses link to an earlier definer when there is one: provide them, but not builtins.
    inputs = set(result.uses) | {n for n in result.weak_uses if n not in dir(builtins)}
    # 1. The inferred inputs are enough: no NameError.
    namespace = run(code, inputs)
    # 2. Every strong use is needed: without it the cell fails on that name.
    for name in result.uses:
        with pytest.raises(NameError, match=f"'{name}'"):
            run(code, inputs - {name})
    # 3. Defines are exactly the names the cell binds.
    created = set(namespace) - inputs
    assert created <= set(result.defines), textwrap.indent(code, "  ")
    # Except targets are bound only when the exception happens (a declared over-approximation).
    assert {n for n in result.defines if not n.startswith("err")} <= set(namespace)


def test_a_name_read_only_inside_a_line_magic_gets_an_edge() -> None:
    from nbflow.cells.cellflow import NotebookFlow
    from nbflow.cells.cells import cell_from_source

    flow = NotebookFlow("magics")
    for index, source in enumerate(
        [
            "%%task data\nx = list(range(10))\nbins = 4",
            "%%task timing\n%timeit -n 1 -r 1 sorted(x, key=lambda v: v % bins)",
            "%%task timed\n%time total = sum(x)",
            "%%task after\ndouble = total * 2",
        ]
    ):
        flow.add(cell_from_source(source, where=f"cell {index + 1}", index=index))
    resolution = flow.resolve()
    assert resolution.inputs["timing"] == {"x": "data", "bins": "data"}
    assert resolution.inputs["timed"] == {"x": "data"}
    assert resolution.inputs["after"] == {"total": "timed"}  # %time's assignment defines `total`
    assert not resolution.hidden
