"""The middleware end to end: real loopback targets, webtest and wsgiref.

Each test names the behaviour of SPEC §4 it pins.
"""

from __future__ import annotations

import gzip
import json
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.validate import validator

import pytest
import urllib3
import webtest
from conftest import HELLO, RawServer, TargetServer, make_bytes

from wsgi_reproxy import ReproxyMiddleware, parse_config
from wsgi_reproxy.exceptions import redact_query

APP_BODY = b"APP BODY MUST NOT LEAK"

Headers = list[tuple[str, str]]


class App:
    """A WSGI app answering fixed headers; counts ``close()`` calls.

    :param late: call ``start_response`` on the first ``next()`` (a
        generator-style app) instead of during the call.
    """

    def __init__(
        self,
        headers: Headers,
        *,
        status: str = "200 OK",
        late: bool = False,
        body: Iterable[bytes] = (APP_BODY,),
        write: bytes = b"",
    ) -> None:
        self.headers = headers
        self.status = status
        self.late = late
        self.body = list(body)
        self.write = write
        self.closed = 0
        self.iterated = 0
        self.environ: dict[str, Any] = {}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.environ = dict(environ)
        if not self.late:
            self._start(start_response)
        return _AppIter(self, start_response)

    def _start(self, start_response: Any) -> None:
        write = start_response(self.status, list(self.headers))
        if self.write:
            write(self.write)


class _AppIter:
    def __init__(self, app: App, start_response: Any) -> None:
        self.app = app
        self.start_response = start_response
        self.items = iter(app.body)
        self.started = not app.late

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if not self.started:
            self.started = True
            self.app._start(self.start_response)
        item = next(self.items)
        self.app.iterated += 1
        return item

    def close(self) -> None:
        self.app.closed += 1


def wrap(app: Callable[..., Any], pool: Any, *lines: str) -> ReproxyMiddleware:
    """The middleware over *app* with ``AllowReproxy On`` plus *lines* for
    every URL, written as a user would write the config."""
    text = "\n".join(["<Location />", "AllowReproxy On", *lines, "</Location>", ""])
    return ReproxyMiddleware(app, parse_config(text), pool=pool)


def client(app: Callable[..., Any], pool: Any, *lines: str) -> webtest.TestApp:
    return webtest.TestApp(wrap(app, pool, *lines))


# -- the basic reproxy ---------------------------------------------------------


def test_single_url_streams_target_body_and_headers(
    target: TargetServer, pool: Any
) -> None:
    app = App(
        [
            ("X-Reproxy-Url", target.url("/files/hello.txt")),
            ("Content-Type", "text/html"),
        ]
    )
    res = client(app, pool).get("/x")
    assert res.status_int == 200
    assert res.body == HELLO
    assert res.headers["Content-Length"] == str(len(HELLO))
    assert res.headers["Content-Type"] == "application/octet-stream"
    assert "ETag" in res.headers and "Last-Modified" in res.headers
    assert APP_BODY not in res.body
    assert not any(k.lower().startswith("x-reproxy") for k in res.headers)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("X-Reproxy-Url", id="canonical"),
        pytest.param("x-reproxy-url", id="lower"),
        pytest.param("X-REPROXY-URL", id="upper"),
    ],
)
def test_trigger_header_matched_in_any_case(
    name: str, target: TargetServer, pool: Any
) -> None:
    app = App([(name, target.url("/files/hello.txt"))])
    res = client(app, pool).get("/")
    assert res.body == HELLO
    assert name not in res.headers


def test_app_iterable_closed_once_and_never_read(
    target: TargetServer, pool: Any
) -> None:
    app = App([("X-Reproxy-Url", target.url("/files/hello.txt"))], body=[b"a", b"b"])
    client(app, pool).get("/")
    assert app.closed == 1
    assert app.iterated == 0


def test_written_app_bytes_never_reach_client(target: TargetServer, pool: Any) -> None:
    app = App([("X-Reproxy-Url", target.url("/files/hello.txt"))], write=APP_BODY)
    assert client(app, pool).get("/").body == HELLO


