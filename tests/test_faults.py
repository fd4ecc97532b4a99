"""Fault injection: misbehaving storage nodes, hostile URLs, client headers.

Every case runs the real middleware against a real loopback server
(:class:`FaultServer`, a raw-socket HTTP/1.1 server whose behaviour is
picked by the request path) and asserts three things: what the client gets,
what is logged, and that the pool slot and file descriptors came back.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3

from wsgi_reproxy import ReproxyMiddleware, Settings, parse_config
from wsgi_reproxy.exceptions import redact_query
from wsgi_reproxy.run.storage import closed_port_url

BODY = bytes(range(256)) * 64  # 16 KiB, every byte value
APP_BODY = b"the app's own body must never reach the client"
LOOPBACK = "http://127.0.0.1:*/"
LOG = "wsgi_reproxy"


# -- a loopback server that misbehaves on request ------------------------------


def _read_head(conn: socket.socket, buf: bytearray) -> bytes | None:
    """Read one request head from *conn*; ``None`` at EOF."""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return None
        buf += data
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    buf[:] = rest
    return head


def _wait_for_eof(conn: socket.socket, stop: threading.Event) -> None:
    """Stall: send nothing until the client hangs up (or the test ends)."""
    conn.settimeout(0.05)
    while not stop.is_set():
        try:
            if not conn.recv(65536):
                return
        except TimeoutError:
            continue


def _response(status: str, body: bytes, *headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class FaultServer:
    """Raw-socket HTTP/1.1 server on 127.0.0.1, port 0.

    Paths: ``/ok``, ``/close-mid-body``, ``/stall-after-headers``,
    ``/stall-before-headers``, ``/overlong``, ``/malformed-status``,
    ``/many-headers``, ``/long-header``, ``/status?code=N``,
    ``/redirect?to=URL``, ``/echo`` (the request headers as JSON).
    """

    listener: socket.socket = field(default_factory=socket.socket)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    conns: set[socket.socket] = field(default_factory=set)
    paths: list[str] = field(default_factory=list)

    def start(self) -> FaultServer:
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.05)
        self._spawn(self._accept)
        return self

    def url(self, path: str) -> str:
        port = self.listener.getsockname()[1]
        return f"http://127.0.0.1:{port}{path}"

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(5)
        self.listener.close()

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.conns.add(conn)
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        buf = bytearray()
        try:
            while not self.stop.is_set():
                head = _read_head(conn, buf)
                if head is None or not self._answer(conn, head):
                    return
        except OSError:
            return
        finally:
            self.conns.discard(conn)
            conn.close()

    def _answer(self, conn: socket.socket, head: bytes) -> bool:
        """Answer one request; ``False`` closes the connection."""
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        target = urlsplit(request_line.split(" ")[1])
        query = {k: v[0] for k, v in parse_qs(target.query).items()}
        self.paths.append(target.path)
        path = target.path
        if path == "/ok":
            conn.sendall(_response("200 OK", BODY))
        elif path == "/echo":
            headers = dict(line.split(": ", 1) for line in header_lines)
            conn.sendall(_response("200 OK", json.dumps(headers).encode()))
        elif path == "/status":
            conn.sendall(_response(f"{query['code']} Whatever", b"error page"))
        elif path == "/redirect":
            conn.sendall(_response("302 Found", b"", f"Location: {query['to']}"))
        elif path == "/close-mid-body":
            conn.sendall(_response("200 OK", BODY)[: -len(BODY) // 2])
            return False
        elif path == "/stall-after-headers":
            conn.sendall(_response("200 OK", BODY)[: -len(BODY) // 2])
            _wait_for_eof(conn, self.stop)
            return False
        elif path == "/stall-before-headers":
            _wait_for_eof(conn, self.stop)
            return False
        elif path == "/trickle-headers":
            # One byte every 50 ms: each recv() beats the read timeout.
            for byte in _response("200 OK", BODY)[:24]:
                if self.stop.wait(0.05):
                    return False
                conn.sendall(bytes([byte]))
            return False
        elif path == "/overlong":
            # Content-Length says 16 KiB; 1 KiB more follows on the socket.
            conn.sendall(_response("200 OK", BODY) + b"X" * 1024)
        elif path == "/malformed-status":
            conn.sendall(b"HTTP/1.1 two-hundred OK\r\nContent-Length: 2\r\n\r\nhi")
            return False
        elif path == "/many-headers":
            # 100 KB of headers: 2,000 lines (http.client stops at 100).
            extra = [f"X-Filler-{i}: {'v' * 40}" for i in range(2000)]
            conn.sendall(_response("200 OK", BODY, *extra))
            return False
        elif path == "/long-header":
            # 100 KB in one header line (http.client stops at 64 KiB).
            conn.sendall(_response("200 OK", BODY, "X-Huge: " + "v" * 100_000))
            return False
        else:
            conn.sendall(_response("404 Not Found", b""))
        return True


# -- the app, the client and the cleanliness checks ----------------------------


class FixedSettings:
    """A config that resolves every request to the same settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def resolve(self, environ: Any) -> Settings:
        return self.settings


