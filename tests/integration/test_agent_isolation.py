"""Flow processes forked from the agent's warm parent are still one process per run: what a
run does to its globals, working directory, environment or memory, or a crash of its
interpreter, never reaches the next run. The same holds for cold starts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import write_notebook  # noqa: E402
from server_helpers import FINISHED, AgentProcess, ServerProcess, sqlite_server, wait_for  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Each run first writes what it finds, then dirties everything it can.
DIRTY = """%%task dirty
import gc, json, os, sys
import nbflow.core.flows as preloaded
status = open('/proc/self/status').read()
rss_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith('VmRSS')))
seen = {
    'leaked_global': getattr(preloaded, 'LEAKED', None),
    'leaked_module': 'nbflow_leaked_module' in sys.modules,
    'leaked_env': os.environ.get('NBFLOW_LEAKED'),
    'cwd': os.getcwd(),
    'rss_mb': rss_kb // 1024,
    'pid': os.getpid(),
    'ppid': os.getppid(),
}
with open(REPORT, 'a') as fh:
    fh.write(json.dumps(seen) + '\\n')
preloaded.LEAKED = 'from an earlier run'
preloaded.BALLAST = bytearray(300 * 1024 * 1024)  # 300 MB kept in a preloaded module
sys.modules['nbflow_leaked_module'] = object()
os.environ['NBFLOW_LEAKED'] = '1'
os.chdir('/')
done = True"""

CRASH = "%%task crash\nimport os\nos.abort()"


@pytest.fixture
def server(nbflow_home: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    yield from sqlite_server(nbflow_home, tmp_path)


def run_to_end(server: ServerProcess, flow: str) -> object:
    with server.client() as client:
        run = client.create_flow_run(flow_name=flow)

        def ended() -> object:
            current = client.flow_run(run.id)
            return current if current.state in FINISHED else None

        return wait_for(ended, timeout=90, what=f"a run of {flow} to end")


@pytest.mark.parametrize("start", ["warm", "cold"])
def test_a_run_never_sees_what_an_earlier_run_did_to_its_process(
    server: ServerProcess, tmp_path: Path, start: str
) -> None:
    report = tmp_path / "seen.jsonl"
    setup = f"%%setup\nREPORT = {str(report)!r}"
    server.cli("register", str(write_notebook(tmp_path / "dirty.ipynb", [setup, DIRTY])))
    server.cli("register", str(write_notebook(tmp_path / "crash.ipynb", [CRASH])))
    with server.client() as client:
        key = client.create_api_key("agent").key
    extra = ("--cold-start",) if start == "cold" else ()
    agent = AgentProcess(server, key, concurrency=1, name=f"isolation-{start}", extra=extra).start()
    try:
        assert f"flow processes start {start}" in agent.log()
        first = run_to_end(server, "dirty")
        crashed = run_to_end(server, "crash")
        second = run_to_end(server, "dirty")
        assert agent.proc is not None and agent.proc.poll() is None  # the agent lives on
    finally:
        agent.stop()
    assert first.state == "Success" and second.state == "Success"  # type: ignore[attr-defined]
    assert crashed.state == "Failed"  # type: ignore[attr-defined]
    assert "killed by signal 6" in crashed.message  # type: ignore[attr-defined]
    seen = [json.loads(line) for line in report.read_text().splitlines()]
    assert len(seen) == 2
    for run in seen:
        assert run["leaked_global"] is None
        assert run["leaked_module"] is False
        assert run["leaked_env"] is None
        assert run["cwd"] == str(Path.cwd())  # the agent's directory (it started here), not "/"
        assert run["rss_mb"] < 200  # the 300 MB the first run kept went with its process
    assert seen[0]["pid"] != seen[1]["pid"]
    if start == "warm":
        # Forked from the same warm parent, which is not the agent.
        assert seen[0]["ppid"] == seen[1]["ppid"] != agent.proc.pid