@pytest.mark.parametrize(
    "reproxy", [pytest.param(True, id="reproxy"), pytest.param(False, id="passthrough")]
)
def test_late_start_response_app(
    reproxy: bool, target: TargetServer, pool: Any
) -> None:
    headers = [("X-Reproxy-Url", target.url("/files/hello.txt"))] if reproxy else []
    app = App(
        headers + [("Content-Type", "text/plain")], late=True, body=[b"one ", APP_BODY]
    )
    res = client(app, pool).get("/")
    assert res.body == (HELLO if reproxy else b"one " + APP_BODY)
    assert app.closed == 1


def test_app_that_never_starts_response_is_an_error(pool: Any) -> None:
    app = App([], late=True, body=[])
    with pytest.raises(RuntimeError, match="never called start_response"):
        wrap(app, pool)({"REQUEST_METHOD": "GET"}, lambda s, h, e=None: None)
    assert app.closed == 1


def test_error_response_with_exc_info_replaces_held_reproxy(
    pool: Any, target: TargetServer
) -> None:
    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("X-Reproxy-Url", target.url("/files/hello.txt"))])
        try:
            raise ValueError("boom")
        except ValueError:
            start_response(
                "500 Internal Server Error",
                [("Content-Type", "text/plain")],
                sys.exc_info(),
            )
        return [b"error page"]

    before = len(target.seen)
    res = client(app, pool).get("/", status=500)
    assert res.body == b"error page"
    assert len(target.seen) == before


def test_start_response_twice_without_exc_info_is_an_error(pool: Any) -> None:
    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", [("X-Reproxy-Url", "http://127.0.0.1:1/")])
        start_response("200 OK", [])
        return []

    with pytest.raises(RuntimeError, match="twice"):
        wrap(app, pool)({"REQUEST_METHOD": "GET"}, lambda s, h, e=None: None)


# -- failover ------------------------------------------------------------------


def _first_urls(
    target: TargetServer, stalling: RawServer, refused: str
) -> dict[str, str]:
    return {
        "refused": refused,
        "stalls": stalling.url("/stall"),
        "404": target.url("/status/404"),
        "500": target.url("/status/500"),
        "302": target.url("/redirect?to=" + target.url("/files/hello.txt")),
        "missing-file": target.url("/files/nope"),
        "invalid-scheme": "ftp://127.0.0.1/x",
        "garbage": "not-a-url",
    }


