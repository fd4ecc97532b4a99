"""What a client and a target see of each other (issue 11, items 10-12 and
"what the client should get").

Every case runs the real middleware against real loopback servers: raw
sockets (:class:`conftest.RawServer`) where the exact bytes of a target's
answer or of the request it received matter, and a threaded WSGI server for
the self-reproxy loop.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
import urllib3
from conftest import FixedConfig, RawServer
from werkzeug.serving import make_server

from wsgi_reproxy import ConfigError, ReproxyMiddleware, Settings, parse_config
from wsgi_reproxy.exceptions import UpstreamError, redact_query, redact_urls

LOG = "wsgi_reproxy"
#: Headers urllib3 adds to every request; the rest is ours to pin exactly.
URLLIB3_OWN = frozenset({"host", "accept-encoding", "user-agent"})

App = Callable[..., Iterable[bytes]]


def call(app: Any, path: str = "/", **environ: str) -> tuple[str, list[Any], bytes]:
    """One request like a WSGI server makes it: iterate, then close()."""
    env: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "HTTP_HOST": "example.com",
        "wsgi.url_scheme": "http",
        **environ,
    }
    started: list[Any] = []
    body = app(env, lambda s, h, exc_info=None: started.append((s, h)))
    try:
        data = b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()
    return started[0][0], list(started[0][1]), data


def reproxy_app(url: str, *headers: tuple[str, str]) -> App:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("X-Reproxy-Url", url), *headers])
        return [b"the app's body"]

    return app


def _serve_bytes(response: bytes) -> Callable[[socket.socket, bytes, Any], None]:
    def handler(conn: socket.socket, head: bytes, stop: Any) -> None:
        conn.sendall(response)

    return handler


def _echo_head(conn: socket.socket, head: bytes, stop: Any) -> None:
    """Answer with the request head received, byte for byte."""
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
        + f"Content-Length: {len(head)}\r\n\r\n".encode()
        + head
    )


def _by_path(conn: socket.socket, head: bytes, stop: Any) -> None:
    """The body names the path asked for: ``/de/report.pdf`` -> that."""
    path = head.split(b" ", 2)[1]
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\nConnection: close\r\n"
        + f"Content-Length: {len(path)}\r\n\r\n".encode()
        + path
    )


@pytest.fixture
def raw() -> Iterator[Callable[[Callable[..., None]], RawServer]]:
    """Start raw-socket targets with a given handler; all stopped at the end."""
    started: list[RawServer] = []

    def start(handler: Callable[..., None]) -> RawServer:
        server = RawServer(handler).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def request_headers(head: bytes) -> list[tuple[str, str]]:
    """The header lines of a request head, minus those urllib3 adds itself."""
    lines = head.decode("latin-1").split("\r\n")[1:]
    pairs = [tuple(line.split(": ", 1)) for line in lines if line]
    return [(k, v) for k, v in pairs if k.lower() not in URLLIB3_OWN]


# -- item 11 (and the item 12 marker): what the target is sent ------------------


@pytest.mark.parametrize(
    ("client", "sent"),
    [
        pytest.param(
            {"HTTP_RANGE": "bytes=0-1", "HTTP_X_TOKEN": "t", "HTTP_AUTHORIZATION": "a"},
            [("Range", "bytes=0-1"), ("X-Token", "t"), ("Authorization", "a")],
            id="no-connection-header",
        ),
        pytest.param(
            {
                "HTTP_CONNECTION": "close, X-Token",
                "HTTP_RANGE": "bytes=0-1",
                "HTTP_X_TOKEN": "t",
                "HTTP_AUTHORIZATION": "a",
            },
            [("Range", "bytes=0-1"), ("Authorization", "a")],
            id="named-header-is-hop-by-hop",
        ),
        pytest.param(
            {
                "HTTP_CONNECTION": " keep-alive ,  x-token ,RANGE",
                "HTTP_RANGE": "bytes=0-1",
                "HTTP_X_TOKEN": "t",
                "HTTP_AUTHORIZATION": "a",
            },
            [("Authorization", "a")],
            id="names-any-case-and-blanks",
        ),
        pytest.param(
            {"HTTP_CONNECTION": "authorization", "HTTP_AUTHORIZATION": "a"},
            [],
            id="credentials-named-stay-here",
        ),
        pytest.param(
            {
                "HTTP_X_REPROXY_DEPTH_X": "9",
                "HTTP_TE": "trailers",
                "HTTP_PROXY_AUTHORIZATION": "Basic eDp5",
            },
            [],
            id="never-forwarded-stay-out",
        ),
    ],
)
def test_target_gets_forwarded_headers_minus_connection_named_plus_marker(
    raw: Any, client: dict[str, str], sent: list[tuple[str, str]]
) -> None:
    target = raw(_echo_head)
    settings = Settings(
        allow_reproxy=True,
        forward_headers=(
            "Range",
            "X-Token",
            "Authorization",
            "TE",
            "Proxy-Authorization",
        ),
    )
    app = ReproxyMiddleware(reproxy_app(target.url("/f")), FixedConfig(settings))
    status, _, head = call(app, "/", **client)
    assert status == "200 OK"
    assert head.startswith(b"GET /f HTTP/1.1\r\n")
    assert request_headers(head) == [*sent, ("X-Reproxy-Depth", "1")]


# -- item 12: a request that came from a reproxy is never reproxied again ------


class LoopServer:
    """A threaded WSGI server on loopback whose app reproxies to *urls*,
    which may name this server itself."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str | None]] = []
        self.urls: list[str] = []
        settings = Settings(allow_reproxy=True, connect_timeout=2, read_timeout=5)
        self.pool = urllib3.PoolManager(maxsize=4)
        app = ReproxyMiddleware(self.app, FixedConfig(settings), pool=self.pool)
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.calls.append(
            {
                "path": environ["PATH_INFO"],
                "depth": environ.get("HTTP_X_REPROXY_DEPTH"),
            }
        )
        start_response("200 OK", [("X-Reproxy-Url", " ".join(self.urls))])
        return [b"app body"]

    def __enter__(self) -> LoopServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        self.pool.clear()


