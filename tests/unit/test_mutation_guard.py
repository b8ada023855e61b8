"""The mutation guard: inputs changed in place are found, named, remembered and planned for."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from nbflow.cells.fingerprint import fingerprint
from nbflow.cells.guard import Detections
from nbflow.cells.ipynb import flow_from_notebook
from nbflow.terminal.headless import run_notebook_flow
from tests.notebook_helpers import Kernel, write_notebook

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from nbflow.cells.cellflow import NotebookFlow


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"a": np.arange(60.0), "s": [f"r{i}" for i in range(60)]})


def _fit(model: LinearRegression) -> None:
    model.fit(np.arange(10.0).reshape(-1, 1), np.arange(10.0))


CHANGES: list[tuple[str, Callable[[], object], Callable[[object], object]]] = [
    ("drop-inplace", _frame, lambda df: df.drop(index=[3], inplace=True)),  # type: ignore[attr-defined]
    ("one-string-cell", _frame, lambda df: df.__setitem__("s", df["s"].where(df.index != 7, "x"))),  # type: ignore[index]
    ("one-number-cell", _frame, lambda df: df.loc.__setitem__((5, "a"), -1.0)),  # type: ignore[attr-defined]
    ("new-column", _frame, lambda df: df.__setitem__("b", 1)),  # type: ignore[attr-defined]
    ("array-element", lambda: np.zeros(1000), lambda a: a.__setitem__(500, 1.0)),  # type: ignore[attr-defined]
    ("array-sorted", lambda: np.arange(1000)[::-1].copy(), lambda a: a.sort()),  # type: ignore[attr-defined]
    ("nested-list", lambda: [1, [2, 3]], lambda v: v[1].append(4)),  # type: ignore[index]
    ("dict-value", lambda: {"k": [1]}, lambda v: v["k"].append(2)),  # type: ignore[index]
    ("set-add", lambda: {1, 2}, lambda v: v.add(3)),  # type: ignore[attr-defined]
    ("estimator-fit", LinearRegression, _fit),  # type: ignore[arg-type]
    ("rng-drawn-from", lambda: np.random.default_rng(0), lambda r: r.normal()),  # type: ignore[attr-defined]
]


@pytest.mark.parametrize(("make", "change"), [c[1:] for c in CHANGES], ids=[c[0] for c in CHANGES])
def test_fingerprint_sees_changes_in_place(
    make: Callable[[], object], change: Callable[[object], object]
) -> None:
    value = make()
    before = fingerprint(value)
    assert fingerprint(value) == before  # stable while nothing changes
    change(value)
    assert fingerprint(value) != before


READS: list[tuple[str, Callable[[], object], Callable[[object], object]]] = [
    ("describe", _frame, lambda df: df.describe()),  # type: ignore[attr-defined]
    ("column-access", _frame, lambda df: (df["a"].sum(), df.s.str.upper())),  # type: ignore[index, attr-defined]
    ("predict", lambda: LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), lambda m: m.predict([[2.0]])),  # type: ignore[attr-defined]
    ("array-math", lambda: np.arange(10.0), lambda a: (a * 2).sum()),  # type: ignore[operator]
]


@pytest.mark.parametrize(("make", "read"), [c[1:] for c in READS], ids=[c[0] for c in READS])
def test_fingerprint_ignores_reads(make: Callable[[], object], read: Callable[[object], object]) -> None:
    value = make()
    before = fingerprint(value)
    read(value)
    assert fingerprint(value) == before


def test_a_gigabyte_array_is_fingerprinted_by_sampling_in_milliseconds() -> None:
    import time

    big = np.zeros(2**27)  # 1 GiB
    started = time.perf_counter()
    before = fingerprint(big)
    took = time.perf_counter() - started
    big[: 2**20] = 1.0  # the first 8 MiB: covered by the sampled chunks
    assert fingerprint(big) != before
    assert took < 0.5


SETUP = "%%setup\nimport pandas as pd"
INPLACE = [
    "%load_ext nbflow",
    SETUP,
    "%%task\ndf = pd.DataFrame({'v': range(53)})",
    "%%task\nbefore = len(df)",
    "%%task\ndf.drop(index=[0], inplace=True)",
    "%%task\nafter = len(df)",
]


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    k = Kernel()
    yield k
    k.close()


def _run(path: Path, executor: str = "local") -> tuple[int, object, str, str]:
    out, err = io.StringIO(), io.StringIO()
    import contextlib

    with contextlib.redirect_stderr(err):
        code, state = run_notebook_flow(flow_from_notebook(path), executor=executor, out=out)
    return code, state, out.getvalue(), err.getvalue()


def test_headless_reports_remembers_refuses_then_runs_when_declared(
    tmp_path: Path, nbflow_home: Path
) -> None:
    path = write_notebook(tmp_path / "clean.ipynb", INPLACE)
    code, state, _, err = _run(path)
    assert code == 0
    # Sequential: the values of a top-to-bottom run.
    assert state.result["before"].result["before"] == 53  # type: ignore[attr-defined]
    assert state.result["after"].result["after"] == 52  # type: ignore[attr-defined]
    assert "task 'df_drop' (cell 5 of clean.ipynb) changed its input 'df' in place" in err
    assert "--mutates df" in err
    memory = json.loads((nbflow_home / "mutations" / "clean.json").read_text())
    assert memory["df_drop"]["names"] == ["df"]

    # The next parallel run knows before starting, and refuses.
    code, state, _, err = _run(path, "threads")
    assert code == 2 and state is None
    assert "refusing to run flow 'clean' on threads" in err
    assert "task 'df_drop' (cell 5 of clean.ipynb) changes 'df' in place: add --mutates df" in err

    # Declared: the mutator defines df, readers before it run before it, on threads too.
    cells = [*INPLACE]
    cells[4] = cells[4].replace("%%task\n", "%%task --mutates df\n")
    declared = write_notebook(tmp_path / "declared.ipynb", cells)
    flow = flow_from_notebook(declared)
    resolution = flow.resolve()
    assert resolution.inputs["after"]["df"] == "df_drop"
    assert resolution.ordering["df_drop"] == ["before"]
    for _ in range(5):
        code, state, _, err = _run(declared, "threads")
        assert code == 0, err
        assert state.result["before"].result["before"] == 53  # type: ignore[attr-defined]
        assert state.result["after"].result["after"] == 52  # type: ignore[attr-defined]


def _remembered(path: Path) -> NotebookFlow:
    """The notebook's flow with what headless runs of it found (as the next run plans it)."""
    flow = flow_from_notebook(path)
    flow.detections = Detections.on_disk(flow.name)
    return flow


