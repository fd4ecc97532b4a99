"""Body reads paced to the client's socket (issue 12): never more than its
send buffer takes now, a tail last before it is full, a wait while it is.
Real loopback sockets; the client side reads nothing unless told."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import RawServer, TargetServer, make_bytes

from wsgi_reproxy import Settings
from wsgi_reproxy.fetch.fetcher import Fetcher
from wsgi_reproxy.responders.pace import TAIL, ClientPace, client_pace

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="SO_MEMINFO: the send queue is read on Linux"
)

SETTINGS = Settings(allow_reproxy=True, connect_timeout=1, read_timeout=1)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(server side, client side) of one loopback TCP connection; the
    client's small receive buffer makes the server's send buffer fill."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        client.connect(listener.getsockname())
        server, _ = listener.accept()
    with server, client:
        server.settimeout(0.3)
        yield server, client


def fill(server: socket.socket, pace: ClientPace, want: int) -> list[int]:
    """Send what *pace* allows until it gives up waiting; the sizes."""
    sizes: list[int] = []
    for _ in range(100_000):  # bounded: a few MiB of buffers at most
        try:
            size = pace.size(want)
        except TimeoutError:
            return sizes
        started = time.monotonic()
        server.sendall(b"x" * size)  # raises if the kernel refused to take it
        assert time.monotonic() - started < 0.2, "a paced send had to wait"
        sizes.append(size)
    raise AssertionError("the send buffer never filled")


def test_reads_stop_a_tail_short_of_a_full_buffer_then_wait(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    pace = ClientPace(server)
    started = time.monotonic()
    sizes = fill(server, pace, 16384)
    # Every read was taken at once by a send that polls for writability
    # first (Python's, with a timeout), and the client got none: the last
    # piece before the wait (what the WSGI server keeps referenced through
    # it) is at most two tails and a little, and the wait ended at the socket's timeout.
    assert sizes and max(sizes) <= 16384
    assert 0 < sizes[-1] <= 2 * TAIL + 256
    assert sum(sizes) > 16384
    assert time.monotonic() - started >= 0.3
    assert pace.budget() < 0


def test_a_client_that_reads_again_gets_reads_again(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    pace = ClientPace(server)
    sent = sum(fill(server, pace, 16384))
    client.settimeout(5)
    received = 0
    while received < sent:
        received += len(client.recv(1 << 20))
    deadline = time.monotonic() + 5
    while pace.budget() < 16384 + TAIL and time.monotonic() < deadline:
        time.sleep(0.01)  # the acks arrive
    assert pace.size(16384) == 16384


@pytest.mark.parametrize("timeout", [None, 5.0], ids=["blocking", "with-timeout"])
def test_a_wait_ends_when_the_client_reads(
    pair: tuple[socket.socket, socket.socket], timeout: float | None
) -> None:
    server, client = pair
    pace = ClientPace(server)
    server.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        for _ in range(10_000):  # the whole send buffer: the next call waits
            server.send(b"x" * 65536)
    server.settimeout(timeout)
    reader = threading.Timer(0.2, lambda: drain(client))
    reader.start()
    try:
        started = time.monotonic()
        assert pace.size(16384) > 0
        assert time.monotonic() - started >= 0.15
    finally:
        reader.join()


def drain(client: socket.socket) -> None:
    client.settimeout(0.5)
    try:
        while client.recv(1 << 20):
            pass
    except TimeoutError:
        pass


def test_budget_is_what_a_send_takes_without_waiting(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, _ = pair
    pace = ClientPace(server)
    size = server.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    # Python's sendall with a timeout polls first: two thirds (writable)
    assert pace.budget() == 2 * size // 3
    # a send that tries first (blocking, or gevent's): the whole buffer
    server.settimeout(None)
    assert pace.budget() == size
    server.settimeout(0.3)
    empty = pace.budget()
    assert pace.size(4096) == 4096  # plenty of room: what was asked
    # Near the limit a quarter short of it (the kernel counts bookkeeping)
    assert pace.size(empty) == (empty - TAIL) * 3 // 4
    assert pace.size(2 * TAIL) == 2 * TAIL  # plenty for a small read


def test_a_closed_client_socket_leaves_the_send_to_fail(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, _ = pair
    pace = ClientPace(server)
    server.close()
    assert pace.size(16384) == 16384


def _environ(sock: Any, protocol: str = "HTTP/1.1") -> dict[str, Any]:
    return {"gunicorn.socket": sock, "SERVER_PROTOCOL": protocol}


def test_paced_only_with_gunicorns_http1_client_socket(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, _ = pair
    for protocol in ("HTTP/1.1", "HTTP/1.0"):
        pace = client_pace(_environ(server, protocol))
        assert pace is not None and isinstance(pace.__self__, ClientPace)
    assert client_pace(_environ(server, "HTTP/2")) is None
    assert client_pace({"SERVER_PROTOCOL": "HTTP/1.1"}) is None  # mod_wsgi
    left, right = socket.socketpair()  # gunicorn bound to unix:PATH
    with left, right:
        assert client_pace(_environ(left)) is None


def test_body_reads_what_the_pace_allows(target: TargetServer, pool: Any) -> None:
    upstream = Fetcher(pool).open(target.url("/files/1m.bin"), "GET", {}, SETTINGS)
    asked: list[int] = []

    def pace(want: int) -> int:
        asked.append(want)
        return 1000

    upstream.body.pace = pace
    try:
        pieces = list(upstream.body)
    finally:
        upstream.body.close()
    data = b"".join(pieces)
    expected = make_bytes(1 << 20, "1m")
    assert hashlib.sha256(data).digest() == hashlib.sha256(expected).digest()
    # The first piece was read before the response started; every later
    # read is at most the pace's size (what arrived: a paced read does not
    # wait to fill), asked with the body's own read size.
    assert max(len(p) for p in pieces[1:]) == 1000
    assert len(pieces) >= 1 + (len(data) - len(pieces[0])) // 1000
    assert asked and min(asked) >= 1000


def _lagging(conn: socket.socket, head: bytes, stop: threading.Event) -> None:
    """A node that sends 20,000 of 100,000 body bytes, then lags 1 s."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"a" * 20_000)
    if not stop.wait(1.0):
        conn.sendall(b"b" * 80_000)


@pytest.mark.parametrize("framing", ["length", "close"])
def test_a_paced_read_hands_over_what_a_lagging_node_sent(
    pool: Any, framing: str
) -> None:
    # Waiting for a read's whole size would hold its buffer through the
    # node's lag, in every slow download at once: a paced read returns
    # what arrived (the first 16 KiB was read before the response began).
    def lagging(conn: socket.socket, head: bytes, stop: threading.Event) -> None:
        if framing == "length":
            _lagging(conn, head, stop)
            return
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"a" * 20_000)
        if not stop.wait(1.0):
            conn.sendall(b"b" * 80_000)

    server = RawServer(lagging).start()
    try:
        upstream = Fetcher(pool).open(server.url("/lag"), "GET", {}, SETTINGS)
        upstream.body.pace = lambda want: 65536
        try:
            started = time.monotonic()
            pieces = [next(upstream.body), next(upstream.body)]
            waited = time.monotonic() - started
            pieces += list(upstream.body)
        finally:
            upstream.body.close()
    finally:
        server.stop()
    assert [len(p) for p in pieces[:2]] == [16384, 20_000 - 16384]
    assert waited < 0.8
    assert b"".join(pieces) == b"a" * 20_000 + b"b" * 80_000
    assert upstream.body.complete
