"""Proxy-grade framing (issue 11, SPEC §4.10): hostile targets on raw sockets.

Every target here is a scripted loopback server that keeps connections
alive, so a response whose end is misjudged would leak into the next
request on the same pooled connection; each test checks exact bytes,
statuses and headers, and that the following request gets its own bytes.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import urllib3
import webtest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wsgi_reproxy import ReproxyMiddleware, parse_config

#: What a scripted path answers: the bytes to send, a pause, more bytes,
#: and whether to close the connection afterwards.
Script = Callable[[], list[bytes | float]]


def ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


@dataclass
class ScriptedServer:
    """Keep-alive loopback server answering each path with its script.

    A script item is bytes to send or a float to sleep; ``None`` closes
    the connection.  ``/own/NAME`` answers ``own-NAME`` (the probe).
    """

    scripts: dict[str, list[Any]] = field(default_factory=dict)
    sock: socket.socket = field(
        default_factory=lambda: socket.create_server(("127.0.0.1", 0))
    )
    stop: threading.Event = field(default_factory=threading.Event)
    connections: int = 0
    requests: list[str] = field(default_factory=list)
    close_on_next: set[int] = field(default_factory=set)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}{path}"

    def start(self) -> ScriptedServer:
        self.sock.settimeout(0.1)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(
                target=self._serve, args=(conn, self.connections), daemon=True
            ).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        conn.settimeout(5)
        buf = b""
        served = 0
        with conn:
            while not self.stop.is_set():
                while b"\r\n\r\n" not in buf:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                path = head.split(b" ")[1].decode()
                self.requests.append(path)
                if number in self.close_on_next and served:
                    return  # a keep-alive connection the node has dropped
                served += 1
                if path.startswith("/own/"):
                    script: list[Any] = [ok(b"own-" + path[5:].encode())]
                else:
                    script = self.scripts[path]
                for item in script:
                    if item is None:
                        return
                    if isinstance(item, float):
                        time.sleep(item)
                    else:
                        conn.sendall(item)

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    s = ScriptedServer().start()
    yield s
    s.close()


@pytest.fixture
def one_conn() -> Iterator[urllib3.PoolManager]:
    """One connection per host, so every request reuses the same socket."""
    pool = urllib3.PoolManager(maxsize=1, block=True)
    yield pool
    pool.clear()


def reproxy_app(environ: Any, start_response: Any) -> list[bytes]:
    urls = environ["QUERY_STRING"].replace("%20", " ")
    start_response("200 OK", [("X-Reproxy-Url", urls), ("Content-Type", "x/app")])
    return [b"app body"]


def client(pool: urllib3.PoolManager, conf: str = "") -> webtest.TestApp:
    config = parse_config("AllowReproxy On\nReproxyTimeout 2 1\n" + conf)
    return webtest.TestApp(
        ReproxyMiddleware(reproxy_app, config, pool=pool, cache=False)
    )


def get(app: webtest.TestApp, *urls: str, status: int | str = "*", **kw: Any) -> Any:
    return app.get("/?" + "%20".join(urls), status=status, **kw)


def probe(app: webtest.TestApp, server: ScriptedServer, name: str) -> None:
    response = get(app, server.url(f"/own/{name}"))
    assert response.status_int == 200
    assert response.body == f"own-{name}".encode()


# -- 1. interim responses ----------------------------------------------------


@pytest.mark.parametrize(
    "interim",
    [b"103 Early Hints\r\nLink: </s.css>", b"102 Processing", b"100 Continue"],
)
def test_interim_response_is_skipped_and_never_leaks_to_the_next_client(
    server: ScriptedServer, one_conn: urllib3.PoolManager, interim: bytes
) -> None:
    server.scripts["/private"] = [
        b"HTTP/1.1 " + interim + b"\r\n\r\n",
        0.02,
        ok(b"user-a-secret"),
    ]
    app = client(one_conn)
    for i in range(20):
        response = get(app, server.url("/private"))
        assert response.status_int == 200
        assert response.body == b"user-a-secret"
        probe(app, server, f"b{i}")  # another user's request, same connection
    assert server.connections == 1


def test_101_is_a_failed_try(
    server: ScriptedServer, one_conn: urllib3.PoolManager
) -> None:
    server.scripts["/up"] = [
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
        None,
    ]
    response = get(client(one_conn), server.url("/up"), server.url("/own/next"))
    assert response.body == b"own-next"


# -- 2, 3. Transfer-Encoding and Content-Length --------------------------------

CHUNKED_20 = b"14\r\n" + b"c" * 20 + b"\r\n0\r\n\r\n"


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(
            b"Transfer-Encoding: chunked\r\nContent-Length: 5", id="te-and-cl"
        ),
        pytest.param(
            b"Content-Length: 5\r\nTransfer-Encoding: chunked", id="cl-and-te"
        ),
        pytest.param(b"Transfer-Encoding: gzip, chunked", id="gzip-chunked"),
        pytest.param(b"Transfer-Encoding: chunked, chunked", id="chunked-twice"),
        pytest.param(b"Transfer-Encoding: identity", id="identity"),
        pytest.param(b"Content-Length: +20", id="cl-plus"),
        pytest.param(b"Content-Length: 2_0", id="cl-underscore"),
        pytest.param(b"Content-Length: 0x14", id="cl-hex"),
        pytest.param(b"Content-Length: -1", id="cl-negative"),
        pytest.param(b"Content-Length: 20, 21", id="cl-list-differs"),
        pytest.param(b"Content-Length: 20\r\nContent-Length: 21", id="cl-lines-differ"),
        pytest.param(b"Content-Length: \xb2\xb0", id="cl-superscript"),
        pytest.param(b"Content-Length:", id="cl-empty"),
    ],
)
def test_doubtful_framing_is_a_failed_try(
    server: ScriptedServer, one_conn: urllib3.PoolManager, head: bytes
) -> None:
    server.scripts["/bad"] = [b"HTTP/1.1 200 OK\r\n" + head + b"\r\n\r\n" + CHUNKED_20]
    app = client(one_conn)
    alone = get(app, server.url("/bad"))
    assert alone.status_int == 502
    assert b"c" * 5 not in alone.body
    failover = get(app, server.url("/bad"), server.url("/own/x"))
    assert failover.status_int == 200
    assert failover.body == b"own-x"
    probe(app, server, "after")


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"Content-Length: 20, 20", id="list"),
        pytest.param(b"Content-Length: 20\r\nContent-Length: 20", id="two-lines"),
        pytest.param(b"Content-Length:  20 ", id="blanks"),
    ],
)
def test_identical_content_lengths_fold_to_one(
    server: ScriptedServer, one_conn: urllib3.PoolManager, head: bytes
) -> None:
    server.scripts["/ok"] = [b"HTTP/1.1 200 OK\r\n" + head + b"\r\n\r\n" + b"d" * 20]
    app = client(one_conn)
    response = get(app, server.url("/ok"))
    assert response.status_int == 200
    assert response.body == b"d" * 20
    assert [v for k, v in response.headerlist if k.lower() == "content-length"] == [
        "20"
    ]
    probe(app, server, "after")


def test_chunked_body_is_dechunked_without_a_content_length(
    server: ScriptedServer, one_conn: urllib3.PoolManager
) -> None:
    server.scripts["/c"] = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"5;ext=1\r\nhello\r\n",
        0.01,
        b"6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    ]
    app = client(one_conn)
    response = get(app, server.url("/c"))
    assert response.body == b"hello world"
    assert "Transfer-Encoding" not in response.headers
    assert response.headers.get("Content-Length") in (None, "11")
    probe(app, server, "after")
    assert server.connections == 1  # the chunked response ended cleanly


# -- 4. statuses and methods without a body ------------------------------------


@pytest.mark.parametrize(
    ("status", "method"),
    [
        pytest.param(b"304 Not Modified", "GET", id="304"),
        pytest.param(b"204 No Content", "GET", id="204"),
        pytest.param(b"200 OK", "HEAD", id="head"),
    ],
)
def test_bodyless_answer_with_a_chunked_header_is_never_read(
    server: ScriptedServer, one_conn: urllib3.PoolManager, status: bytes, method: str
) -> None:
    server.scripts["/nb"] = [
        b"HTTP/1.1 " + status + b'\r\nTransfer-Encoding: chunked\r\nETag: "e"\r\n\r\n'
    ]
    app = client(one_conn)
    started = time.monotonic()
    if method == "HEAD":
        response = app.head("/?" + server.url("/nb"), status="*")
    else:
        response = get(app, server.url("/nb"))
    assert time.monotonic() - started < 0.5  # not the 1 s read timeout
    assert response.status == status.decode()
    assert response.body == b""
    probe(app, server, "after")
    assert server.connections == 1


# -- 5. header values and names -------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b"X-Name: a\rSet-Cookie: x=1", id="bare-cr"),
        pytest.param(b"X-Name: a\x00b", id="nul"),
        pytest.param(b"X-Name: a\x01b", id="control"),
        pytest.param(b"X-Name: a\x7fb", id="del"),
        pytest.param(b"Bad Name: x", id="space-in-name"),
        pytest.param(b"X-Name : x", id="space-before-colon"),
        pytest.param(b"X-Name: a\r\n folded", id="obs-fold"),
        pytest.param(b"no colon", id="no-colon"),
    ],
)
def test_invalid_target_header_fails_over_and_never_reaches_the_client(
    server: ScriptedServer, one_conn: urllib3.PoolManager, line: bytes
) -> None:
    server.scripts["/h"] = [
        b"HTTP/1.1 200 OK\r\n" + line + b"\r\nContent-Length: 2\r\n\r\nhi"
    ]
    app = client(one_conn)
    response = get(app, server.url("/h"), server.url("/own/clean"))
    assert response.status_int == 200
    assert response.body == b"own-clean"
    assert "Set-Cookie" not in response.headers
    assert "X-Name" not in response.headers
    assert get(app, server.url("/h")).status_int == 502


# -- 6. stale keep-alive --------------------------------------------------------


def test_reused_connection_closed_by_the_node_is_retried_once_fresh(
    server: ScriptedServer, one_conn: urllib3.PoolManager
) -> None:
    server.close_on_next.add(1)  # the first connection dies after one answer
    app = client(one_conn)
    probe(app, server, "first")
    probe(app, server, "second")  # would be a 502 from a healthy node
    assert server.connections == 2
    assert server.requests == ["/own/first", "/own/second", "/own/second"]


def test_fresh_connection_failing_is_not_retried(
    server: ScriptedServer, one_conn: urllib3.PoolManager
) -> None:
    server.scripts["/drop"] = [None]
    assert get(client(one_conn), server.url("/drop")).status_int == 502
    assert server.requests == ["/drop"]


# -- 7. head, then nothing --------------------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"Content-Length: 100", id="length"),
        pytest.param(b"Content-Length: 900000", id="large-length"),
        pytest.param(b"Transfer-Encoding: chunked", id="chunked"),
    ],
)
def test_head_then_close_before_the_first_body_byte_is_a_failed_try(
    server: ScriptedServer, one_conn: urllib3.PoolManager, head: bytes
) -> None:
    server.scripts["/hc"] = [b"HTTP/1.1 200 OK\r\n" + head + b"\r\n\r\n", None]
    app = client(one_conn)
    assert get(app, server.url("/hc")).status_int == 502
    response = get(app, server.url("/hc"), server.url("/own/y"))
    assert (response.status_int, response.body) == (200, b"own-y")


def test_extra_bytes_after_the_body_never_reach_the_next_request(
    server: ScriptedServer, one_conn: urllib3.PoolManager
) -> None:
    smuggled = ok(b"smuggled")
    server.scripts["/x"] = [ok(b"mine") + smuggled]
    app = client(one_conn)
    assert get(app, server.url("/x")).body == b"mine"
    probe(app, server, "next")


def test_total_timeout_bounds_all_tries(
    server: ScriptedServer, one_conn: urllib3.PoolManager
) -> None:
    server.scripts["/slow"] = [1.5, ok(b"late")]
    app = client(one_conn, "ReproxyTimeout 2 1 0.8\n")
    started = time.monotonic()
    response = get(app, server.url("/slow"), server.url("/slow"), server.url("/slow"))
    elapsed = time.monotonic() - started
    assert response.status_int == 504
    assert elapsed < 1.3  # each try alone would run to the 1 s read timeout


# -- the pool after any sequence of hostile responses -----------------------------

SHAPES: dict[str, list[Any]] = {
    "interim": [b"HTTP/1.1 103 Early Hints\r\n\r\n", ok(b"late")],
    "te-cl": [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
        + CHUNKED_20
    ],
    "bad-cl": [b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nabcde"],
    "extra": [ok(b"x") + ok(b"ghost")],
    "short-close": [b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort", None],
    "bare-cr": [b"HTTP/1.1 200 OK\r\nA: b\rC: d\r\nContent-Length: 1\r\n\r\nz"],
    "304-chunked": [b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"],
    "close-delimited": [b"HTTP/1.1 200 OK\r\n\r\nuntil-close", None],
    "404": [b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope"],
    "chunked": [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + CHUNKED_20],
    "bad-chunk": [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
    ],
    "ok": [ok(b"fine")],
}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.sampled_from(sorted(SHAPES)), min_size=1, max_size=6))
def test_every_request_gets_its_own_bytes_after_any_hostile_sequence(
    shapes: list[str],
) -> None:
    server = ScriptedServer(scripts={f"/{k}": v for k, v in SHAPES.items()}).start()
    pool = urllib3.PoolManager(maxsize=1, block=True)
    try:
        app = client(pool)
        for i, shape in enumerate(shapes):
            get(app, server.url(f"/{shape}"), expect_errors=True)
            probe(app, server, f"{i}")
            (key,) = pool.pools.keys()
            cp = pool.pools[key]
            assert cp.pool is not None and cp.pool.qsize() == 1  # slot back
            conn = cp.pool.queue[0]
            # idle-and-clean (nothing unread on it) or closed
            assert conn is None or conn.sock is None or not _readable(conn.sock)
    finally:
        pool.clear()
        server.close()


def _readable(sock: socket.socket) -> bool:
    from urllib3.util.wait import wait_for_read

    return wait_for_read(sock, timeout=0.0)


# -- the per-host bound ------------------------------------------------------------


def test_past_the_per_host_bound_the_client_gets_503_after_the_connect_timeout(
    server: ScriptedServer, one_conn: urllib3.PoolManager
) -> None:
    big = b"b" * (1 << 20)
    server.scripts["/big"] = [ok(big)]
    config = parse_config("AllowReproxy On\nReproxyTimeout 0.3 1\n")
    mw = ReproxyMiddleware(reproxy_app, config, pool=one_conn, cache=False)
    env = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "QUERY_STRING": server.url("/big"),
    }
    held = mw(dict(env), lambda status, headers, exc=None: None)
    assert next(iter(held))  # one transfer in flight holds the only connection
    try:
        started = time.monotonic()
        busy = webtest.TestApp(mw).get("/?" + server.url("/own/z"), status="*")
        waited = time.monotonic() - started
        assert busy.status == "503 Service Unavailable"
        assert busy.headers["Retry-After"] == "1"
        assert 0.25 < waited < 1.0
    finally:
        held.close()  # type: ignore[attr-defined]
    probe(webtest.TestApp(mw), server, "freed")


def test_default_pool_bound_comes_from_the_environment(monkeypatch: Any) -> None:
    from wsgi_reproxy.fetch import pool as pool_module

    monkeypatch.setenv(pool_module.MAX_CONNECTIONS_ENV, "7")
    monkeypatch.setattr(pool_module, "_pool", None)  # restored after the test
    monkeypatch.setattr(pool_module, "_pool_pid", -1)  # as a fresh worker
    manager = pool_module.default_pool()
    assert manager.connection_pool_kw["maxsize"] == 7
    assert manager.connection_pool_kw["block"] is True
    monkeypatch.setenv(pool_module.MAX_CONNECTIONS_ENV, "0")
    with pytest.raises(ValueError, match="positive"):
        pool_module.max_connections()


def test_target_sees_the_request_as_it_reached_the_middleware(
    server: ScriptedServer, one_conn: urllib3.PoolManager
) -> None:
    # An inner layer may rewrite the environ (PEP 3333): a HEAD made into a
    # GET must still be a HEAD at the target, and its body never sent.
    seen: list[bytes] = []
    server.scripts["/m"] = [b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"]

    def rewriting(environ: Any, start_response: Any) -> list[bytes]:
        environ["REQUEST_METHOD"] = "GET"
        environ["PATH_INFO"] = "/elsewhere"
        return reproxy_app(environ, start_response)

    original = ScriptedServer._serve

    def recording(self: ScriptedServer, conn: socket.socket, number: int) -> None:
        class Spy:
            def __init__(self, sock: socket.socket) -> None:
                self.sock = sock

            def recv(self, n: int) -> bytes:
                data = self.sock.recv(n)
                seen.append(data)
                return data

            def __getattr__(self, name: str) -> Any:
                return getattr(self.sock, name)

            def __enter__(self) -> Any:
                return self

            def __exit__(self, *exc: object) -> None:
                self.sock.close()

        original(self, Spy(conn), number)  # type: ignore[arg-type]

    server._serve = recording.__get__(server)  # type: ignore[method-assign]
    config = parse_config("AllowReproxy On\nReproxyTimeout 2 1\n")
    app = webtest.TestApp(
        ReproxyMiddleware(rewriting, config, pool=one_conn, cache=False)
    )
    response = app.head("/?" + server.url("/m"), status="*")
    assert response.status_int == 200
    assert response.headers["Content-Length"] == "4"
    assert b"".join(seen).startswith(b"HEAD /m HTTP/1.1\r\n")
