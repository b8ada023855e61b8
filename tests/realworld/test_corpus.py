"""Real notebooks run unchanged: each corpus notebook, converted by `nbflow convert` with no hand
edits, gives the values of a plain top-to-bottom run: headless, from its exported module, and in
a kernel (nbclient). Values are compared by digest (``digest.py``); a value that differs between
two plain runs is left out, and nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.realworld.corpus import CORPUS, NOTEBOOKS

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DIGEST_CELL = (
    "import json as _json, runpy as _runpy\n"
    f"_digests = _runpy.run_path({str(HERE / 'digest.py')!r})['namespace_digests'](dict(globals()))\n"
    "print('DIGESTS ' + _json.dumps(_digests))"
)
NAMES = sorted(CORPUS)


def _workdir(tmp: Path) -> Path:
    shutil.copytree(NOTEBOOKS / "data", tmp / "data", dirs_exist_ok=True)
    return tmp


def _digests_from(output: str) -> dict[str, str]:
    lines = [line for line in output.splitlines() if line.startswith("DIGESTS ")]
    assert lines, f"no digests printed:\n{output[-3000:]}"
    return json.loads(lines[-1][len("DIGESTS ") :])


def _in_kernel(path: Path, workdir: Path) -> dict[str, str]:
    """Run a notebook top to bottom in a real kernel (nbclient sends no cell ids) and digest it."""
    from nbclient import NotebookClient

    nb = nbformat.read(str(path), 4)
    nb.cells.append(nbformat.v4.new_code_cell(DIGEST_CELL))
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    ).execute()
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
    return _digests_from(text)


_PLAIN: dict[str, dict[str, str]] = {}


def _plain(name: str, factory: pytest.TempPathFactory) -> dict[str, str]:
    """Digests of the values two plain runs agree on (once per notebook per session)."""
    if name not in _PLAIN:
        workdir = _workdir(factory.mktemp(f"plain-{name}"))
        first = _in_kernel(NOTEBOOKS / f"{name}.ipynb", workdir)
        second = _in_kernel(NOTEBOOKS / f"{name}.ipynb", workdir)
        _PLAIN[name] = {k: v for k, v in first.items() if second.get(k) == v}
    return _PLAIN[name]


def _convert(name: str, workdir: Path) -> Path:
    out = workdir / f"{name}.nbflow.ipynb"
    done = subprocess.run(
        [sys.executable, "-m", "nbflow.cli", "convert", str(NOTEBOOKS / f"{name}.ipynb"), "-o", str(out)],
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return out


def _run(mode: str, path: Path, workdir: Path) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.realworld.runflow", mode, str(path)],
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return _digests_from(done.stdout)


def _assert_same(plain: dict[str, str], got: dict[str, str], where: str) -> None:
    if "#outputs" not in got:  # headless and exported runs save figures; they show none
        plain = {k: v for k, v in plain.items() if k != "#outputs"}
    assert len(plain) >= 5, f"too few comparable values in the plain run: {sorted(plain)}"
    missing = sorted(set(plain) - set(got))
    differ = sorted(k for k in plain if k in got and got[k] != plain[k])
    assert not missing and not differ, f"{where}: missing {missing}, different {differ}"


@pytest.mark.parametrize("name", NAMES)
def test_every_notebook_converts_to_tasks_with_no_hidden_dependency(name: str, tmp_path: Path) -> None:
    from nbflow.cells.convert import convert

    conversion = convert(nbformat.read(str(NOTEBOOKS / f"{name}.ipynb"), 4), name=name)
    report = conversion.report()
    assert "hidden dependency" not in report, report
    assert "left plain:" not in report, report
    assert conversion.flow is not None
    assert len(conversion.flow.task_names) >= 8
    assert len(set(conversion.flow.task_names)) == len(conversion.flow.task_names)


@pytest.fixture(params=NAMES)
def corpus_case(
    request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[str, str], Path]:
    """A corpus notebook: its name, its plain run's values and a fresh working folder."""
    return request.param, _plain(request.param, tmp_path_factory), _workdir(tmp_path)


@pytest.mark.slow
def test_headless_and_exported_runs_give_the_plain_values(
    corpus_case: tuple[str, dict[str, str], Path],
) -> None:
    name, plain, workdir = corpus_case
    converted = _convert(name, workdir)
    _assert_same(plain, _run("headless", converted, workdir), f"{name} headless")
    module = workdir / f"{name}_flow.py"
    done = subprocess.run(
        [sys.executable, "-m", "nbflow.cli", "export", str(converted), "-o", str(module)],
        capture_output=True,
        text=True,
        cwd=workdir,
    )
    assert done.returncode == 0, done.stderr
    _assert_same(plain, _run("export", module, workdir), f"{name} exported")


@pytest.mark.slow
def test_converted_notebook_in_a_kernel_gives_the_plain_values_and_outputs(
    corpus_case: tuple[str, dict[str, str], Path],
) -> None:
    name, plain, workdir = corpus_case
    _assert_same(plain, _in_kernel(_convert(name, workdir), workdir), f"{name} in a kernel")
