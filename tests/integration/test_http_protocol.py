"""The server's HTTP/1.1 protocol (``nbflow.server.protocol``) against a real server process:
request heads over the bound are refused whichever way they arrive, everything else is
served, and the server's memory does not follow what a client sends."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from server_helpers import ServerProcess  # noqa: E402

from nbflow.server.protocol import MAX_HEAD_BYTES, BoundedHeadProtocol, http_protocol  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("http-protocol")
    proc = ServerProcess(home, f"sqlite+aiosqlite:///{home / 'nbflow.db'}").start()
    try:
        yield proc
    finally:
        proc.stop()


def connect(server: ServerProcess) -> socket.socket:
    address = urlsplit(server.url)
    connection = socket.create_connection((address.hostname, address.port), timeout=30)
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each send its own segment
    return connection


def request(
    server: ServerProcess, query: str = "{ me { role } }", *, extra: bytes = b"", **variables: str
) -> bytes:
    body = json.dumps({"query": query, "variables": variables}).encode()
    return (
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {server.admin_key}\r\n".encode()
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


def answers(connection: socket.socket, count: int = 1) -> list[bytes]:
    """The status lines of the next ``count`` responses (read until the connection says so)."""
    data = b""
    deadline = time.monotonic() + 30
    while data.count(b"HTTP/1.1 ") < count and time.monotonic() < deadline:
        try:
            chunk = connection.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return [line.split(b"\r\n")[0] for line in (b"HTTP/1.1 " + part for part in data.split(b"HTTP/1.1 ")[1:])]


def send_refusable(connection: socket.socket, data: bytes, pieces: int = 1, pause: float = 0.0) -> None:
    """Send ``data`` in ``pieces``; the server may close the connection before it is all sent."""
    size = -(-len(data) // pieces)
    try:
        for start in range(0, len(data), size):
            connection.sendall(data[start : start + size])
            time.sleep(pause)
    except (ConnectionResetError, BrokenPipeError):
        pass


def still_serves(server: ServerProcess) -> None:
    with server.client() as client:
        assert client.graphql("{ me { role } }")["me"]["role"] == "admin"


def test_the_server_runs_the_bounded_c_parser() -> None:
    assert http_protocol() is BoundedHeadProtocol


@pytest.mark.parametrize(
    ("what", "head"),
    [
        ("one header of 4 MB", b"X-Padding: " + b"a" * 4_000_000 + b"\r\n"),
        ("2,000 headers of 40 bytes", b"".join(b"X-H%d: %s\r\n" % (i, b"b" * 30) for i in range(2000))),
        ("a path of 1 MB", None),
    ],
)
def test_a_head_over_the_bound_is_answered_431_however_it_is_made(
    server: ServerProcess, what: str, head: bytes | None
) -> None:
    if head is None:
        data = b"GET /" + b"p" * 1_000_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    else:
        data = request(server, extra=head)
    with connect(server) as connection:
        send_refusable(connection, data)
        assert answers(connection) == [b"HTTP/1.1 431 Request Header Fields Too Large"], what
    still_serves(server)


def test_a_head_dribbled_in_small_pieces_is_counted_across_them(server: ServerProcess) -> None:
    # 400 segments of 100 bytes: no one read is big, the head they make is.
    head = b"X-Padding: " + b"c" * 40_000 + b"\r\n"
    with connect(server) as connection:
        send_refusable(connection, request(server, extra=head), pieces=400, pause=0.001)
        assert answers(connection) == [b"HTTP/1.1 431 Request Header Fields Too Large"]
    still_serves(server)


def test_heads_within_the_bound_are_served(server: ServerProcess) -> None:
    near = b"X-Padding: " + b"d" * (MAX_HEAD_BYTES - 1024) + b"\r\n"
    with connect(server) as connection:
        send_refusable(connection, request(server, extra=near), pieces=20, pause=0.001)
        assert answers(connection) == [b"HTTP/1.1 200 OK"]


def test_pipelined_requests_after_a_large_body_are_all_served(server: ServerProcess) -> None:
    # The second head starts in the same read as the end of the first body (600 KB): it must
    # not be counted as part of that head.
    big = request(server, "query($pad: String) { me { role } }", pad="e" * 600_000)
    with connect(server) as connection:
        connection.sendall(big + request(server) + request(server))
        assert answers(connection, 3) == [b"HTTP/1.1 200 OK"] * 3


def test_the_server_does_not_hold_what_a_huge_head_sends(server: ServerProcess) -> None:
    assert server.proc is not None
    process = psutil.Process(server.proc.pid)
    before = process.memory_info().rss
    for _ in range(3):
        with connect(server) as connection:
            send_refusable(connection, request(server, extra=b"X-Padding: " + b"f" * 64_000_000 + b"\r\n"))
            answers(connection)
    still_serves(server)
    assert process.memory_info().rss - before < 32_000_000