@pytest.mark.parametrize(
    "failure",
    [
        "refused",
        "stalls",
        "404",
        "500",
        "302",
        "missing-file",
        "invalid-scheme",
        "garbage",
    ],
)
def test_second_url_served_when_first_fails(
    failure: str,
    target: TargetServer,
    stalling_target: RawServer,
    refused_url: str,
    pool: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = _first_urls(target, stalling_target, refused_url)[failure]
    app = App([("X-Reproxy-Url", f"{first} {target.url('/files/hello.txt')}")])
    with caplog.at_level(logging.WARNING, logger="wsgi_reproxy"):
        res = client(app, pool, "ReproxyTimeout 5 0.3").get("/")
    assert res.status_int == 200
    assert res.body == HELLO
    assert any(
        redact_query(first) in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
    )


def test_second_url_served_when_first_has_wrong_size(
    target: TargetServer, pool: Any
) -> None:
    urls = f"{target.url('/files/1m.bin')} {target.url('/files/hello.txt')}"
    app = App([("X-Reproxy-Url", urls), ("X-Reproxy-Expected-Size", str(len(HELLO)))])
    assert client(app, pool).get("/").body == HELLO


def test_several_url_headers_read_in_order(
    target: TargetServer, refused_url: str, pool: Any
) -> None:
    app = App(
        [
            ("X-Reproxy-Url", refused_url),
            (
                "X-Reproxy-Url",
                target.url("/files/hello.txt") + "\t" + target.url("/files/1m.bin"),
            ),
        ]
    )
    assert client(app, pool).get("/").body == HELLO


@pytest.mark.parametrize(
    ("value", "status"),
    [
        pytest.param("", 502, id="empty"),
        pytest.param("   ", 502, id="blank"),
        pytest.param(
            "garbage ftp://x/ http://user:pw@127.0.0.1/", 502, id="all-invalid"
        ),
        pytest.param("http://127.0.0.1:1/a\x01b", 502, id="control-char"),
    ],
)
def test_no_valid_url_answers_502(value: str, status: int, pool: Any) -> None:
    app = App([("X-Reproxy-Url", value)])
    res = client(app, pool).get("/", status=status)
    assert res.content_type == "text/plain"
    assert APP_BODY not in res.body


def test_all_failed_answers_502_and_logs_every_url(
    target: TargetServer, refused_url: str, pool: Any, caplog: pytest.LogCaptureFixture
) -> None:
    urls = [refused_url, target.url("/status/500"), target.url("/status/404")]
    app = App([("X-Reproxy-Url", " ".join(urls))])
    with caplog.at_level(logging.WARNING, logger="wsgi_reproxy"):
        res = client(app, pool).get("/some/path", status=502)
    assert res.body.startswith(b"502 Bad Gateway")
    assert b"127.0.0.1" not in res.body  # internal URLs stay in the log
    summary = [
        r.getMessage() for r in caplog.records if "failed (502)" in r.getMessage()
    ]
    assert len(summary) == 1
    assert "/some/path" in summary[0]
    for url, why in zip(
        urls, ["cannot connect", "status 500", "status 404"], strict=True
    ):
        assert f"{url}: {why}" in summary[0]


@pytest.mark.parametrize(
    ("order", "status"),
    [
        pytest.param(("refused", "stalls"), 504, id="timeout-last-504"),
        pytest.param(("stalls", "refused"), 502, id="timeout-first-502"),
    ],
)
def test_all_failed_status_depends_on_last_failure(
    order: tuple[str, str],
    status: int,
    target: TargetServer,
    stalling_target: RawServer,
    refused_url: str,
    pool: Any,
) -> None:
    urls = _first_urls(target, stalling_target, refused_url)
    app = App([("X-Reproxy-Url", " ".join(urls[name] for name in order))])
    res = client(app, pool, "ReproxyTimeout 5 0.2").get("/", status=status)
    assert res.body.startswith(str(status).encode())


def test_head_of_failed_reproxy_has_no_body(refused_url: str, pool: Any) -> None:
    res = client(App([("X-Reproxy-Url", refused_url)]), pool).head("/", status=502)
    assert res.body == b""


def test_redirect_followed_within_max_redirects(
    target: TargetServer, pool: Any
) -> None:
    url = target.url("/redirect?to=" + target.url("/files/hello.txt"))
    res = client(App([("X-Reproxy-Url", url)]), pool, "ReproxyMaxRedirects 1").get("/")
    assert res.body == HELLO


def test_redirect_outside_allow_list_refused(target: TargetServer, pool: Any) -> None:
    url = target.url("/redirect?to=http://127.0.0.2:1/x")
    app = App([("X-Reproxy-Url", url)])
    allow = f"ReproxyAllowTargets http://127.0.0.1:{target.port}/"
    res = client(app, pool, "ReproxyMaxRedirects 3", allow).get("/", status=502)
    assert res.status_int == 502


def test_url_outside_allow_list_never_fetched(target: TargetServer, pool: Any) -> None:
    before = len(target.seen)
    app = App([("X-Reproxy-Url", target.url("/files/hello.txt"))])
    client(app, pool, "ReproxyAllowTargets http://10.0.0.*:7500/").get("/", status=502)
    assert len(target.seen) == before


# -- expected size ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "size", "request_range", "ok"),
    [
        pytest.param("/files/hello.txt", len(HELLO), None, True, id="200-match"),
        pytest.param("/files/hello.txt", 5, None, False, id="200-mismatch"),
        pytest.param("/files/1m.bin", 1 << 20, "bytes=0-9", True, id="206-total-match"),
        pytest.param(
            "/files/1m.bin", 10, "bytes=0-9", False, id="206-range-length-is-not-size"
        ),
        pytest.param("/chunked", 13, None, False, id="no-length"),
    ],
)
def test_expected_size(
    path: str,
    size: int,
    request_range: str | None,
    ok: bool,
    target: TargetServer,
    pool: Any,
) -> None:
    app = App(
        [("X-Reproxy-Url", target.url(path)), ("X-Reproxy-Expected-Size", str(size))]
    )
    headers = {"Range": request_range} if request_range else {}
    res = client(app, pool).get("/", headers=headers, status="*")
    assert (res.status_int < 300) is ok


