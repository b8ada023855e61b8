"""Real nbflow server processes for tests: SQLite files or fresh PostgreSQL databases."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_url() -> str | None:
    return os.environ.get("NBFLOW_TEST_POSTGRES_URL") or None


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new empty database on the test PostgreSQL server, dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(postgres_url() or "")
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"nbflow_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name, drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class ServerProcess:
    """``nbflow server start`` in a subprocess, on a free loopback port."""

    def __init__(self, home: Path, database_url: str, **options: float) -> None:
        self.home = home
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.options = {"scheduler_interval": 0.5, "recovery_interval": 0.5, **options}
        self.proc: subprocess.Popen[str] | None = None
        self.admin_key: str | None = None
        self.log_path = home / f"server-{self.port}.log"

    def env(self) -> dict[str, str]:
        return {**os.environ, "NBFLOW_HOME": str(self.home), "PYTHONUNBUFFERED": "1"}

    def start(self, timeout: float = 30) -> ServerProcess:
        args = [
            sys.executable,
            "-m",
            "nbflow.cli",
            "server",
            "start",
            "--db",
            self.database_url,
            "--port",
            str(self.port),
        ]
        for name, value in self.options.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(args, env=self.env(), stdout=log, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"server did not start in {timeout}s:\n{self.log_path.read_text()}")
        match = re.search(r"^\s+(nbf_\S+)$", self.log_path.read_text(), re.MULTILINE)
        if match and self.admin_key is None:
            self.admin_key = match.group(1)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def client(self, key: str | None = None):  # type: ignore[no-untyped-def]
        from nbflow.client import Client

        return Client(self.url, key or self.admin_key, retries=0)

    def cli(self, *args: str, key: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**self.env(), "NBFLOW_API_URL": self.url, "NBFLOW_API_KEY": key or self.admin_key or ""}
        done = subprocess.run(
            [sys.executable, "-m", "nbflow.cli", *args], env=env, capture_output=True, text=True, timeout=120
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"nbflow {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        return done


class AgentProcess:
    """``nbflow agent start`` in a subprocess."""

    def __init__(
        self, server: ServerProcess, key: str, *, labels: str = "", concurrency: int = 4, name: str = ""
    ) -> None:
        self.server = server
        self.key = key
        self.labels = labels
        self.concurrency = concurrency
        self.name = name or f"agent-{uuid.uuid4().hex[:6]}"
        self.proc: subprocess.Popen[str] | None = None
        self.log_path = server.home / f"{self.name}.log"

    def start(self) -> AgentProcess:
        args = [
            sys.executable, "-m", "nbflow.cli", "agent", "start", "--server", self.server.url, "--key", self.key,
            "--concurrency", str(self.concurrency), "--name", self.name, "--poll-wait", "1", "--heartbeat-interval", "0.5",
        ]  # fmt: skip
        if self.labels:
            args += ["--labels", self.labels]
        self.proc = subprocess.Popen(
            args, env=self.server.env(), stdout=self.log_path.open("a"), stderr=subprocess.STDOUT, text=True
        )
        deadline = time.time() + 20
        while "polling" not in (self.log_path.read_text() if self.log_path.exists() else ""):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"agent did not start:\n{self.log_path.read_text()}")
            time.sleep(0.1)
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


def wait_for(predicate, timeout: float = 30, interval: float = 0.2, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
