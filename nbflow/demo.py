"""``nbflow demo``: the whole hybrid model on this machine, with the embedded defaults.

It writes an example notebook under ``$NBFLOW_HOME/demo``, starts the server
(SQLite, no configuration) unless one already answers with the saved key,
starts an agent, registers the notebook, runs it through the agent, prints
every task state as the server's live feed reports it, and says how to open
the notebook and its widget. Exit code 0 when the run succeeded.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import httpx
import nbformat

from nbflow.config import DEFAULT_URL, read_config
from nbflow.core.errors import AuthError, ClientError, NbflowError
from nbflow.core.record import StateRecord, record_from_wire
from nbflow.core.runview import RunView
from nbflow.core.settings import nbflow_home

DEMO_CELLS = [
    (
        "markdown",
        "# nbflow demo: daily sales\nEach `%%task` cell is a task; nbflow infers the DAG from the variables.",
    ),
    ("code", "%load_ext nbflow\n%flow name daily_sales"),
    (
        "code",
        "%%setup\nimport random\nimport statistics\n\n\n"
        "def fake_orders(day: str, region: str, n: int = 25) -> list[float]:\n"
        '    """Synthetic order amounts: the same day and region always give the same numbers."""\n'
        '    rng = random.Random(f"{day}-{region}")\n'
        "    return [round(rng.uniform(5, 120), 2) for _ in range(n)]",
    ),
    ("code", '%%params\nday = "2024-06-01"\nregions = ["eu", "us", "apac"]'),
    (
        "code",
        '%%task extract\norders = {region: fake_orders(day, region) for region in regions}\nprint(f"extracted {sum(map(len, orders.values()))} orders")',
    ),
    (
        "code",
        "%%task totals\ntotals = {region: round(sum(amounts), 2) for region, amounts in orders.items()}\ntotals",
    ),
    (
        "code",
        "%%task averages\naverages = {region: round(statistics.mean(a), 2) for region, a in orders.items()}\naverages",
    ),
    (
        "code",
        "%%task report\nbest = max(totals, key=totals.get)\n"
        'print(f"{day}: best region {best} with {totals[best]} (average order {averages[best]})")',
    ),
    ("code", "%flow run"),
]


def write_demo_notebook(directory: Path) -> Path:
    """Write the demo's notebook into ``directory``; its path."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell(src) if kind == "markdown" else nbformat.v4.new_code_cell(src)
        for kind, src in DEMO_CELLS
    ]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "daily_sales.ipynb"
    nbformat.write(nb, str(path))
    return path


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def command(name: str, module: str) -> str:
    """How to run this installation's ``name`` as typed in a shell, venv activated or not.

    The bare name when PATH finds this installation's script, else the script's full
    path, else ``python -m module`` with this interpreter.
    """
    script = Path(sys.executable).parent / name
    found = shutil.which(name)
    if found is not None and script.exists() and Path(found).resolve() == script.resolve():
        return name
    if script.exists():
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m {module}"