# -- headers -------------------------------------------------------------------


def test_hop_by_hop_and_reproxy_headers_removed(
    target: TargetServer, pool: Any
) -> None:
    res = client(App([("X-Reproxy-Url", target.url("/hop"))]), pool).get("/")
    names = {k.lower() for k in res.headers}
    assert {
        "connection",
        "keep-alive",
        "trailer",
        "x-private",
        "x-reproxy-url",
    }.isdisjoint(names)
    assert res.headers["X-Target"] == "yes"
    assert res.body == b"hop\n"


@pytest.mark.parametrize(
    ("preserve", "app_headers", "expect"),
    [
        pytest.param(
            ("Content-Type",),
            [("Content-Type", "image/png")],
            [("Content-Type", "image/png")],
            id="single",
        ),
        pytest.param(
            ("Set-Cookie",),
            [("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2")],
            [("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2")],
            id="repeated-replaces-target",
        ),
        pytest.param(
            ("Set-Cookie", "Content-Disposition"),
            [],
            [],
            id="absent-target-cookie-still-dropped",
        ),
        pytest.param(
            ("content-disposition",),
            [
                (
                    "Content-Disposition",
                    "attachment; filename*=UTF-8''%E2%82%AC%20rates.txt",
                )
            ],
            [
                (
                    "Content-Disposition",
                    "attachment; filename*=UTF-8''%E2%82%AC%20rates.txt",
                )
            ],
            id="rfc5987-unchanged",
        ),
        pytest.param(
            ("Content-Length", "Connection", "X-Reproxy-Url"),
            [("Content-Length", "1"), ("Connection", "close")],
            [("Content-Length", "4")],
            id="framing-never-preserved",
        ),
    ],
)
def test_preserve_headers(
    preserve: tuple[str, ...],
    app_headers: Headers,
    expect: Headers,
    target: TargetServer,
    pool: Any,
) -> None:
    app = App([("X-Reproxy-Url", target.url("/hop")), *app_headers])
    res = client(app, pool, "PreserveHeaders " + " ".join(preserve)).get("/")
    for name, _ in expect:
        assert [(name, v) for v in res.headers.getall(name)] == [
            (n, v) for n, v in expect if n.lower() == name.lower()
        ]


def test_forward_headers_default_excludes_cookie(
    target: TargetServer, pool: Any
) -> None:
    app = App([("X-Reproxy-Url", target.url("/echo"))])
    res = client(app, pool).post(
        "/", headers={"Cookie": "s=1", "Authorization": "Basic x", "If-Match": '"e"'}
    )
    seen = json.loads(res.body)
    assert seen["method"] == "GET"
    assert seen["headers"]["If-Match"] == '"e"'
    assert "Cookie" not in seen["headers"] and "Authorization" not in seen["headers"]


def test_forward_headers_listed_cookie_is_sent(target: TargetServer, pool: Any) -> None:
    app = App([("X-Reproxy-Url", target.url("/echo"))])
    res = client(app, pool, "ReproxyForwardHeaders Cookie Host").get(
        "/", headers={"Cookie": "s=1"}
    )
    seen = json.loads(res.body)["headers"]
    assert seen["Cookie"] == "s=1"
    assert seen["Host"] == f"127.0.0.1:{target.port}"