def test_a_detection_is_forgotten_when_its_cell_changes(tmp_path: Path) -> None:
    setup = "%%setup\nimport numpy as np"
    cells = [
        "%%task\nrng = np.random.default_rng(0)",
        "%%task\nfirst = rng.normal()",  # drawing changes the generator: the guard sees it
        "%%task\nsecond = rng.normal()",
    ]
    path = write_notebook(tmp_path / "draws.ipynb", [setup, *cells])
    code, _, _, err = _run(path)
    assert code == 0 and "task 'first' (cell 3 of draws.ipynb) changed its input 'rng' in place" in err
    assert _remembered(path).resolve().changes["first"] == {"rng": "detected"}
    code, _, _, err = _run(path, "threads")
    assert code == 2 and "add --mutates rng" in err
    # The cell now draws from its own generator: the old finding no longer applies.
    cells[1] = "%%task\nfirst = np.random.default_rng(1).normal()"
    path = write_notebook(tmp_path / "draws.ipynb", [setup, *cells])
    assert "first" not in _remembered(path).resolve().changes


def test_a_static_method_call_mutation_refuses_a_parallel_run_before_anything_runs(tmp_path: Path) -> None:
    path = write_notebook(
        tmp_path / "append.ipynb",
        ["%%task\nitems = [1]", "%%task\nitems.append(2)", "%%task\ntotal = sum(items)"],
    )
    code, _, _, err = _run(path, "dask")
    assert code == 2
    assert "task 'items_append' (cell 2 of append.ipynb) changes 'items' in place" in err
    code, state, _, _ = _run(path)
    assert code == 0 and state.result["total"].result["total"] == 3  # type: ignore[attr-defined]


def test_kernel_reports_under_the_cell_check_lists_it_and_threads_refuse(
    kernel: Kernel, capsys: pytest.CaptureFixture[str]
) -> None:
    kernel.run_all(INPLACE)
    err = capsys.readouterr().err
    assert "task 'df_drop' (cell In[" in err and "changed its input 'df' in place" in err
    kernel.run("%flow check")
    out = capsys.readouterr().out
    assert "changes its input 'df' in place (seen by the mutation guard)" in out
    kernel.run("%flow run --executor threads --quiet", expect_error=True)
    assert "refusing to run flow" in capsys.readouterr().err
    # The widget's detail panel shows the task's log, the warning among its lines.
    detail = kernel.session.widget().task_detail("df_drop")
    assert any(line["level"] == "WARNING" and "in place" in line["message"] for line in detail["logs"])
    kernel.run("%flow run --quiet")
    assert kernel.ns["after"] == 52


GRID = [
    "%%setup\nimport numpy as np\nfrom sklearn.linear_model import Ridge\nfrom sklearn.model_selection import GridSearchCV",
    "%%task\nX = np.arange(40.0).reshape(-1, 2)\ny = X[:, 0] * 3 + 1",
    "%%task\ngrid = GridSearchCV(Ridge(), {'alpha': [0.1, 1.0]}, cv=2)",
    "%%task\ngrid.fit(X, y)",
    "%%task\nbest = grid.best_params_['alpha']",
    "%%task\nscore = round(grid.score(X, y), 6)",
]


def test_an_estimator_fitted_in_one_cell_and_read_in_others(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "grid.ipynb", GRID)
    # `grid.fit(X, y)` changes an input in place: on threads the readers could run first.
    code, _, _, err = _run(path, "threads")
    assert code == 2 and "task 'fit_X' (cell 4 of grid.ipynb) changes 'grid' in place" in err
    resolution = flow_from_notebook(path).resolve()
    assert resolution.inputs["best"]["grid"] == "fit_X"  # the readers take the fitted one
    code, state, _, _ = _run(path)
    assert code == 0 and state.result["best"].result["best"] in (0.1, 1.0)  # type: ignore[attr-defined]
    # Declared (as `nbflow convert` writes it), it runs on threads with the same values.
    cells = [*GRID]
    cells[3] = "%%task --mutates grid\ngrid.fit(X, y)"
    declared = write_notebook(tmp_path / "declared.ipynb", cells)
    code, threaded, _, err = _run(declared, "threads")
    assert code == 0, err
    for name in ("best", "score"):
        assert threaded.result[name].result == state.result[name].result  # type: ignore[attr-defined]