def settings(**kwargs: Any) -> Settings:
    base: dict[str, Any] = {
        "allow_reproxy": True,
        "allow_targets": (LOOPBACK,),
        "connect_timeout": 1.0,
        "read_timeout": 0.3,
        "origins": (("allow_targets", "faults.conf:3"),),
    }
    base.update(kwargs)
    return Settings(**base)


def reproxy_app(routes: dict[str, str]) -> Callable[..., Iterable[bytes]]:
    """An app answering ``X-Reproxy-Url: routes[PATH_INFO]``."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response(
            "200 OK",
            [("X-Reproxy-Url", routes[environ["PATH_INFO"]]), ("X-App", "yes")],
        )
        return [APP_BODY]

    return app


@dataclass
class Result:
    status: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def call(app: Any, path: str = "/", **environ: str) -> Result:
    """Run one request like a WSGI server: iterate, then always close()."""
    env: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": None,
        "wsgi.errors": None,
        **environ,
    }
    started: list[Any] = []
    iterable = app(
        env, lambda status, headers, exc_info=None: started.append((status, headers))
    )
    try:
        body = b"".join(iterable)
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    return Result(started[0][0], list(started[0][1]), body)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@dataclass
class Rig:
    """One test's server, pool, middleware and routes."""

    server: FaultServer
    pool: urllib3.PoolManager
    routes: dict[str, str]
    caplog: pytest.LogCaptureFixture
    fds: int = 0

    def app(self, **kwargs: Any) -> ReproxyMiddleware:
        return ReproxyMiddleware(
            reproxy_app(self.routes), FixedSettings(settings(**kwargs)), pool=self.pool
        )

    def url(self, path: str) -> str:
        return self.server.url(path)

    def warnings(self) -> str:
        return "\n".join(
            r.getMessage() for r in self.caplog.records if r.levelno >= logging.WARNING
        )

    def assert_clean(self) -> None:
        """Every pool slot is free and no descriptor leaked."""
        for key in list(self.pool.pools.keys()):
            cp = self.pool.pools[key]
            assert cp.pool is not None
            assert cp.pool.qsize() == cp.pool.maxsize, "a pool slot was not returned"
            # urllib3 2.x PoolManager.clear() leaves closing to the GC.
            cp.close()  # closes the idle keep-alive connections
        self.pool.clear()
        deadline = time.monotonic() + 3
        while open_fds() > self.fds and time.monotonic() < deadline:
            time.sleep(0.01)  # the server side closes once it sees our FIN
        # "<=": an unrelated descriptor (another test's leftover) may close.
        assert open_fds() <= self.fds


@pytest.fixture
def rig(caplog: pytest.LogCaptureFixture) -> Iterator[Rig]:
    caplog.set_level(logging.INFO, logger=LOG)
    server = FaultServer().start()
    # maxsize=1, block=True: a leaked slot makes the next request fail.
    pool = urllib3.PoolManager(maxsize=1, block=True)
    rig = Rig(server, pool, {}, caplog)
    rig.fds = open_fds()
    try:
        yield rig
    finally:
        pool.clear()
        server.close()


# -- target faults ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        pytest.param("/close-mid-body", "body bytes missing", id="close"),
        pytest.param("/stall-after-headers", "read timeout", id="stall"),
    ],
)
def test_small_body_breaking_off_fails_over_before_the_client_sees_it(
    rig: Rig, path: str, reason: str
) -> None:
    # A body that fits one read is read whole before the response starts
    # (SPEC §4.10), so a target breaking off inside it is a failed try.
    rig.routes["/f"] = rig.url(path) + " " + rig.url("/ok")
    started = time.monotonic()
    result = call(rig.app(), "/f")
    assert time.monotonic() - started < 2
    assert result.status == "200 OK"
    assert result.body == BODY
    assert path in rig.warnings() and reason in rig.warnings()
    assert rig.server.paths == [path, "/ok"]
    rig.assert_clean()