def test_head_sent_to_target_as_head(target: TargetServer, pool: Any) -> None:
    app = App([("X-Reproxy-Url", target.url("/files/1m.bin"))])
    res = client(app, pool).head("/")
    assert res.headers["Content-Length"] == str(1 << 20)
    assert res.body == b""
    assert target.seen[-1].method == "HEAD"


@pytest.mark.parametrize(
    ("headers", "status", "body"),
    [
        pytest.param(
            {"Range": "bytes=2-6"}, 206, make_bytes(1 << 20, "1m")[2:7], id="206"
        ),
        pytest.param({"Range": "bytes=9999999-"}, 416, b"", id="416"),
        pytest.param(
            {"Range": "bytes=0-0", "If-Range": '"stale"'},
            200,
            make_bytes(1 << 20, "1m"),
            id="stale-if-range",
        ),
    ],
)
def test_range_requests_pass_through(
    headers: dict[str, str], status: int, body: bytes, target: TargetServer, pool: Any
) -> None:
    app = App([("X-Reproxy-Url", target.url("/files/1m.bin"))])
    res = client(app, pool).get("/", headers=headers, status=status)
    assert res.body == body
    if status == 206:
        assert res.headers["Content-Range"] == f"bytes 2-6/{1 << 20}"


def test_if_none_match_gives_304(target: TargetServer, pool: Any) -> None:
    app = App([("X-Reproxy-Url", target.url("/files/hello.txt"))])
    test_app = client(app, pool)
    etag = test_app.get("/").headers["ETag"]
    res = test_app.get("/", headers={"If-None-Match": etag}, status=304)
    assert res.body == b""
    assert res.headers["ETag"] == etag


def test_content_encoding_passes_through_undecoded(
    target: TargetServer, pool: Any
) -> None:
    # Called directly: webtest would gunzip the body for us.
    seen: list[Headers] = []

    def start_response(status: str, headers: Headers, exc_info: Any = None) -> Any:
        seen.append(headers)
        return lambda data: None

    mw = wrap(App([("X-Reproxy-Url", target.url("/gzip"))]), pool)
    body = mw({"REQUEST_METHOD": "GET", "HTTP_ACCEPT_ENCODING": "gzip"}, start_response)
    try:
        data = b"".join(body)
    finally:
        body.close()  # type: ignore[attr-defined]
    assert ("Content-Encoding", "gzip") in seen[0]
    assert gzip.decompress(data) == HELLO


# -- reproxying off, capabilities ------------------------------------------------


