"""The HTTP/1.1 protocol the server speaks: uvicorn's, on the C parser, with a bound on a
request's head.

uvicorn offers two parsers. h11 is pure Python and refuses a head (request line and
headers) over 16 KB, but parsing with it cost about a fifth of the server's CPU for the
smallest request. httptools (llhttp, in C) costs a fraction of that, but keeps a header it
has not seen the end of in memory whatever its size: a 30 MB header took the server 0.8 s
and 120 MB. ``BoundedHeadProtocol`` is uvicorn's httptools protocol that counts what it
has been fed of the current request's head and answers 431 and closes the connection
once that passes ``MAX_HEAD_BYTES``, as h11 would.

``http_protocol()`` names what ``server start`` gives uvicorn: this protocol, or h11 where
httptools cannot be imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

#: The largest request head (request line and headers) the server reads: h11's own bound.
MAX_HEAD_BYTES = 16 * 1024

_REFUSAL = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)
_WHY = b"request headers over %d bytes" % MAX_HEAD_BYTES

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # no httptools on this platform: http_protocol() falls back to h11
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


def http_protocol() -> type[asyncio.Protocol] | str:
    """What ``uvicorn.run(http=...)`` gets: ``BoundedHeadProtocol``, or ``"h11"`` without
    httptools."""
    return "h11" if HttpToolsProtocol is None else BoundedHeadProtocol


class _HeadTooLarge(Exception):
    """Raised in a parser callback to stop parsing a head over the bound."""


if HttpToolsProtocol is not None:

    class BoundedHeadProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol that refuses a request head over ``MAX_HEAD_BYTES``.

        A head is measured two ways, each never more than its true size:

        - what the parser handed over whole: the URL's pieces and every finished header;
        - every read from the socket that the head began before and is still unfinished after
          (the parser keeps an unfinished header to itself, whatever its size).

        The read a head begins in is not counted by the second (where in it the head starts
        is not known: it may follow the body of a pipelined request), so the parser holds at
        most ``MAX_HEAD_BYTES`` plus one read (256 KB with uvloop) of a head before it is
        refused.
        """

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._in_head = False
            self._head_parsed = 0
            self._head_read = 0
            self._head_refused = False

        def on_message_begin(self) -> None:
            """A new request: its head is being read."""
            super().on_message_begin()
            self._in_head = True
            self._head_parsed = self._head_read = 0

        def on_url(self, url: bytes) -> None:
            """A piece of the request's URL."""
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            """One header, read whole."""
            self._count(len(name) + len(value) + 4)  # ": " and CRLF
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            """The head is read whole: nothing more to count for this request."""
            self._in_head = False
            super().on_headers_complete()

        def data_received(self, data: bytes) -> None:
            """Feed the parser, then refuse the request if its unfinished head grew too big."""
            head_was_open = self._in_head
            super().data_received(data)
            if not (head_was_open and self._in_head) or self.transport.is_closing():
                return
            self._head_read += len(data)
            if self._head_read > MAX_HEAD_BYTES:
                self._refuse()

        def send_400_response(self, msg: str) -> None:
            """uvicorn's answer to a request the parser gave up on: 431 when it was ours."""
            if self._head_refused:
                self._refuse()
            else:
                super().send_400_response(msg)

        def _count(self, size: int) -> None:
            self._head_parsed += size
            if self._head_parsed > MAX_HEAD_BYTES:
                self._head_refused = True
                raise _HeadTooLarge  # the parser stops; uvicorn answers with send_400_response

        def _refuse(self) -> None:
            self.logger.warning("Refused a request whose head passed %d bytes.", MAX_HEAD_BYTES)
            self.transport.write(_REFUSAL % (len(_WHY), _WHY))
            self.transport.close()