class Demo:
    """``nbflow demo``: a server, an agent and a notebook flow run through them."""

    def __init__(self, out: TextIO | None = None, *, port: int | None = None) -> None:
        self.out = out or sys.stdout
        self.home = nbflow_home()
        self.dir = self.home / "demo"
        self.port = port
        self.started: list[subprocess.Popen[bytes]] = []
        self.own_server = False  # True when the demo started the server (it stops it at the end)

    def say(self, text: str) -> None:
        """Print one line of the demo's story."""
        self.out.write(text + "\n")
        self.out.flush()

    def _spawn(self, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nbflow.cli", *args],
            env={**os.environ, "NBFLOW_HOME": str(self.home)},
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        self.started.append(proc)
        return proc

    def server(self) -> tuple[str, str]:
        """(url, admin key): the running server the saved config points at, or a new one."""
        from nbflow.client import Client

        saved = read_config()
        url, key = saved.get("url", DEFAULT_URL), saved.get("key")
        if key and _healthy(url):
            try:
                with Client(url, key, retries=0) as client:
                    client.me()
                self.say(f"using the nbflow server already running at {url}")
                return url, key
            except ClientError:
                pass
        port = self.port or (4200 if _port_free(4200) else _free_port())
        url = f"http://127.0.0.1:{port}"
        log = self.dir / "server.log"
        proc = self._spawn(["server", "start", "--port", str(port), "--scheduler-interval", "2"], log)
        deadline = time.time() + 60
        while not _healthy(url):
            if proc.poll() is not None or time.time() > deadline:
                raise NbflowError(f"the server did not start; see {log}")
            time.sleep(0.2)
        key = read_config().get("key")
        if not key:
            raise NbflowError(f"no admin key in {self.home / 'config.toml'}; see {log}")
        self.own_server = True
        self.say(f"started the nbflow server at {url} (database {self.home / 'nbflow.db'}; log {log})")
        return url, key

    def agent_key(self, url: str, admin_key: str) -> str:
        """An agent key: the demo's saved one if still valid, else a new one."""
        from nbflow.client import Client

        path = self.dir / "agent.key"
        if path.exists():
            key = path.read_text().strip()
            try:
                with Client(url, key, retries=0) as client:
                    client.me()
                return key
            except AuthError:
                pass
        with Client(url, admin_key) as client:
            key = client.create_api_key("agent", "demo agent").key
        path.write_text(key)
        path.chmod(0o600)
        return key

    def run(self, *, serve: bool = False, timeout: float = 180) -> int:
        """Run the demo; 0 when the flow run succeeded."""
        from nbflow.cells.ipynb import flow_from_notebook
        from nbflow.client import Client
        from nbflow.register import register_notebook_flow

        self.dir.mkdir(parents=True, exist_ok=True)
        notebook_path = write_demo_notebook(self.dir)
        self.say(f"nbflow demo in {self.home}")
        url, admin_key = self.server()
        agent_log = self.dir / "agent.log"
        self._spawn(
            [
                "agent",
                "start",
                "--server",
                url,
                "--key",
                self.agent_key(url, admin_key),
                "--name",
                "demo-agent",
                "--poll-wait",
                "1",
            ],
            agent_log,
        )
        self.say(f"started an agent (log {agent_log}); it pulls work from the server, which never calls it")
        with Client(url, admin_key) as client:
            notebook = flow_from_notebook(notebook_path)
            registered = register_notebook_flow(notebook, client, source=notebook_path.name)
            self.say(
                f"registered flow {notebook.name!r} version {registered.version} (the server got its graph, not its code)"
            )
            run = client.create_flow_run(flow_id=registered.flow_id)
            self.say(f"created flow run {run.id}; task states as the server reports them:")
            state = self._follow(client, run.id, timeout)
            report = [line["message"] for line in client.run_logs(run.id) if line["taskSlug"] == "report"]
        self.say(f"flow run {state}" + (f": {report[-1]}" if report else ""))
        self.say(self.next_steps(notebook_path, run.id, url, serve=serve))
        if serve:
            self.say(f"\nserver {url} and agent keep running; Ctrl-C stops them")
            try:
                while all(p.poll() is None for p in self.started):
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        return 0 if state == "Success" else 1

    def next_steps(self, notebook_path: Path, run_id: str, url: str, *, serve: bool) -> str:
        """The "next" lines, as commands that work when typed (no venv activation needed)."""
        jupyter, nbflow = command("jupyter", "jupyter"), command("nbflow", "nbflow.cli")
        lines = [
            f"  {jupyter} lab {shlex.quote(str(notebook_path))}   # run all cells: the widget draws the flow"
        ]
        if importlib.util.find_spec("jupyterlab") is None:
            pip = command("pip", "pip")
            lines.insert(0, f"  {pip} install jupyterlab   # JupyterLab is not installed here yet")
        server_lines = [
            f"  {nbflow} runs show {run_id} --logs --server {url}",
            f"  %flow watch {run_id}   # in that notebook: this run, live",
        ]
        if serve or not self.own_server:
            lines += server_lines
        else:
            lines.append(
                f"  {nbflow} demo --serve   # keeps the server running for these, in another terminal:"
            )
            lines += ["  " + line for line in server_lines]
        return "\nnext:\n" + "\n".join(lines)

    def _follow(self, client: Any, run_id: str, timeout: float) -> str:
        """Print each task's state as the live feed brings it; the run's final state."""
        deadline = time.time() + timeout
        view = RunView(max_logs=1)
        while time.time() < deadline:
            try:
                for _, batch in client.events(flow_run_id=run_id, from_start=True):
                    records = [record_from_wire(event) for event in batch]
                    view.observe(records)
                    for record in records:
                        if not isinstance(record, StateRecord):
                            continue
                        if record.task is None:
                            if record.is_finished():
                                return record.state
                            continue
                        task = view.latest(record.task)
                        took = task.duration if task is not None and record.state != "Running" else None
                        self.say(f"  {record.task:<10} {record.state}" + (f" in {took:.2f}s" if took else ""))
                    if time.time() > deadline:
                        break
            except ClientError as exc:
                self.say(f"  (live feed interrupted: {exc}; reconnecting)")
                time.sleep(1)
        raise NbflowError(
            f"flow run {run_id} did not finish within {timeout:.0f}s; see {self.dir / 'agent.log'}"
        )

    def close(self) -> None:
        """Stop the processes the demo started."""
        for proc in reversed(self.started):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