@pytest.mark.parametrize(
    ("urls", "client_headers", "status", "body", "calls"),
    [
        pytest.param(
            ["{self}/loop"],
            {},
            502,
            b"502 Bad Gateway\n\nThe requested file could not be fetched.\n",
            [{"path": "/loop", "depth": None}, {"path": "/loop", "depth": "1"}],
            id="self-only-stops-at-depth-1",
        ),
        pytest.param(
            ["{self}/loop", "{target}/ok"],
            {},
            200,
            b"target bytes",
            [{"path": "/loop", "depth": None}, {"path": "/loop", "depth": "1"}],
            id="self-fails-over-to-target",
        ),
        pytest.param(
            ["{target}/ok", "{self}/loop"],
            {},
            200,
            b"target bytes",
            [{"path": "/loop", "depth": None}],
            id="target-first-never-asks-self",
        ),
        pytest.param(
            ["{target}/ok"],
            {"X-Reproxy-Depth": "1"},
            502,
            b"502 Bad Gateway\n\nThe requested file could not be fetched.\n",
            [{"path": "/loop", "depth": "1"}],
            id="client-sent-marker-is-not-reproxied",
        ),
    ],
)
def test_self_reproxy_loop_stops_at_depth_1(
    raw: Any,
    caplog: pytest.LogCaptureFixture,
    urls: list[str],
    client_headers: dict[str, str],
    status: int,
    body: bytes,
    calls: list[dict[str, str | None]],
) -> None:
    target = raw(
        _serve_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\ntarget bytes")
    )
    with LoopServer() as loop, urllib3.PoolManager() as client:
        loop.urls = [u.format(self=loop.base, target=target.url("")) for u in urls]
        with caplog.at_level(logging.WARNING, logger=LOG):
            response = client.request(
                "GET", loop.base + "/loop", headers=client_headers, retries=False
            )
        assert (response.status, response.data) == (status, body)
        assert loop.calls == calls
    refused = [
        r.getMessage() for r in caplog.records if "X-Reproxy-Depth" in r.getMessage()
    ]
    assert refused == [
        "reproxy of /loop failed (502): the request carries X-Reproxy-Depth"
        " (a reproxy sent it)"
    ] * sum(call["depth"] == "1" for call in calls)  # one per marked request


# -- item 10: the cache key is the request as it reached the middleware ---------