def test_target_stalling_before_headers_fails_over_to_next_url(rig: Rig) -> None:
    rig.routes["/f"] = rig.url("/stall-before-headers") + " " + rig.url("/ok")
    result = call(rig.app(), "/f")
    assert result.status.startswith("200")
    assert result.body == BODY
    assert "/stall-before-headers" in rig.warnings()
    assert "read timeout" in rig.warnings()
    rig.assert_clean()


def test_only_target_stalling_before_headers_is_504(rig: Rig) -> None:
    rig.routes["/f"] = rig.url("/stall-before-headers")
    result = call(rig.app(), "/f")
    assert result.status.startswith("504")
    assert APP_BODY not in result.body
    assert "failed (504)" in rig.warnings()
    rig.assert_clean()


def test_target_trickling_headers_is_cut_off_by_a_deadline(rig: Rig) -> None:
    rig.routes["/f"] = rig.url("/trickle-headers") + " " + rig.url("/ok")
    started = time.monotonic()
    result = call(rig.app(), "/f")
    elapsed = time.monotonic() - started
    rig.assert_clean()
    assert result.body == BODY
    assert elapsed < 0.9  # 3 x ReproxyTimeout READ; trickling lasts 1.2 s


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/malformed-status", id="malformed-status-line"),
        pytest.param("/many-headers", id="2000-headers-100KB"),
        pytest.param("/long-header", id="100KB-header-line"),
        pytest.param("/status?code=500", id="status-500"),
        pytest.param("/status?code=404", id="status-404"),
    ],
)
def test_broken_response_fails_over_to_next_url(rig: Rig, path: str) -> None:
    rig.routes["/f"] = rig.url(path) + " " + rig.url("/ok")
    result = call(rig.app(), "/f")
    assert result.status.startswith("200")
    assert result.body == BODY
    assert redact_query(rig.url(path)) in rig.warnings()
    assert "code=" not in rig.warnings()  # ReproxyLogQuery Off
    rig.assert_clean()


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/malformed-status", id="malformed-status-line"),
        pytest.param("/many-headers", id="2000-headers-100KB"),
        pytest.param("/long-header", id="100KB-header-line"),
    ],
)
def test_broken_response_alone_is_502(rig: Rig, path: str) -> None:
    rig.routes["/f"] = rig.url(path)
    result = call(rig.app(), "/f")
    assert result.status.startswith("502")
    assert APP_BODY not in result.body
    assert rig.url(path) not in result.body.decode()  # internal URLs stay in logs
    assert "failed (502)" in rig.warnings()
    rig.assert_clean()


def test_bytes_past_content_length_are_never_served(rig: Rig) -> None:
    rig.routes["/over"] = rig.url("/overlong")
    rig.routes["/ok"] = rig.url("/ok")
    app = rig.app()
    first = call(app, "/over")
    assert first.body == BODY  # exactly Content-Length bytes
    # The 1 KiB left on that connection must not become the next response.
    second = call(app, "/ok")
    assert second.status.startswith("200")
    assert second.body == BODY
    rig.assert_clean()


def test_dead_first_target_fails_over(rig: Rig) -> None:
    dead = closed_port_url("/dead")
    rig.routes["/f"] = dead + " " + rig.url("/ok")
    result = call(rig.app(), "/f")
    assert result.body == BODY
    assert dead in rig.warnings()
    rig.assert_clean()


# -- redirects ---------------------------------------------------------------------


def test_redirect_to_disallowed_host_is_refused(rig: Rig) -> None:
    evil = "http://evil.example/x"
    rig.routes["/f"] = rig.url("/redirect?to=" + evil)
    result = call(rig.app(max_redirects=1), "/f")
    assert result.status.startswith("502")
    assert "refused: outside ReproxyAllowTargets (defined at faults.conf:3)" in (
        rig.warnings()
    )
    assert rig.server.paths == ["/redirect"]
    rig.assert_clean()


@pytest.mark.parametrize(
    "location",
    [
        pytest.param("file:///etc/passwd", id="file-scheme"),
        pytest.param("http://user@127.0.0.1/ok", id="userinfo"),
        pytest.param("gopher://127.0.0.1:70/", id="gopher"),
    ],
)
def test_redirect_to_unsafe_url_is_refused_even_without_allow_list(
    rig: Rig, location: str
) -> None:
    rig.routes["/f"] = rig.url("/redirect?to=" + location)
    result = call(rig.app(max_redirects=1, allow_targets=()), "/f")
    assert result.status.startswith("502")
    assert "refused" in rig.warnings()
    rig.assert_clean()


