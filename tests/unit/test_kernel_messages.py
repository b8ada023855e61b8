"""What the magics print for a refused run, a retried success and a wide %flow check table."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import Kernel  # noqa: E402
from notebook_helpers import kernel as _kernel  # noqa: E402

from nbflow.terminal.report import table  # noqa: E402


@pytest.fixture
def k() -> Kernel:
    yield from _kernel()


def test_a_refused_run_prints_its_error_and_draws_no_widget(
    k: Kernel, capsys: pytest.CaptureFixture[str]
) -> None:
    k.run("%load_ext nbflow")
    k.run("%%params\nn = 1")
    k.run("%%task double --no-run\nm = n * 2")
    capsys.readouterr()
    k.run("%flow run -p nope=3", expect_error=True)
    out = capsys.readouterr()
    assert "nope" in out.err
    assert "FlowWidget(" not in out.out  # no empty graph with a live Run button above the error
    k.run("%flow run -p n=3")
    assert "FlowWidget(" in capsys.readouterr().out  # an accepted run shows it
    assert k.ns["m"] == 6


def test_a_task_that_succeeded_after_retries_says_on_which_attempt(
    k: Kernel, capsys: pytest.CaptureFixture[str]
) -> None:
    k.run("%load_ext nbflow")
    k.run("tries = []")
    k.run("%%task flaky --retries 2\ntries.append(1)\nif len(tries) % 2:\n    raise OSError('down')\nok = 1")
    assert "task 'flaky': Success on attempt 2" in capsys.readouterr().err
    k.run("%flow run")
    assert "  flaky: Success on attempt 2" in capsys.readouterr().out


def test_flow_check_wraps_between_words_to_fit_a_notebook(
    k: Kernel, capsys: pytest.CaptureFixture[str]
) -> None:
    k.run("%load_ext nbflow")
    names = [f"a_rather_long_variable_name_{i}" for i in range(6)]
    k.run("%%task make_inputs\n" + "\n".join(f"{n} = {i}" for i, n in enumerate(names)))
    k.run("%%task combine_everything\ntotal_of_all_the_inputs = " + " + ".join(names))
    capsys.readouterr()
    k.run("%flow check")
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert all(len(line) <= 100 for line in lines), out
    for name in names:
        assert out.count(name) == 2, name  # whole, in the inputs and the outputs: never cut across lines
    assert len(lines) > 4  # the long inputs cell took several lines


def test_a_table_never_breaks_a_word_even_when_it_cannot_fit() -> None:
    word = "x" * 120
    out = table(["a", "b"], [[word, "short"]], max_width=40)
    assert word in out
    assert table(["a"], [["one two"]], max_width=40) == table(["a"], [["one two"]])