def test_reproxying_off_answers_502_to_a_trigger_and_fetches_nothing(
    target: TargetServer, pool: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # SPEC §4.12 (was §4.8's pass-through): a trigger nothing may act on is
    # a 502 naming no URL, never the app's body as if it were the file.
    before = len(target.seen)
    app = App(
        [
            ("X-Reproxy-Url", target.url("/files/hello.txt")),
            ("X-Reproxy-Expected-Size", "3"),
            ("Content-Type", "text/plain"),
        ]
    )
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        res = client(app, pool, "AllowReproxy Off").get("/", status=502)
    assert res.body == b"502 Bad Gateway\n\nThe requested file could not be served.\n"
    assert res.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert [k for k in res.headers if k.lower().startswith("x-reproxy")] == []
    assert len(target.seen) == before
    assert app.closed == 1 and app.iterated == 0
    assert [r.getMessage() for r in caplog.records] == [
        "X-Reproxy-Url ignored for /: AllowReproxy On is not set for this URL;"
        " answered 502"
    ]


def test_reproxying_off_passes_a_response_without_trigger_minus_reproxy_headers(
    pool: Any,
) -> None:
    # SPEC §4.8: no trigger, so the app's response is the answer.
    app = App([("X-Reproxy-Expected-Size", "3"), ("Content-Type", "text/plain")])
    res = client(app, pool, "AllowReproxy Off").get("/")
    assert res.body == APP_BODY
    assert [k for k in res.headers if k.lower().startswith("x-reproxy")] == []
    assert app.closed == 1


@pytest.mark.parametrize(
    ("allow", "sent", "seen"),
    [
        pytest.param(True, None, "reproxy-file", id="on-set"),
        pytest.param(True, "forged", "reproxy-file", id="on-replaces-client-value"),
        pytest.param(False, "forged", None, id="off-removes-client-value"),
        pytest.param(False, None, None, id="off-absent"),
    ],
)
def test_proxy_capabilities_header(
    allow: bool, sent: str | None, seen: str | None, pool: Any
) -> None:
    app = App([("Content-Type", "text/plain")])
    headers = {"X-Proxy-Capabilities": sent} if sent else {}
    client(app, pool, f"AllowReproxy {'On' if allow else 'Off'}").get(
        "/", headers=headers
    )
    assert app.environ.get("HTTP_X_PROXY_CAPABILITIES") == seen


# -- the body: truncation, lies, leaks ------------------------------------------------


def test_truncated_small_target_body_is_a_502(
    truncating_target: RawServer, pool: Any
) -> None:
    # Read whole before the response starts (SPEC §4.10): never a short 200.
    app = App([("X-Reproxy-Url", truncating_target.url("/"))])
    assert client(app, pool).get("/", status=502).status_int == 502


@pytest.mark.parametrize(
    ("path", "outcome"),
    [
        pytest.param("/short", None, id="fewer-bytes-is-a-502"),
        pytest.param("/long", b"L" * 10, id="more-bytes-cut-at-length"),
    ],
)
def test_lying_content_length(
    path: str, outcome: bytes | None, lying_target: RawServer, pool: Any
) -> None:
    app = App([("X-Reproxy-Url", lying_target.url(path))])
    if outcome is None:
        assert client(app, pool).get("/", status=502).status_int == 502
    else:
        assert client(app, pool).get("/").body == outcome


def _start(
    status: str, headers: Headers, exc_info: Any = None
) -> Callable[[bytes], None]:
    return lambda data: None


def test_partial_read_frees_the_only_pool_slot(target: TargetServer) -> None:
    url = target.add_file("8m.bin", make_bytes(8 << 20, "8m"))
    tiny = urllib3.PoolManager(maxsize=1, block=True)
    try:
        mw = ReproxyMiddleware(
            App([("X-Reproxy-Url", url)]),
            parse_config("AllowReproxy On\nReproxyTimeout 2 30\n"),
            pool=tiny,
            chunk_size=64 * 1024,
        )
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
        body = mw(dict(environ), _start)
        first = next(iter(body))
        assert len(first) == 16 * 1024  # reads start small (fetch.body)
        body.close()  # type: ignore[attr-defined]  # the client went away
        body.close()  # type: ignore[attr-defined]  # idempotent
        again = mw(dict(environ), _start)
        try:
            assert sum(len(c) for c in again) == 8 << 20
        finally:
            again.close()  # type: ignore[attr-defined]
    finally:
        tiny.clear()


def test_full_read_keeps_connection_alive(target: TargetServer, pool: Any) -> None:
    test_app = client(App([("X-Reproxy-Url", target.url("/files/hello.txt"))]), pool)
    test_app.get("/")
    test_app.get("/")
    assert target.seen[-1].client_port == target.seen[-2].client_port


def test_info_line_logged_when_body_closes(
    target: TargetServer, pool: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = App([("X-Reproxy-Url", target.url("/files/hello.txt"))])
    with caplog.at_level(logging.INFO, logger="wsgi_reproxy"):
        client(app, pool).get("/a/b")
    info = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.INFO and "reproxied" in r.getMessage()
    ]
    assert len(info) == 1
    assert "/a/b" in info[0] and target.url("/files/hello.txt") in info[0]
    assert f": 200, {len(HELLO)} bytes" in info[0]


# -- wsgiref.validate ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "method", "headers", "status"),
    [
        pytest.param("/files/hello.txt", "GET", {}, 200, id="get"),
        pytest.param("/files/hello.txt", "HEAD", {}, 200, id="head"),
        pytest.param("/files/1m.bin", "GET", {"Range": "bytes=0-1"}, 206, id="range"),
        pytest.param("/hop", "GET", {}, 200, id="hop-by-hop"),
        pytest.param("/status/500", "GET", {}, 502, id="bad-gateway"),
    ],
)
def test_validator_accepts_reproxied_responses(
    path: str,
    method: str,
    headers: dict[str, str],
    status: int,
    target: TargetServer,
    pool: Any,
) -> None:
    app = App(
        [("X-Reproxy-Url", target.url(path)), ("Content-Type", "text/plain")],
        late=True,
    )
    wrapped = validator(wrap(validator(app), pool))
    res = webtest.TestApp(wrapped, lint=False).request(
        "/", method=method, headers=headers, status=status
    )
    assert res.status_int == status


