"""Code and results on S3 (a real moto server started here): an agent with its own empty home runs
a flow registered with --storage s3://..., its results land in S3, a restart reuses them, a kernel
pulls them, and changed code in the bucket is refused (the sha256 check)."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import kernel as _kernel  # noqa: E402
from notebook_helpers import write_notebook  # noqa: E402
from server_helpers import AgentProcess, ServerProcess, agent_key, free_port, wait_for  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class S3:
    """The moto server's S3 client and this test's own bucket (moto keeps its state per process)."""

    def __init__(self, client: object, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def keys(self, prefix: str) -> list[str]:
        answer = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix)  # type: ignore[attr-defined]
        return sorted(item["Key"] for item in answer.get("Contents", []))


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    """A moto S3 server on a free port; fsspec (here and in every process started) points at it."""
    import boto3
    import fsspec.config
    from moto.server import ThreadedMotoServer

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FSSPEC_S3", json.dumps({"endpoint_url": endpoint}))
    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": endpoint})
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    bucket = f"nbflow-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    try:
        yield S3(client, bucket)
    finally:
        moto.stop()


def test_s3_code_and_results_an_agent_elsewhere_a_restart_and_a_pull(
    s3: S3, server: ServerProcess, tmp_path: Path
) -> None:
    marker = tmp_path / "ready"
    cells = [
        "%%task rows_cell\nrows = [1, 2, 3]",
        "%%task doubled --map rows\ndoubled = rows * 2",
        f"%%task checked\nimport os\nassert os.path.exists({str(marker)!r}), 'not ready'\nchecked = sum(doubled)",
    ]
    server.cli(
        "register",
        str(write_notebook(tmp_path / "s3flow.ipynb", cells)),
        "--storage",
        f"s3://{s3.bucket}/team",
    )
    code_keys = s3.keys("team/code/s3flow/")
    assert len(code_keys) == 1 and code_keys[0].endswith(".py")
    assert not (server.home / "storage").exists()  # nothing written locally

    # Another machine: its own empty NBFLOW_HOME, no shared folder.
    agent = AgentProcess(server, agent_key(server), home=tmp_path / "elsewhere").start()
    try:
        with server.client() as client:
            first = client.create_flow_run(flow_name="s3flow")
        failed = wait_for(lambda: server.finished(first.id), timeout=90, what="the first run")
        assert failed.state == "Failed", agent.log()
        stored = s3.keys(f"team/results/{first.id}/")
        assert [k.split("/")[-1].split("-")[0] for k in stored] == ["doubled", "rows_cell"]
        refs = {t.task_slug: t.result_ref for t in failed.task_runs}
        assert refs["doubled"].startswith(f"s3://{s3.bucket}/team/results/{first.id}/doubled-")

        marker.write_text("ready")
        restart_id = server.cli("runs", "restart", first.id).stdout.split()[2]
        second = wait_for(lambda: server.finished(restart_id), timeout=90, what="the restart")
        assert second.state == "Success", agent.log()
        assert {t.task_slug: t.state for t in second.task_runs} == {
            "rows_cell": "Cached", "doubled": "Cached", "checked": "Success",
        }  # fmt: skip
        # Only what ran again was written; the reused tasks point at the first run's results.
        assert [k.split("/")[-1].split("-")[0] for k in s3.keys(f"team/results/{restart_id}/")] == ["checked"]
        assert {t.task_slug: t.result_ref for t in second.task_runs}["doubled"] == refs["doubled"]

        for k in _kernel():  # a notebook on a third machine pulls the results from S3
            k.run("%load_ext nbflow")
            k.run(f"%flow pull {restart_id} --server {server.url} --key {server.admin_key}")
            assert k.ns["checked"] == 12 and k.ns["doubled"] == [2, 4, 6] and k.ns["rows"] == [1, 2, 3]

        # Code changed in the bucket after registration never runs.
        s3.client.put_object(Bucket=s3.bucket, Key=code_keys[0], Body=b"raise SystemExit('swapped')\n")  # type: ignore[attr-defined]
        with server.client() as client:
            third = client.create_flow_run(flow_name="s3flow")
        refused = wait_for(lambda: server.finished(third.id), timeout=90, what="the refused run")
        assert refused.state == "Failed" and "does not match its registration" in refused.message, (
            refused.message
        )
    finally:
        agent.stop()


def test_nbflow_run_results_on_s3_stores_every_task_runs_result(s3: S3, tmp_path: Path) -> None:
    import os
    import re
    import subprocess

    import cloudpickle

    cells = ["%%task rows\nrows = [1, 2, 3]", "%%task total\ntotal = sum(rows)"]
    notebook = write_notebook(tmp_path / "headless.ipynb", cells)
    url = f"s3://{s3.bucket}/headless"
    done = subprocess.run(
        [sys.executable, "-m", "nbflow.cli", "run", str(notebook), "--results", url, "--quiet"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "NBFLOW_HOME": str(tmp_path / "home")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    match = re.search(rf"^nbflow: stored the results of 2 tasks under {url}/(\S+)$", done.stdout, re.M)
    assert match, done.stdout + done.stderr
    keys = s3.keys(f"headless/{match[1]}/")
    assert [k.split("/")[-1].split("-")[0] for k in keys] == ["rows", "total"]
    stored = s3.client.get_object(Bucket=s3.bucket, Key=keys[1])["Body"].read()  # type: ignore[attr-defined]
    assert cloudpickle.loads(stored) == {"total": 6}
