"""The idle-connection check before reuse (issue 11's guard, issue 16's cost).

A pooled connection that has anything to read (bytes a node sent after its
response ended, or the end of stream) or an error is dropped before it
carries another request: :func:`wsgi_reproxy.fetch.idle.has_pending`, a
native ``poll(0)``, also under gevent's monkey patching.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import webtest

from wsgi_reproxy import ReproxyMiddleware, parse_config
from wsgi_reproxy.fetch.exchange import Timeouts, send
from wsgi_reproxy.fetch.idle import has_pending
from wsgi_reproxy.fetch.pool import OriginPools


def ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected loopback TCP pair: (ours, the node's)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        ours = socket.create_connection(listener.getsockname(), timeout=2)
        theirs, _ = listener.accept()
    yield ours, theirs
    ours.close()
    theirs.close()


def _settle(check: socket.socket) -> None:
    """Give loopback a moment to deliver what the peer just did (bounded)."""
    for _ in range(100):
        if has_pending(check):
            return
        time.sleep(0.005)


def test_an_idle_open_connection_has_nothing_pending(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, _ = pair
    assert has_pending(ours) is False


def test_bytes_sent_after_a_response_are_pending(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    theirs.sendall(b"HTTP/1.1 200 OK\r\n")
    _settle(ours)
    assert has_pending(ours) is True
    assert ours.recv(100) == b"HTTP/1.1 200 OK\r\n"  # only looked, never read


def test_a_connection_the_node_closed_is_pending(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    theirs.close()
    _settle(ours)
    assert has_pending(ours) is True


def test_a_connection_the_node_reset_is_pending(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    # SO_LINGER 0: close sends RST, which poll reports as POLLERR/POLLHUP.
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    theirs.close()
    _settle(ours)
    assert has_pending(ours) is True


class KeepAliveNode:
    """Answers each request on a kept-alive connection with the next script.

    A script is what to send after reading one request head: bytes, a float
    to sleep, or ``None`` to close.  ``connections`` counts accepted ones.
    """

    def __init__(self, scripts: list[list[bytes | float | None]]) -> None:
        self.scripts = scripts
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def port(self) -> int:
        port: int = self.listener.getsockname()[1]
        return port

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        buf = b""
        with conn:
            while self.scripts and not self.stop.is_set():
                while b"\r\n\r\n" not in buf:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buf += data
                buf = buf.split(b"\r\n\r\n", 1)[1]
                for item in self.scripts.pop(0):
                    if item is None:
                        return
                    if isinstance(item, float):
                        time.sleep(item)
                    else:
                        conn.sendall(item)

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


def _app(pool: OriginPools) -> webtest.TestApp:
    def reproxy_app(environ: object, start_response: object) -> list[bytes]:
        url = f"http://127.0.0.1:{environ['QUERY_STRING']}/f"  # type: ignore[index]
        start_response("200 OK", [("X-Reproxy-Url", url)])  # type: ignore[operator]
        return [b"app body"]

    config = parse_config("AllowReproxy On\nReproxyTimeout 2 1\n")
    return webtest.TestApp(
        ReproxyMiddleware(reproxy_app, config, pool=pool, cache=False)
    )


def test_stray_bytes_after_a_response_never_answer_the_next_request() -> None:
    # The node answers, then sends a second "response" nobody asked for
    # while the connection is idle in the pool.
    node = KeepAliveNode([[ok(b"mine"), 0.05, ok(b"ghost")], [ok(b"yours")]])
    pool = OriginPools(num_pools=4, maxsize=1, block=True)
    try:
        app = _app(pool)
        assert app.get(f"/?{node.port}").body == b"mine"
        time.sleep(0.3)  # the ghost is on the idle connection by now
        response = app.get(f"/?{node.port}")
        assert (response.status_int, response.body) == (200, b"yours")
        assert node.connections == 2  # the dirty one was dropped, not reused
    finally:
        pool.clear()
        node.close()


def test_a_pooled_connection_the_node_closed_is_dropped_before_reuse() -> None:
    node = KeepAliveNode([[ok(b"mine"), None]])
    pool = OriginPools(num_pools=4, maxsize=1, block=True)
    try:
        url = f"http://127.0.0.1:{node.port}/f"
        response = send(pool, url, "GET", {}, Timeouts(2, 2))
        assert response.read() == b"mine"
        response.release_conn()
        cp = pool.connection_from_host("127.0.0.1", node.port, "http")
        conn = cp.pool.queue[0]  # type: ignore[union-attr]
        assert conn.sock is not None  # idle, kept
        _settle(conn.sock)
        reused = cp._get_conn(timeout=1)
        assert reused is conn
        assert reused.sock is None  # the check closed it before any request
        cp._put_conn(reused)
    finally:
        pool.clear()
        node.close()


# The same checks in a process patched by gevent, as serve's workers are.
_UNDER_GEVENT = """
from gevent import monkey
monkey.patch_all()
import select, socket, time
from wsgi_reproxy.fetch import idle