def test_validator_accepts_passthrough(pool: Any) -> None:
    app = App([("Content-Type", "text/plain"), ("X-Reproxy-Expected-Size", "1")])
    wrapped = validator(wrap(validator(app), pool, "AllowReproxy Off"))
    assert webtest.TestApp(wrapped, lint=False).get("/").body == APP_BODY


def test_validator_accepts_the_502_for_a_trigger_nothing_may_act_on(
    pool: Any,
) -> None:
    app = App([("Content-Type", "text/plain"), ("X-Reproxy-Url", "http://x/")])
    wrapped = validator(wrap(validator(app), pool, "AllowReproxy Off"))
    res = webtest.TestApp(wrapped, lint=False).get("/", status=502)
    assert APP_BODY not in res.body


def test_passthrough_returns_app_iterable_itself(pool: Any) -> None:
    app = App([("Content-Type", "text/plain")])
    result = wrap(app, pool)({"REQUEST_METHOD": "GET"}, _start)
    assert isinstance(result, _AppIter)


# -- configuration and the extension seams -------------------------------------------


def test_config_path_is_loaded(tmp_path: Any, target: TargetServer, pool: Any) -> None:
    conf = tmp_path / "reproxy.conf"
    conf.write_text("<Location /dl>\n    AllowReproxy On\n</Location>\n")
    app = App([("X-Reproxy-Url", target.url("/files/hello.txt"))])
    test_app = webtest.TestApp(ReproxyMiddleware(app, str(conf), pool=pool))
    assert test_app.get("/dl/x").body == HELLO
    # Reproxying is off there: SPEC §4.12, a 502 and not the app's body.
    assert APP_BODY not in test_app.get("/elsewhere", status=502).body


def test_cache_for_hit_skips_the_app(target: TargetServer, pool: Any) -> None:
    app = App(
        [
            ("X-Reproxy-Url", target.url("/files/hello.txt")),
            ("X-Reproxy-Cache-For", "60; Content-Disposition"),
            ("Content-Disposition", "attachment"),
        ]
    )
    test_app = client(app, pool, "PreserveHeaders Content-Disposition")
    first = test_app.get("/cached")
    second = test_app.get("/cached")
    assert first.body == second.body == HELLO
    assert second.headers["Content-Disposition"] == "attachment"
    assert app.closed == 1  # the app ran once
    assert "X-Reproxy-Cache-For" not in second.headers


def test_cache_can_be_disabled(target: TargetServer, pool: Any) -> None:
    app = App(
        [
            ("X-Reproxy-Url", target.url("/files/hello.txt")),
            ("X-Reproxy-Cache-For", "60"),
        ]
    )
    config = parse_config("AllowReproxy On\n")
    test_app = webtest.TestApp(ReproxyMiddleware(app, config, pool=pool, cache=False))
    test_app.get("/")
    test_app.get("/")
    assert app.closed == 2


