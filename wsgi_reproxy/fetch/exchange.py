"""One request to a target over a pooled urllib3 connection, framed strictly.

urllib3 supplies the pool (bounded per origin, fork-safe, TLS) and the
connection (connect timeout, certificate checks); the request is written
and the response read by :mod:`.wire`, because a proxy must know exactly
where each response ends before the connection serves another client::

    response = send(pool, url, "GET", {"Range": "bytes=0-9"}, timeouts)
    response.status, response.headers
    response.read(65536)
    response.release_conn()      # back to the pool only if cleanly ended
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

import urllib3
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.util import parse_url

from .head import Head, read_head
from .wire import Body, FramingError, SocketReader, StaleConnection

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Timeouts:
    """The bounds of one try, in seconds (``ReproxyTimeout``).

    :param connect: TCP (and TLS) connect, and waiting for a pool slot.
    :param read: any one receive, and the whole response head together.
    :param deadline: monotonic time by which the head must be in, at the
        latest (the ``TOTAL`` bound of all tries); ``None`` for no bound.
    """

    connect: float
    read: float
    deadline: float | None = None


@functools.lru_cache(maxsize=4096)
def _target(url: str) -> tuple[str, str, int, str, str]:
    """``(scheme, host, port, Host header, request target)`` of a checked URL.

    Parsed with urllib3's parser, which the allow-list check agrees with, and
    memoised: the same popular URLs are fetched again and again (issue 16).
    """
    parsed = parse_url(url)
    scheme = parsed.scheme or "http"
    host = parsed.host or ""
    port = parsed.port or _DEFAULT_PORTS[scheme]
    default = parsed.port in (None, _DEFAULT_PORTS[scheme])
    return scheme, host, port, host if default else f"{host}:{port}", parsed.request_uri


def _request_bytes(
    method: str, target: str, host: str, headers: Mapping[str, str]
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        # Values come from the WSGI environ; one with a line break or NUL
        # would inject headers, so it is dropped rather than sent.
        if "\r" in value or "\n" in value or "\0" in value:
            continue
        lines.append(f"{name}: {value}")
    lines += ["", ""]
    return "\r\n".join(lines).encode("latin-1")


class Response:
    """A target's response: its head, checked, and its body, unread.

    The same reading surface as urllib3's streamed responses
    (``read(amt, decode_content=False)``, ``length_remaining``, ``close``,
    ``release_conn``), so the streaming body does not care which it has.
    """

    def __init__(
        self,
        pool: HTTPConnectionPool,
        conn: HTTPConnection,
        reader: SocketReader,
        head: Head,
        timeouts: Timeouts,
    ) -> None:
        self._pool: HTTPConnectionPool | None = pool
        self._conn = conn
        self.head = head
        self.status = head.status
        self.reason = head.reason
        self.headers = head.headers
        self.body = Body(reader, head, timeouts.read)
        self._reusable = head.keep_alive

    def forget_head(self) -> None:
        """Let the head go once its headers are handed on: the body may be
        read for minutes, to a slow client (issue 12)."""
        del self.head, self.headers

    @property
    def length_remaining(self) -> int | None:
        """Body bytes still to read when the length is known, else ``None``."""
        if self.body.done:
            return 0
        return self.body.remaining

    def read(self, amt: int | None = None, decode_content: bool = False) -> bytes:
        """Up to *amt* body bytes (the rest when ``None``); never decoded."""
        if amt is not None:
            return self.body.read(amt)
        parts = []
        while not self.body.done:
            parts.append(self.body.read(1024 * 1024))
        return b"".join(parts)

    def read1(self, amt: int) -> bytes:
        """Up to *amt* body bytes, what one receive gives (``io``'s ``read1``,
        urllib3's too); ``b""`` only once the body has ended."""
        return self.body.read(amt, partial=True)

    def close(self) -> None:
        """Drop the connection: the rest of the body will not be read."""
        self._reusable = False
        self._conn.close()

    def release_conn(self) -> None:
        """Give the connection's pool slot back; idempotent.

        The connection itself goes back for reuse only after a response read
        to exactly its end with nothing after it (SPEC §4.10); else it is
        closed first and the slot returns empty.
        """
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if not (self._reusable and self.body.clean):
            self._conn.close()
        pool._put_conn(self._conn)


def send(
    manager: urllib3.PoolManager,
    url: str,
    method: str,
    headers: Mapping[str, str],
    timeouts: Timeouts,
) -> Response:
    """Send one request and read the final response head.

    A reused idle connection that fails before any response byte is retried
    once on a fresh connection (RFC 9112 §9.3.1; GET and HEAD are
    idempotent).

    :raise FramingError: the response cannot be framed with certainty.
    :raise OSError, TimeoutError, urllib3.exceptions.HTTPError: connection
        failures, for :func:`~.boundary.upstream_errors` to translate.
    """
    scheme, host, port, authority, target = _target(url)
    pool = manager.connection_from_host(host, port=port, scheme=scheme)
    request = _request_bytes(method, target, authority, headers)
    conn = cast(HTTPConnection, pool._get_conn(timeout=timeouts.connect))
    try:
        for attempt in (1, 2):
            fresh = conn.sock is None
            if fresh:
                conn.timeout = timeouts.connect
                conn.connect()
            sock = conn.sock
            assert sock is not None
            reader = SocketReader(sock, timeouts.read)
            try:
                sock.settimeout(timeouts.read)
                # One send is nearly always enough for a request head;
                # gevent's sendall costs a getsockopt and a loop even then.
                sent = sock.send(request)
                if sent < len(request):
                    sock.sendall(memoryview(request)[sent:])
                # READ bounds the whole head, counted from the request sent
                # (as nginx's proxy_read_timeout starts), within TOTAL.
                deadline = time.monotonic() + timeouts.read
                if timeouts.deadline is not None:
                    deadline = min(deadline, timeouts.deadline)
                head = read_head(
                    reader, method, deadline=deadline, read_timeout=timeouts.read
                )
            except (StaleConnection, ConnectionError) as exc:
                # Only a reused connection earns the retry, and only when
                # not one byte of a response arrived.
                if fresh or attempt == 2 or reader.received:
                    if isinstance(exc, StaleConnection):
                        raise FramingError(str(exc)) from None
                    raise
                conn.close()
                continue
            return Response(pool, conn, reader, head, timeouts)
        raise AssertionError("unreachable")  # pragma: no cover
    except BaseException:
        conn.close()
        pool._put_conn(conn)
        raise
