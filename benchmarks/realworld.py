"""Real notebooks: conversion + headless run against a plain nbclient run, and the mutation guard's cost.

    python benchmarks/realworld.py [--repeat 3] [--skip-corpus] [--skip-guard]

1. For each notebook of ``tests/realworld/notebooks``: a plain nbclient run of the original
   (kernel start included), against ``nbflow convert`` (in process) plus ``nbflow run`` of the
   result (a fresh process, so interpreter start and imports are included too). Median of N.
2. The guard's cost per task: fingerprinting a task's inputs before and after it, for small
   inputs and for 1 GiB inputs (a numpy array; a pandas frame).
3. The guard's share of a typical notebook's run: every corpus notebook run headless in this
   process, the guard timing itself (median of N runs).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nbflow.cells import celltasks  # noqa: E402
from nbflow.cells.convert import convert  # noqa: E402
from nbflow.cells.guard import InputWatch  # noqa: E402
from nbflow.cells.ipynb import flow_from_notebook  # noqa: E402
from nbflow.terminal.headless import run_notebook_flow  # noqa: E402
from tests.realworld.corpus import CORPUS, NOTEBOOKS  # noqa: E402


def _median(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _plain_run(path: Path, workdir: Path) -> None:
    from nbclient import NotebookClient

    nb = nbformat.read(str(path), 4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    ).execute()


def _convert_and_run(path: Path, workdir: Path) -> None:
    out = workdir / f"{path.stem}.nbflow.ipynb"
    nbformat.write(convert(nbformat.read(str(path), 4), name=path.stem).notebook, str(out))
    done = subprocess.run(
        [sys.executable, "-m", "nbflow.cli", "run", str(out), "--quiet"],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"{path.name}: nbflow run failed:\n{done.stdout}\n{done.stderr}")


def corpus(repeat: int) -> None:
    print("| notebook | cells | plain nbclient run | convert + `nbflow run` | ratio |")
    print("|---|---:|---:|---:|---:|")
    totals = [0.0, 0.0]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        shutil.copytree(NOTEBOOKS / "data", workdir / "data")
        for name in sorted(CORPUS):
            path = NOTEBOOKS / f"{name}.ipynb"
            cells = sum(1 for c in nbformat.read(str(path), 4).cells if c.cell_type == "code")
            plain = _median(lambda p=path: _plain_run(p, workdir), repeat)
            ours = _median(lambda p=path: _convert_and_run(p, workdir), repeat)
            totals[0] += plain
            totals[1] += ours
            print(f"| {name} | {cells} | {plain:.2f} s | {ours:.2f} s | {ours / plain:.2f}× |")
    print(
        f"| **all {len(CORPUS)}** | | {totals[0]:.1f} s | {totals[1]:.1f} s | {totals[1] / totals[0]:.2f}× |"
    )


def _guard_cost(inputs: dict[str, Any], repeat: int) -> float:
    def once() -> None:
        InputWatch(inputs).changed(inputs)

    once()
    return _median(once, repeat)


def guard(repeat: int) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"a": rng.normal(size=1000), "b": rng.integers(0, 9, 1000), "s": [f"r{i}" for i in range(1000)]}
    )
    model = LinearRegression().fit(frame[["a", "b"]], frame["a"])
    small = {
        "df": frame,
        "xs": list(range(1000)),
        "params": {"k": [1, 2, 3]},
        "model": model,
        "arr": rng.normal(size=(100, 10)),
    }
    print("| inputs of one task | guard per task (before + after) |")
    print("|---|---:|")
    for label, inputs in [
        ("5 small inputs (1,000-row frame, list, dict, fitted estimator, 100×10 array)", small),
        ("one 1,000-row frame", {"df": frame}),
    ]:
        print(f"| {label} | {_guard_cost(inputs, max(repeat, 20)) * 1e3:.2f} ms |")
    big_array = np.ones(2**27)  # 1 GiB of float64
    print(f"| a 1 GiB numpy array | {_guard_cost({'a': big_array}, repeat) * 1e3:.1f} ms |")
    del big_array
    big_frame = pd.DataFrame({f"c{i}": np.ones(2**23) for i in range(16)})  # 16 × 64 MiB = 1 GiB
    print(
        f"| a 1 GiB pandas frame (16 float columns × 8.4 M rows) | {_guard_cost({'df': big_frame}, repeat) * 1e3:.1f} ms |"
    )
    del big_frame
    objects = pd.DataFrame(
        {"s": [f"row {i}" for i in range(2_000_000)]}
    )  # strings: hashed by pandas, sampled
    print(f"| a 2 M-row frame of strings | {_guard_cost({'df': objects}, repeat) * 1e3:.1f} ms |")


class _TimedWatch(InputWatch):
    """The guard, timing itself: what it adds to each task is what these calls take."""

    spent = 0.0

    def __init__(self, inputs: Any) -> None:
        started = time.perf_counter()
        super().__init__(inputs)
        _TimedWatch.spent += time.perf_counter() - started

    def changed(self, inputs: Any) -> list[str]:
        started = time.perf_counter()
        try:
            return super().changed(inputs)
        finally:
            _TimedWatch.spent += time.perf_counter() - started


def share(repeat: int) -> None:
    """The guard's own time as a share of the corpus's headless run time. Timing the guard
    itself is steadier than guard-on against guard-off runs on a shared machine."""
    import contextlib
    import io

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        shutil.copytree(NOTEBOOKS / "data", workdir / "data")
        paths = []
        for name in sorted(CORPUS):
            out = workdir / f"{name}.nbflow.ipynb"
            nbformat.write(
                convert(nbformat.read(str(NOTEBOOKS / f"{name}.ipynb"), 4), name=name).notebook, str(out)
            )
            paths.append(out)

        def run_all() -> None:
            sink = io.StringIO()
            with contextlib.chdir(workdir), contextlib.redirect_stderr(sink):
                for path in paths:
                    code, _ = run_notebook_flow(flow_from_notebook(path), quiet=True, out=sink)
                    assert code == 0, sink.getvalue()

        run_all()  # warm: imports, font cache
        celltasks.InputWatch = _TimedWatch  # type: ignore[misc]
        shares = []
        for _ in range(repeat):
            _TimedWatch.spent = 0.0
            started = time.perf_counter()
            run_all()
            shares.append((time.perf_counter() - started, _TimedWatch.spent))
        celltasks.InputWatch = InputWatch  # type: ignore[misc]
        tasks = sum(len(flow_from_notebook(p).task_names) for p in paths)
    total, spent = sorted(shares)[len(shares) // 2]
    print(f"corpus run headless ({len(paths)} notebooks, {tasks} tasks): {total:.2f} s, of which the guard "
          f"{spent * 1e3:.0f} ms ({spent / total * 100:.1f}%, {spent / tasks * 1e3:.2f} ms a task)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-corpus", action="store_true")
    parser.add_argument("--skip-guard", action="store_true")
    args = parser.parse_args()
    if not args.skip_corpus:
        corpus(args.repeat)
    if not args.skip_guard:
        guard(args.repeat)
        share(args.repeat)


if __name__ == "__main__":
    main()