def test_redirect_within_allow_list_is_followed(rig: Rig) -> None:
    rig.routes["/f"] = rig.url("/redirect?to=" + rig.url("/ok"))
    result = call(rig.app(max_redirects=1), "/f")
    assert result.body == BODY
    assert rig.server.paths == ["/redirect", "/ok"]
    rig.assert_clean()


def test_redirect_not_followed_by_default(rig: Rig) -> None:
    rig.routes["/f"] = rig.url("/redirect?to=" + rig.url("/ok"))
    result = call(rig.app(), "/f")
    assert result.status.startswith("502")
    assert "ReproxyMaxRedirects 0" in rig.warnings()
    assert rig.server.paths == ["/redirect"]
    rig.assert_clean()


def test_redirect_chain_is_capped(rig: Rig) -> None:
    # /redirect -> /redirect -> /redirect -> /ok: three hops, two allowed.
    url = rig.url("/ok")
    for _ in range(3):
        url = rig.url("/redirect?to=" + url.replace("?", "%3F").replace("=", "%3D"))
    rig.routes["/f"] = url
    result = call(rig.app(max_redirects=2), "/f")
    assert result.status.startswith("502")
    assert "ReproxyMaxRedirects 2" in rig.warnings()
    assert rig.server.paths == ["/redirect"] * 3
    rig.assert_clean()


# -- what reaches the target, and what the client can steer -------------------------


def _echoed(result: Result) -> dict[str, str]:
    return {k.lower(): v for k, v in json.loads(result.body).items()}


def test_credentials_are_not_forwarded_by_default(rig: Rig) -> None:
    rig.routes["/f"] = rig.url("/echo")
    result = call(
        rig.app(),
        "/f",
        HTTP_COOKIE="session=secret",
        HTTP_AUTHORIZATION="Basic c2VjcmV0",
        HTTP_PROXY_AUTHORIZATION="Basic c2VjcmV0",
        HTTP_RANGE="bytes=0-1",
        HTTP_X_FORWARDED_FOR="10.9.9.9",
    )
    seen = _echoed(result)
    assert "cookie" not in seen
    assert "authorization" not in seen
    assert "proxy-authorization" not in seen
    assert "x-forwarded-for" not in seen
    assert seen["range"] == "bytes=0-1"
    rig.assert_clean()


def test_credentials_are_forwarded_when_listed(rig: Rig) -> None:
    rig.routes["/f"] = rig.url("/echo")
    app = rig.app(forward_headers=("Cookie", "Authorization"))
    seen = _echoed(call(app, "/f", HTTP_COOKIE="a=b", HTTP_AUTHORIZATION="Bearer t"))
    assert seen["cookie"] == "a=b"
    assert seen["authorization"] == "Bearer t"
    rig.assert_clean()


@pytest.mark.parametrize(
    ("settings_kwargs", "capability"),
    [
        pytest.param({}, "reproxy-file", id="on-replaced"),
        pytest.param({"allow_reproxy": False}, None, id="off-removed"),
    ],
)
def test_client_capability_header_is_never_trusted(
    rig: Rig, settings_kwargs: dict[str, Any], capability: str | None
) -> None:
    seen: list[str | None] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        seen.append(environ.get("HTTP_X_PROXY_CAPABILITIES"))
        start_response("200 OK", [])
        return [b"plain"]

    mw = ReproxyMiddleware(app, FixedSettings(settings(**settings_kwargs)))
    call(mw, "/", HTTP_X_PROXY_CAPABILITIES="reproxy-url reproxy-file evil")
    assert seen == [capability]


def test_client_sent_reproxy_headers_have_no_effect(rig: Rig) -> None:
    """A client cannot ask for a reproxy: only the app's response can."""

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"the app answered"]

    mw = ReproxyMiddleware(app, FixedSettings(settings()), pool=rig.pool)
    result = call(
        mw,
        "/",
        HTTP_X_REPROXY_URL=rig.url("/ok"),
        HTTP_X_REPROXY_FILE="/etc/passwd",
        HTTP_X_REPROXY_EXPECTED_SIZE="1",
        HTTP_X_SENDFILE="/etc/passwd",
        HTTP_X_ACCEL_REDIRECT="/internal/x",
        HTTP_X_ACCEL_MAPPING="/=/etc/",
    )
    assert result.body == b"the app answered"
    assert rig.server.paths == []
    assert not any(k.lower().startswith("x-reproxy") for k, _ in result.headers)
    rig.assert_clean()