def test_reproxy_file_without_root_is_refused_as_404(
    pool: Any, caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    (tmp_path / "f.txt").write_bytes(b"secret")
    app = App([("X-Reproxy-File", str(tmp_path / "f.txt"))])
    with caplog.at_level(logging.WARNING, logger="wsgi_reproxy"):
        res = client(app, pool).get("/", status=404)
    assert b"secret" not in res.body and APP_BODY not in res.body
    assert "X-Reproxy-File" not in res.headers
    assert any("X-Reproxy-File" in r.getMessage() for r in caplog.records)


def test_urls_past_max_urls_ignored_and_logged(
    refused_url: str, target: TargetServer, pool: Any, caplog: pytest.LogCaptureFixture
) -> None:
    urls = " ".join([refused_url] * 2 + [target.url("/files/hello.txt")])
    app = App([("X-Reproxy-Url", urls)])
    mw = ReproxyMiddleware(
        app, parse_config("AllowReproxy On\n"), pool=pool, max_urls=2
    )
    with caplog.at_level(logging.WARNING, logger="wsgi_reproxy"):
        webtest.TestApp(mw).get("/", status=502)
    assert any("1 URLs past max_urls=2" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("value", ["12kb", "\u00b2", "-1", ""])
def test_garbage_expected_size_fails_closed(
    value: str, target: TargetServer, pool: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url = target.url("/files/hello.txt")
    app = App([("X-Reproxy-Url", url), ("X-Reproxy-Expected-Size", value)])
    seen = len(target.seen)
    with caplog.at_level(logging.WARNING, logger="wsgi_reproxy"):
        res = client(app, pool).get("/", status=502)
    assert HELLO not in res.body
    assert len(target.seen) == seen  # nothing fetched
    assert any(
        f"bad X-Reproxy-Expected-Size {value!r}" in r.getMessage()
        for r in caplog.records
    )


def test_custom_logger_gets_every_line(
    refused_url: str, target: TargetServer, pool: Any, caplog: pytest.LogCaptureFixture
) -> None:
    mine = logging.getLogger("myapp.reproxy")
    urls = f"{refused_url} {target.url('/files/hello.txt')}"
    app = App([("X-Reproxy-Url", urls)])
    mw = ReproxyMiddleware(
        app, parse_config("AllowReproxy On\n"), pool=pool, logger=mine
    )
    with caplog.at_level(logging.INFO, logger="myapp.reproxy"):
        webtest.TestApp(mw).get("/")
    names = {(r.name, r.levelname) for r in caplog.records}
    assert names == {("myapp.reproxy", "WARNING"), ("myapp.reproxy", "INFO")}


def _capabilities_app(seen: list[str | None]) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.append(environ.get("HTTP_X_PROXY_CAPABILITIES"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"app"]

    return app


def test_document_root_argument_drives_directory_sections() -> None:
    config = parse_config("<Directory /srv/files>\nAllowReproxy On\n</Directory>")
    seen: list[str | None] = []
    plain = webtest.TestApp(ReproxyMiddleware(_capabilities_app(seen), config))
    rooted = webtest.TestApp(
        ReproxyMiddleware(_capabilities_app(seen), config, document_root="/srv/files")
    )
    plain.get("/a.iso")
    rooted.get("/a.iso")
    assert seen == [None, "reproxy-file"]


def test_document_root_needs_a_config_object() -> None:
    class Fixed:
        def resolve(self, environ: Any) -> Any:
            raise AssertionError("not called")

    with pytest.raises(TypeError, match="document_root"):
        ReproxyMiddleware(_capabilities_app([]), Fixed(), document_root="/srv")


def test_cache_false_disables_the_cache() -> None:
    config = parse_config("<Location />\nAllowReproxy On\n</Location>")
    assert ReproxyMiddleware(_capabilities_app([]), config, cache=False).cache is None
    assert ReproxyMiddleware(_capabilities_app([]), config).cache is not None
