"""Server hooks with real receivers: a local HTTP server records webhook calls, aiosmtpd receives
the email; a failing flow run on an agent triggers each hook exactly once, a receiver that is
down gets retries (and the delivery arrives once it is up), and every delivery is recorded."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from notebook_helpers import write_notebook  # noqa: E402
from receivers import Mailbox, Receiver  # noqa: E402
from server_helpers import FINISHED, AgentProcess, ServerProcess, agent_key, free_port, wait_for  # noqa: E402

from nbflow import client_team  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def receivers():  # type: ignore[no-untyped-def]
    webhook = Receiver()
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        yield webhook, mailbox, smtp.port
    finally:
        smtp.stop()
        webhook.close()


def test_failing_run_on_an_agent_notifies_each_hook_once_and_retries_a_down_receiver(
    nbflow_home: Path, tmp_path: Path, receivers: tuple[Receiver, Mailbox, int]
) -> None:
    webhook, mailbox, smtp_port = receivers
    server = ServerProcess(
        nbflow_home, f"sqlite+aiosqlite:///{tmp_path / 'server' / 'nbflow.db'}",
        heartbeat_timeout=3, submitted_timeout=3, hook_interval=0.3, hook_retry_base=0.5,
        smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_from="nbflow@example.org",
    ).start()  # fmt: skip
    agent = None
    down_port = free_port()
    late = None
    try:
        cells = ["%%task load\nrows = [1, 2]", "%%task boom\nraise ValueError(f'bad rows {rows}')"]
        server.cli("register", str(write_notebook(tmp_path / "nightly.ipynb", cells)))
        server.cli("register", str(write_notebook(tmp_path / "other.ipynb", ["%%task\nx = 1 / 0"])))
        server.cli(
            "hooks", "add", "slack", "--webhook", webhook.url, "--flow", "nightly", "--on", "Failed,TimedOut"
        )
        server.cli("hooks", "add", "oncall", "--email", "oncall@example.org", "--on", "Failed")
        server.cli(
            "hooks", "add", "flaky", "--webhook", f"http://127.0.0.1:{down_port}/hook", "--flow", "nightly"
        )
        server.cli("hooks", "add", "tasks", "--webhook", webhook.url, "--flow", "nightly", "--task-runs")
        agent = AgentProcess(server, agent_key(server)).start()
        with server.client() as client:
            run_id = client.create_flow_run(flow_name="nightly").id
            run = wait_for(lambda: (r := client.flow_run(run_id)).state in FINISHED and r, what="the run")
        assert run.state == "Failed", agent.log()

        wait_for(lambda: len(webhook.bodies) >= 2 and mailbox.messages, what="the webhook and the email")
        # The receiver that is down is tried again and again...
        with server.client() as client:
            flaky = wait_for(
                lambda: [
                    d for d in client.execute(client_team.hook_deliveries("flaky")) if d["attempts"] >= 2
                ],
                what="retries of the hook whose receiver is down",
            )[0]
        assert flaky["status"] == "pending" and "ConnectError" in flaky["lastError"]
        # ...and once it is up, the delivery arrives there (once).
        late = Receiver(down_port)
        wait_for(lambda: late.bodies, what="the late receiver's delivery")
        with server.client() as client:
            deliveries = client.execute(client_team.hook_deliveries())
        assert {d["hookName"]: d["status"] for d in deliveries} == {
            "slack": "delivered", "oncall": "delivered", "flaky": "delivered", "tasks": "delivered",
        }  # fmt: skip
        assert [d["attempts"] for d in deliveries if d["hookName"] == "flaky"][0] >= 3

        # Exactly once each: the flow run's Failed (slack), the task run's Failed (tasks), one email.
        flow_bodies = [b for b in webhook.bodies if b["task"] is None]
        task_bodies = [b for b in webhook.bodies if b["task"] is not None]
        assert len(flow_bodies) == 1 and len(task_bodies) == 1 and len(mailbox.messages) == 1
        assert len(late.bodies) == 1
        body = flow_bodies[0]
        assert body["text"].startswith(
            f"nbflow: flow run {run_id} of flow 'nightly' is Failed: 1 of 2 tasks failed"
        )
        assert (body["flow"], body["state"], body["flow_run_id"]) == ("nightly", "Failed", run_id)
        assert task_bodies[0]["task"] == "boom" and "ValueError: bad rows [1, 2]" in task_bodies[0]["message"]
        assert mailbox.messages[0]["to"] == ["oncall@example.org"]
        assert "Subject: nbflow: nightly Failed" in mailbox.messages[0]["body"]

        listed = server.cli("hooks", "list", "--deliveries").stdout
        assert "slack" in listed and "delivered" in listed and "every flow" in listed
        assert server.cli("hooks", "test", "slack").stdout.strip() == "hook 'slack': test message delivered"
        assert webhook.bodies[-1]["text"].startswith("nbflow: a test of hook 'slack'")
        server.cli("hooks", "remove", "flaky")
        assert "flaky" not in server.cli("hooks", "list").stdout
        refused = server.cli("hooks", "add", "bad", "--webhook", "ftp://x", check=False)
        assert refused.returncode == 1 and "a webhook target is an http(s) URL" in refused.stderr
    finally:
        if agent is not None:
            agent.stop()
        if late is not None:
            late.close()
        server.stop()
