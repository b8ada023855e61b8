"""`nbflow.secret(NAME)` outside agents: from the environment or NBFLOW_HOME/secrets.toml, masked in
the task's log lines and state messages; the server's key file and encryption."""

from __future__ import annotations

import stat
from typing import TYPE_CHECKING

import pytest

import nbflow
from nbflow.core import secrets
from nbflow.core.flows import Flow
from nbflow.core.runner import FlowRunner
from nbflow.core.secrets import SecretError
from nbflow.core.tasks import task

if TYPE_CHECKING:
    from pathlib import Path


def test_secret_from_environment_then_file_and_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, nbflow_home: Path
) -> None:
    monkeypatch.setenv("NBFLOW_SECRET_API_TOKEN", "from-env-123")
    assert nbflow.secret("API_TOKEN") == "from-env-123"
    nbflow_home.mkdir(parents=True, exist_ok=True)
    (nbflow_home / "secrets.toml").write_text('WAREHOUSE = "from-file-456"\n')
    assert nbflow.secret("WAREHOUSE") == "from-file-456"
    with pytest.raises(SecretError, match="secret 'MISSING' is not set: .*NBFLOW_SECRET_MISSING"):
        nbflow.secret("MISSING")
    with pytest.raises(SecretError, match="use letters, digits and _"):
        nbflow.secret("bad-name")


def test_a_secret_read_in_a_task_is_masked_in_its_logs_and_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBFLOW_SECRET_PW", "s3cr3t-local-value")
    lines: list[str] = []

    @task
    def login() -> None:
        password = nbflow.secret("PW")
        print("using", password)
        raise PermissionError(f"denied for {password}")

    with Flow("masked") as flow:
        login()
    runner = FlowRunner(flow, echo=False)
    runner.stream.subscribe(lambda batch: lines.extend(e.message for e in batch))
    state = runner.run()
    runner.stream.flush()
    assert "using ****" in lines
    assert state.result["login"].message == "PermissionError: denied for ****"
    assert not any("s3cr3t-local-value" in line for line in lines)
    assert secrets.mask("x s3cr3t-local-value y") == "x **** y"


def test_server_key_file_is_made_0600_and_encrypts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from nbflow.server import secretbox

    path = tmp_path / "keys" / "secrets.key"
    monkeypatch.setenv(secretbox.KEY_ENV, str(path))
    token = secretbox.encrypt("value-1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "value-1" not in token and secretbox.decrypt(token) == "value-1"