def test_client_headers_outside_forward_set_do_not_reach_target(rig: Rig) -> None:
    rig.routes["/f"] = rig.url("/echo")
    seen = _echoed(
        call(
            rig.app(),
            "/f",
            HTTP_X_REPROXY_URL="http://evil.example/",
            HTTP_HOST="evil.example",
            HTTP_CONNECTION="close, X-Secret",
            HTTP_TE="trailers",
        )
    )
    assert "x-reproxy-url" not in seen
    assert seen["host"].startswith("127.0.0.1:")
    assert "te" not in seen
    rig.assert_clean()


# -- hostile URL lists from the app ------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        pytest.param(
            "http://evil.example/", "outside ReproxyAllowTargets", id="outside"
        ),
        pytest.param("file:///etc/passwd", "scheme 'file' not allowed", id="file"),
        pytest.param("http://u@127.0.0.1/ok", "userinfo in URL", id="userinfo"),
        pytest.param("/ok", "not absolute", id="relative"),
    ],
)
def test_invalid_url_is_skipped_and_logged(rig: Rig, bad: str, reason: str) -> None:
    rig.routes["/f"] = bad + " " + rig.url("/ok")
    result = call(rig.app(), "/f")
    assert result.body == BODY
    assert reason in rig.warnings()
    assert bad in rig.warnings()
    rig.assert_clean()


def test_url_list_past_limit_is_cut_and_logged(rig: Rig) -> None:
    rig.routes["/f"] = " ".join([rig.url("/status?code=500")] * 16 + [rig.url("/ok")])
    result = call(rig.app(), "/f")
    assert result.status.startswith("502")
    assert "1 URLs past max_urls=16 ignored" in rig.warnings()
    assert rig.server.paths == ["/status"] * 16
    rig.assert_clean()


def test_refused_connection_is_502_not_a_timeout(rig: Rig) -> None:
    # urllib3's NewConnectionError subclasses ConnectTimeoutError; a refused
    # connection is still not a timeout (SPEC §4.4: 504 only for timeouts).
    dead = closed_port_url("/dead")
    rig.routes["/f"] = dead
    result = call(rig.app(), "/f")
    assert result.status.startswith("502")
    assert "refused" in rig.warnings().lower()
    rig.assert_clean()


def test_only_invalid_urls_is_502_without_fetching(rig: Rig) -> None:
    rig.routes["/f"] = "file:///etc/passwd ftp://127.0.0.1/ http://evil.example/"
    result = call(rig.app(), "/f")
    assert result.status.startswith("502")
    assert rig.server.paths == []
    assert "file:///etc/passwd" in rig.warnings()
    rig.assert_clean()


def test_compressed_body_is_passed_through_undecoded(rig: Rig) -> None:
    # Content is never decoded, so a gzip bomb stays a small gzip stream.
    packed = gzip.compress(b"\0" * 10_000_000)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            _read_head(conn, bytearray())
            conn.sendall(
                _response(
                    "200 OK", packed, "Content-Encoding: gzip", "Connection: close"
                )
            )

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        rig.routes["/f"] = f"http://127.0.0.1:{port}/bomb"
        result = call(rig.app(), "/f")
    finally:
        thread.join(5)
        server.close()
    assert result.body == packed
    assert result.header("Content-Encoding") == "gzip"
    rig.assert_clean()


def test_refusal_names_the_config_line_of_the_allow_list_in_force(rig: Rig) -> None:
    config = parse_config(
        "AllowReproxy On\n"
        "ReproxyAllowTargets http://127.0.0.1:*/\n"
        "<Location /private>\n"
        "    ReproxyAllowTargets http://10.0.0.*:7500/\n"
        "</Location>\n",
        "site.conf",
    )
    rig.routes["/private/f"] = rig.url("/ok")
    rig.routes["/public/f"] = rig.url("/ok")
    app = ReproxyMiddleware(reproxy_app(rig.routes), config, pool=rig.pool)
    assert call(app, "/private/f").status.startswith("502")
    assert "outside ReproxyAllowTargets (defined at site.conf:4)" in rig.warnings()
    assert call(app, "/public/f").body == BODY
    assert rig.server.paths == ["/ok"]
    rig.assert_clean()
