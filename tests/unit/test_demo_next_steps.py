"""The "next" lines `nbflow demo` prints: commands that work when typed, for the server that is left."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from nbflow.demo import Demo, command


def test_commands_are_this_installations_scripts_when_path_does_not_find_them(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # the venv is not activated
    nbflow = command("nbflow", "nbflow.cli")
    assert Path(shlex.split(nbflow)[0]).parent == Path(sys.executable).parent
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    assert command("nbflow", "nbflow.cli") == "nbflow"  # activated: the bare name works
    assert command("surely-not-a-script", "json.tool").endswith("-m json.tool")


def test_server_commands_are_offered_only_while_a_server_runs(tmp_path: Path) -> None:
    demo = Demo()
    demo.own_server = True  # the demo started the server: it stops it on exit
    stopping = demo.next_steps(tmp_path / "n.ipynb", "RID", "http://127.0.0.1:4200", serve=False)
    assert "demo --serve   # keeps the server running" in stopping
    assert "    " in stopping.split("runs show")[0].splitlines()[-1]  # indented under that line
    serving = demo.next_steps(tmp_path / "n.ipynb", "RID", "http://127.0.0.1:4200", serve=True)
    assert "demo --serve" not in serving
    assert "runs show RID --logs --server http://127.0.0.1:4200" in serving
    demo.own_server = False  # a server that was already running stays up
    assert "demo --serve" not in demo.next_steps(tmp_path / "n.ipynb", "RID", "http://x", serve=False)