native = monkey.get_original("select", "poll")
assert select.poll is not native  # gevent's patched poll is in place

def pair():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        ours = socket.create_connection(listener.getsockname(), timeout=2)
        theirs, _ = listener.accept()
    return ours, theirs

ours, theirs = pair()
assert idle.has_pending(ours) is False
assert idle._native_poll() is native  # the unpatched one is used
theirs.sendall(b"stray")
for _ in range(100):
    if idle.has_pending(ours):
        break
    time.sleep(0.005)
assert idle.has_pending(ours) is True
ours.close()
theirs.close()
ours, theirs = pair()
theirs.close()
for _ in range(100):
    if idle.has_pending(ours):
        break
    time.sleep(0.005)
assert idle.has_pending(ours) is True
ours.close()
print("ok")
"""


def test_under_gevent_the_check_uses_the_unpatched_poll_and_still_sees() -> None:
    pytest.importorskip("gevent")
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_UNDER_GEVENT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")


def test_without_gevent_loaded_the_check_does_not_import_it() -> None:
    code = (
        "import socket, sys\n"
        "from wsgi_reproxy.fetch.idle import has_pending\n"
        "a, b = socket.socketpair()\n"
        "assert has_pending(a) is False\n"
        "a.close(); b.close()\n"
        "print('gevent' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "False\n", "")


def test_a_select_poll_replaced_after_import_is_the_one_used(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    import select

    calls: list[int] = []
    real = select.poll

    def counting() -> Any:
        calls.append(1)
        return real()

    monkeypatch.setattr(select, "poll", counting)
    ours, theirs = pair
    assert has_pending(ours) is False
    theirs.sendall(b"x")
    _settle(ours)
    assert has_pending(ours) is True
    assert len(calls) >= 2


def test_without_poll_the_check_is_urllib3s_select(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    import select

    import urllib3.util.wait as wait

    monkeypatch.delattr(select, "poll")
    monkeypatch.setattr(wait, "wait_for_socket", wait.select_wait_for_socket)
    ours, theirs = pair
    assert has_pending(ours) is False
    theirs.sendall(b"x")
    time.sleep(0.05)
    assert has_pending(ours) is True


def test_the_default_pools_connections_use_the_cheap_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import wsgi_reproxy.fetch.pool as pool_module

    asked: list[object] = []

    def spy(sock: object) -> bool:
        asked.append(sock)
        return has_pending(sock)

    monkeypatch.setattr(pool_module, "has_pending", spy)
    pools = OriginPools(num_pools=4, maxsize=1)
    try:
        for scheme, port in (("http", 80), ("https", 443)):
            cls = pools.connection_from_host("127.0.0.1", port, scheme).ConnectionCls
            conn = cls("127.0.0.1", port)
            assert conn.is_connected is False  # no socket yet
            with socket.create_server(("127.0.0.1", 0)) as listener:
                conn.sock = socket.create_connection(listener.getsockname())
                peer, _ = listener.accept()
            with peer:
                assert conn.is_connected is True
                peer.sendall(b"stray")
                _settle(conn.sock)
                assert conn.is_connected is False
            assert asked == [conn.sock, conn.sock]
            asked.clear()
            conn.sock.close()
            conn.sock = None
    finally:
        pools.clear()