def language_prefix(app: App) -> App:
    """An inner layer (i18n middleware) moving ``/de`` from the path to the
    environ, as PEP 3333 lets it."""

    def layer(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        environ["LANG"] = "en"
        if path.startswith("/de/"):
            environ["LANG"], environ["PATH_INFO"] = "de", path[3:]
        return app(environ, start_response)

    return layer


@pytest.mark.parametrize(
    ("requests", "bodies", "app_calls"),
    [
        pytest.param(
            ["/de/report.pdf", "/report.pdf"],
            [b"/de/report.pdf", b"/en/report.pdf"],
            2,
            id="rewritten-path-does-not-answer-the-inner-path",
        ),
        pytest.param(
            ["/report.pdf", "/de/report.pdf", "/report.pdf"],
            [b"/en/report.pdf", b"/de/report.pdf", b"/en/report.pdf"],
            2,
            id="rewritten-answer-does-not-overwrite-the-plain-one",
        ),
        pytest.param(
            ["/de/report.pdf", "/de/report.pdf"],
            [b"/de/report.pdf", b"/de/report.pdf"],
            1,
            id="same-request-is-a-hit",
        ),
    ],
)
def test_cache_keys_on_the_request_before_the_app_rewrote_it(
    raw: Any, requests: list[str], bodies: list[bytes], app_calls: int
) -> None:
    target = raw(_by_path)
    calls: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        calls.append(environ["PATH_INFO"])
        url = target.url(f"/{environ['LANG']}{environ['PATH_INFO']}")
        start_response(
            "200 OK", [("X-Reproxy-Url", url), ("X-Reproxy-Cache-For", "60")]
        )
        return [b"app body"]

    mw = ReproxyMiddleware(language_prefix(app), FixedConfig())
    answers = [call(mw, path) for path in requests]
    assert [a[2] for a in answers] == bodies
    assert [a[0] for a in answers] == ["200 OK"] * len(requests)
    assert len(calls) == app_calls


# -- what the client should get: the app's headers over the node's -------------

NODE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Server: nginx/1.22.1\r\n"
    b"X-Powered-By: PHP/8.2\r\n"
    b"Set-Cookie: node=1; Path=/\r\n"
    b"Cache-Control: public, max-age=31536000\r\n"
    b"Vary: Accept-Encoding\r\n"
    b"Content-Type: application/pdf\r\n"
    b'ETag: "node-etag"\r\n'
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"%PDF"
)
#: What a Django view sends with ``X-Reproxy-Url`` (SessionMiddleware,
#: SecurityMiddleware, XFrameOptionsMiddleware, cache_control(private)).
DJANGO = (
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "private, no-store"),
    ("Vary", "Cookie"),
    ("Set-Cookie", "sessionid=abc; HttpOnly; Path=/"),
    ("Set-Cookie", "csrftoken=def; Path=/"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Content-Disposition", 'attachment; filename="r.pdf"'),
)


@pytest.mark.parametrize(
    ("conf", "headers"),
    [
        pytest.param(
            "",
            [
                ("Content-Type", "application/pdf"),
                ("ETag", '"node-etag"'),
                ("Content-Length", "4"),
                *DJANGO[1:-1],
            ],
            id="default-keeps-caching-and-security-headers",
        ),
        pytest.param(
            "PreserveHeaders Content-Disposition",
            [
                ("Content-Type", "application/pdf"),
                ("ETag", '"node-etag"'),
                ("Content-Length", "4"),
                *DJANGO[1:],
            ],
            id="preserve-headers-adds-to-the-default",
        ),
        pytest.param(
            "ReproxyKeepAppHeaders None",
            [
                ("Cache-Control", "public, max-age=31536000"),
                ("Vary", "Accept-Encoding"),
                ("Content-Type", "application/pdf"),
                ("ETag", '"node-etag"'),
                ("Content-Length", "4"),
            ],
            id="none-is-mod-reproxy-but-node-identity-stays-out",
        ),
        pytest.param(
            "ReproxyKeepAppHeaders None\nPreserveHeaders Set-Cookie",
            [
                ("Cache-Control", "public, max-age=31536000"),
                ("Vary", "Accept-Encoding"),
                ("Content-Type", "application/pdf"),
                ("ETag", '"node-etag"'),
                ("Content-Length", "4"),
                DJANGO[3],
                DJANGO[4],
            ],
            id="none-with-preserve-headers",
        ),
        pytest.param(
            "ReproxyKeepAppHeaders vary\nReproxyKeepAppHeaders ETag",
            [
                ("Cache-Control", "public, max-age=31536000"),
                ("Content-Type", "application/pdf"),
                ("ETag", '"node-etag"'),  # listed, but the app sent none
                ("Content-Length", "4"),
                ("Vary", "Cookie"),
            ],
            id="own-list-replaces-the-default-repeated-lines-add",
        ),
    ],
)
def test_client_gets_the_apps_caching_and_security_headers(
    raw: Any, conf: str, headers: list[tuple[str, str]]
) -> None:
    target = raw(_serve_bytes(NODE))
    config = parse_config(f"AllowReproxy On\n{conf}\n", filename="t.conf")
    mw = ReproxyMiddleware(reproxy_app(target.url("/r.pdf"), *DJANGO), config)
    status, got, body = call(mw)
    assert (status, body) == ("200 OK", b"%PDF")
    assert got == headers


def test_keep_app_headers_warns_about_framing_headers() -> None:
    parsed = parse_config(
        "ReproxyKeepAppHeaders Vary Content-Length\n", filename="t.conf"
    )
    assert parsed.warnings == (
        "t.conf:1: ReproxyKeepAppHeaders Content-Length: this header is never "
        "preserved from the application's response",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("ReproxyLogQuery yes", "ReproxyLogQuery must be On or Off"),
        pytest.param("ReproxyLogQuery", "ReproxyLogQuery must be On or Off"),
        pytest.param(
            "ReproxyKeepAppHeaders",
            "ReproxyKeepAppHeaders needs at least one header name",
        ),
        pytest.param(
            "ReproxyKeepAppHeaders Vary: x",
            "ReproxyKeepAppHeaders: 'Vary:' is not a header name",
        ),
    ],
)
def test_bad_new_directive_values_are_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text + "\n", filename="t.conf")
    assert str(err.value) == f"t.conf:1: {message}"


# -- ReproxyLogQuery: target URLs are logged without their query ------------------


def test_redaction_helpers() -> None:
    assert redact_query("http://s3/k?X-Amz-Signature=ab&t=1") == "http://s3/k?\u2026"
    assert redact_query("http://s3/k") == "http://s3/k"
    assert redact_urls("to 'http://h/k?t=1' (at http://g/?s=2), url: /a?b") == (
        "to 'http://h/k?\u2026' (at http://g/?\u2026), url: /a?\u2026"
    )
    assert redact_urls("no URL? none.") == "no URL? none."
    # Linear time: a backtracking pattern took 16 s on this at n=2,000.
    started = time.perf_counter()
    assert redact_urls("/" * 100_000 + " ?x") == "/" * 100_000 + " ?x"
    assert time.perf_counter() - started < 0.5
    error = UpstreamError("http://h/a?sig=1", "redirect to 'http://h/b?sig=2' refused")
    assert str(error) == "http://h/a?\u2026: redirect to 'http://h/b?\u2026' refused"
    assert error.describe(show_query=True) == (
        "http://h/a?sig=1: redirect to 'http://h/b?sig=2' refused"
    )


@pytest.mark.parametrize(
    ("conf", "secret_logged"),
    [
        pytest.param("", False, id="default-redacts"),
        pytest.param("ReproxyLogQuery Off", False, id="off-redacts"),
        pytest.param("ReproxyLogQuery On", True, id="on-shows"),
    ],
)
def test_logged_target_urls_have_their_query_redacted(
    raw: Any, caplog: pytest.LogCaptureFixture, conf: str, secret_logged: bool
) -> None:
    failing = raw(_serve_bytes(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n"))
    redirecting = raw(
        _serve_bytes(
            b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n"
            b"Location: http://127.0.0.1:1/next?sig=REDIRECTED\r\n\r\n"
        )
    )
    good = raw(_serve_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    urls = [
        "http://elsewhere.example/x?sig=SKIPPED",
        failing.url("/a?sig=FAILED"),
        redirecting.url("/b?sig=MOVED"),
        good.url("/c?sig=SERVED"),
    ]
    config = parse_config(
        "AllowReproxy On\nReproxyAllowTargets http://127.0.0.1:*/\n" + conf,
        filename="t.conf",
    )
    mw = ReproxyMiddleware(reproxy_app(" ".join(urls)), config)
    with caplog.at_level(logging.INFO, logger=LOG):
        assert call(mw)[::2] == ("200 OK", b"ok")
        # and the all-failed line
        mw.urls.respond(
            {"PATH_INFO": "/all", "REQUEST_METHOD": "GET"},
            config.resolve({"PATH_INFO": "/all"}),
            [("X-Reproxy-Url", urls[1])],
            lambda s, h, exc_info=None: None,
        )
    text = "\n".join(r.getMessage() for r in caplog.records)
    for url in urls:
        assert (url in text) is secret_logged, url
        assert (redact_query(url) in text) is not secret_logged, url
    assert ("sig=REDIRECTED" in text) is secret_logged
    assert "sig=" not in text or secret_logged
    assert text.count("reproxy of /all failed (502)") == 1


def test_marked_request_is_not_answered_from_the_cache(
    raw: Any, caplog: pytest.LogCaptureFixture
) -> None:
    target = raw(_by_path)
    calls: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        calls.append(environ["PATH_INFO"])
        start_response(
            "200 OK",
            [("X-Reproxy-Url", target.url("/k")), ("X-Reproxy-Cache-For", "60")],
        )
        return [b"app body"]

    mw = ReproxyMiddleware(app, FixedConfig())
    assert call(mw, "/k")[::2] == ("200 OK", b"/k")
    with caplog.at_level(logging.WARNING, logger=LOG):
        status, _, _ = call(mw, "/k", HTTP_X_REPROXY_DEPTH="1")
    assert status == "502 Bad Gateway"
    assert calls == ["/k"]  # the cache entry was found, and refused
    assert [r.getMessage() for r in caplog.records] == [
        "reproxy of /k failed (502): the request carries X-Reproxy-Depth"
        " (a reproxy sent it)"
    ]
