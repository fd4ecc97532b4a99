"""mod_xsendfile's ``X-Sendfile`` and nginx's ``X-Accel-Redirect`` (SPEC §4.12),
``ReproxyHeadMethod``, the all-404 answer (§4.11), through the middleware."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import webtest
from conftest import HELLO, TargetServer, make_bytes

from wsgi_reproxy import ConfigError, ReproxyMiddleware, parse_config
from wsgi_reproxy.config.dialects import AccelRedirect
from wsgi_reproxy.responders.accel import (
    find_redirect,
    unsafe,
    url_for,
    with_charset,
)
from wsgi_reproxy.responders.refusal import RateLimitedWarnings

APP_BODY = b"APP BODY MUST NOT LEAK"
DATA = make_bytes(300_000, "dialects")
BAD_GATEWAY = b"502 Bad Gateway\n\nThe requested file could not be served.\n"


def app_answering(headers: list[tuple[str, str]]) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", list(headers))
        return [APP_BODY]

    return app


def client(headers: list[tuple[str, str]], conf: str, pool: Any) -> webtest.TestApp:
    config = parse_config(conf, filename="dialects.conf")
    return webtest.TestApp(ReproxyMiddleware(app_answering(headers), config, pool=pool))


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """``files/`` (the root) with ``data.bin``, ``a b.txt`` and ``special/``;
    ``secret.txt`` beside it, and ``files/escape`` a symlink to it."""
    root = tmp_path / "files"
    (root / "special").mkdir(parents=True)
    (root / "data.bin").write_bytes(DATA)
    (root / "a b.txt").write_bytes(b"spaced name\n")
    (root / "special" / "data.bin").write_bytes(b"the special one\n")
    (tmp_path / "secret.txt").write_bytes(b"secret\n")
    os.symlink(tmp_path / "secret.txt", root / "escape")
    return root


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# -- X-Sendfile ---------------------------------------------------------------------


def test_x_sendfile_serves_the_file_with_the_apps_type_and_disposition(
    files: Path, pool: Any
) -> None:
    headers = [
        ("X-Sendfile", str(files / "data.bin")),
        ("Content-Type", "application/x-thing"),
        ("Content-Disposition", "attachment; filename=data.bin"),
        ("X-Frame-Options", "DENY"),
        ("X-App-Only", "1"),
    ]
    conf = f"ReproxySendfile On\nReproxyFileRoot {files}\n"
    res = client(headers, conf, pool).get("/dl")
    assert res.status_int == 200
    assert res.body == DATA
    assert res.headers["Content-Length"] == str(len(DATA))
    assert res.headers["Content-Type"] == "application/x-thing"
    assert res.headers["Content-Disposition"] == "attachment; filename=data.bin"
    assert "X-Sendfile" not in res.headers
    # ReproxyKeepAppHeaders' default keeps the app's security headers; an
    # unlisted one does not pass.
    assert res.headers["X-Frame-Options"] == "DENY"
    assert "X-App-Only" not in res.headers


def test_mod_xsendfile_snippet_works_unchanged(files: Path, pool: Any) -> None:
    # No AllowReproxy: mod_xsendfile's two directives are the whole switch.
    conf = f"<IfModule mod_xsendfile.c>\nXSendFile On\nXSendFilePath {files}\n</IfModule>\n"
    headers = [("X-Sendfile", str(files / "data.bin"))]
    test = client(headers, conf, pool)
    ranged = test.get("/", headers={"Range": "bytes=10-19"}, status=206)
    assert ranged.body == DATA[10:20]
    assert ranged.headers["Content-Range"] == f"bytes 10-19/{len(DATA)}"
    head = test.head("/")
    assert head.body == b"" and head.headers["Content-Length"] == str(len(DATA))


def test_x_sendfile_with_sendfile_off_is_502_naming_the_directive(
    files: Path, pool: Any, caplog: pytest.LogCaptureFixture
) -> None:
    headers = [("X-Sendfile", str(files / "data.bin"))]
    test = client(headers, f"AllowReproxy On\nReproxyFileRoot {files}\n", pool)
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        res = test.get("/dl", status=502)
        again = test.get("/dl", status=502)  # rate-limited: no second line
    assert res.body == again.body == BAD_GATEWAY
    assert "X-Sendfile" not in res.headers
    assert messages(caplog) == [
        "X-Sendfile ignored for /dl: ReproxySendfile On (or XSendFile On) is not"
        " set for this URL; answered 502"
    ]


def test_x_sendfile_without_root_is_404_naming_the_directive(
    files: Path, pool: Any, caplog: pytest.LogCaptureFixture
) -> None:
    headers = [("X-Sendfile", str(files / "data.bin"))]
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        res = client(headers, "XSendFile On\n", pool).get("/dl", status=404)
    assert res.body == b"404 Not Found\n"
    assert messages(caplog) == [
        "X-Sendfile ignored for /dl: no ReproxyFileRoot or XSendFilePath for this"
        " URL; answered 404"
    ]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("../secret.txt", id="dot-dot"),
        pytest.param("escape", id="symlink-out"),
        pytest.param("missing.bin", id="missing"),
    ],
)
def test_x_sendfile_outside_the_root_is_404(
    files: Path, pool: Any, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    headers = [("X-Sendfile", f"{files}/{name}")]
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        res = client(headers, f"XSendFile On\nXSendFilePath {files}\n", pool).get(
            "/", status=404
        )
    assert res.body == b"404 Not Found\n"
    assert messages(caplog)[0].startswith(f"X-Sendfile '{files}/{name}' refused: ")


def test_xsendfilepath_allowfiledelete_is_accepted_with_a_warning(
    tmp_path: Path,
) -> None:
    config = parse_config(
        f"XSendFilePath {tmp_path} AllowFileDelete\n", filename="x.conf"
    )
    assert config.warnings == (
        "x.conf:1: XSendFilePath AllowFileDelete is ignored: nothing is deleted",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("ReproxySendfile yes", "ReproxySendfile must be On or Off", id="sendfile"),
        pytest.param("XSendFile", "XSendFile must be On or Off", id="xsendfile"),
        pytest.param("XSendFilePath", "XSendFilePath takes one directory [AllowFileDelete]", id="path"),
        pytest.param("ReproxyAccelRedirect /p/", "ReproxyAccelRedirect takes PREFIX TARGET (a directory or an http(s) URL)", id="one-arg"),
        pytest.param("ReproxyAccelRedirect p/ /srv", "ReproxyAccelRedirect: prefix 'p/' must be a path starting with /", id="relative-prefix"),
        pytest.param("ReproxyAccelRedirect /p/ ftp://x/", "ReproxyAccelRedirect: target 'ftp://x/': only http and https URLs", id="ftp"),
        pytest.param("ReproxyAccelRedirect /p/ http://u:p@x/", "ReproxyAccelRedirect: target 'http://u:p@x/': userinfo in URL", id="userinfo"),
        pytest.param("ReproxyAccelRedirect /p/ http://x/?a=1", "ReproxyAccelRedirect: target 'http://x/?a=1': a URL prefix has no query or fragment", id="query"),
        pytest.param("ReproxyHeadMethod POST", "ReproxyHeadMethod must be HEAD or GET", id="head"),
        pytest.param("ReproxyMaxUrlLength 10", "ReproxyMaxUrlLength takes a whole number from 64 to 65536", id="short"),
        pytest.param("ReproxyMaxUrlLength many", "ReproxyMaxUrlLength takes a whole number from 64 to 65536", id="word"),
    ],
)  # fmt: skip
def test_bad_dialect_directive_is_a_config_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text + "\n", filename="bad.conf")
    assert str(info.value) == f"bad.conf:1: {message}"


# -- X-Accel-Redirect to a directory ---------------------------------------------------


def test_accel_redirect_serves_below_the_prefix_directory(
    files: Path, pool: Any
) -> None:
    headers = [
        ("X-Accel-Redirect", "/protected/data.bin"),
        ("Content-Type", "application/octet-stream"),
        ("X-Accel-Buffering", "no"),
        ("X-Accel-Limit-Rate", "1024"),
        ("X-Accel-Expires", "60"),
    ]
    test = client(headers, f"ReproxyAccelRedirect /protected/ {files}/\n", pool)
    res = test.get("/dl")
    assert res.status_int == 200 and res.body == DATA
    assert [k for k in res.headers if k.lower().startswith("x-accel")] == []
    ranged = test.get("/dl", headers={"Range": "bytes=-5"}, status=206)
    assert ranged.body == DATA[-5:]


def test_accel_redirect_path_is_percent_decoded_as_nginx_does(
    files: Path, pool: Any
) -> None:
    # django-sendfile2's nginx backend quotes the path: nginx decodes it.
    headers = [("X-Accel-Redirect", "/protected/a%20b.txt")]
    res = client(headers, f"ReproxyAccelRedirect /protected {files}\n", pool).get("/")
    assert res.body == b"spaced name\n"


def test_accel_redirect_longest_prefix_wins(files: Path, pool: Any) -> None:
    conf = (
        f"ReproxyAccelRedirect /protected/ {files}\n"
        f"ReproxyAccelRedirect /protected/special/ {files}/special\n"
    )
    special = [("X-Accel-Redirect", "/protected/special/data.bin")]
    assert client(special, conf, pool).get("/").body == b"the special one\n"
    plain = [("X-Accel-Redirect", "/protected/data.bin")]
    assert client(plain, conf, pool).get("/").body == DATA


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("/protected/../secret.txt", id="dot-dot"),
        pytest.param("/protected/%2e%2e/secret.txt", id="encoded-dot-dot"),
        pytest.param("/protected/escape", id="symlink-out"),
        pytest.param("/protected/", id="the-directory"),
        pytest.param("/protected/a%00b", id="nul"),
        pytest.param("/protected/nothing.bin", id="missing"),
    ],
)
def test_accel_redirect_outside_its_directory_is_404(
    files: Path, pool: Any, value: str
) -> None:
    headers = [("X-Accel-Redirect", value)]
    res = client(headers, f"ReproxyAccelRedirect /protected/ {files}\n", pool).get(
        "/", status=404
    )
    assert res.body == b"404 Not Found\n"


def test_accel_redirect_matching_no_prefix_is_502_and_logged(
    files: Path, pool: Any, caplog: pytest.LogCaptureFixture
) -> None:
    headers = [("X-Accel-Redirect", "/protectedfoo/data.bin")]
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        res = client(headers, f"ReproxyAccelRedirect /protected {files}\n", pool).get(
            "/dl", status=502
        )
    assert res.body == BAD_GATEWAY
    assert "X-Accel-Redirect" not in res.headers
    assert messages(caplog) == [
        "X-Accel-Redirect '/protectedfoo/data.bin' for /dl matches no"
        " ReproxyAccelRedirect prefix; answered 502"
    ]


def test_accel_redirect_without_any_prefix_names_the_directive(
    pool: Any, caplog: pytest.LogCaptureFixture
) -> None:
    headers = [("X-Accel-Redirect", "/protected/x")]
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        res = client(headers, "AllowReproxy On\n", pool).get("/dl", status=502)
    assert APP_BODY not in res.body
    assert messages(caplog) == [
        "X-Accel-Redirect ignored for /dl: ReproxyAccelRedirect PREFIX TARGET is"
        " not set for this URL; answered 502"
    ]


def test_accel_charset_labels_a_text_type(files: Path, pool: Any) -> None:
    headers = [
        ("X-Accel-Redirect", "/protected/a%20b.txt"),
        ("Content-Type", "text/plain"),
        ("X-Accel-Charset", "utf-8"),
    ]
    res = client(headers, f"ReproxyAccelRedirect /protected/ {files}\n", pool).get("/")
    assert res.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "X-Accel-Charset" not in res.headers


# -- X-Accel-Redirect to a URL ------------------------------------------------------------


def test_accel_redirect_to_a_url_reproxies_with_the_query(
    target: TargetServer, pool: Any
) -> None:
    headers = [("X-Accel-Redirect", "/store/hello.txt?X-Sig=a%2Fb&x=1")]
    conf = f"ReproxyAccelRedirect /store/ {target.url('/files/')}\n"
    res = client(headers, conf, pool).get("/")
    assert res.body == HELLO
    assert target.seen[-1].path == "/files/hello.txt?X-Sig=a%2Fb&x=1"


def test_accel_redirect_to_a_bare_host_passes_the_whole_path(
    target: TargetServer, pool: Any
) -> None:
    headers = [("X-Accel-Redirect", "/files/hello.txt")]
    conf = f"ReproxyAccelRedirect /files/ {target.url('')}\n"
    assert client(headers, conf, pool).get("/").body == HELLO
    assert target.seen[-1].path == "/files/hello.txt"


def test_accel_redirect_url_outside_the_allow_list_is_refused(
    target: TargetServer, pool: Any
) -> None:
    before = len(target.seen)
    headers = [("X-Accel-Redirect", "/store/hello.txt")]
    conf = (
        f"ReproxyAccelRedirect /store/ {target.url('/files/')}\n"
        "ReproxyAllowTargets http://10.0.0.*:7500/\n"
    )
    res = client(headers, conf, pool).get("/", status=502)
    assert HELLO not in res.body and APP_BODY not in res.body
    assert len(target.seen) == before


def test_accel_redirect_url_with_a_blank_is_404_not_a_url_list(
    target: TargetServer, pool: Any
) -> None:
    headers = [("X-Accel-Redirect", f"/store/hello.txt {target.url('/files/1m.bin')}")]
    conf = f"ReproxyAccelRedirect /store/ {target.url('/files/')}\n"
    client(headers, conf, pool).get("/", status=404)


# -- HEAD as GET, every target 404 ----------------------------------------------------


def test_head_sent_as_get_returns_headers_and_reads_no_body(
    target: TargetServer, pool: Any
) -> None:
    headers = [("X-Reproxy-Url", target.url("/files/1m.bin"))]
    test = client(headers, "AllowReproxy On\nReproxyHeadMethod GET\n", pool)
    res = test.head("/")
    assert res.status_int == 200 and res.body == b""
    assert res.headers["Content-Length"] == str(1 << 20)
    assert target.seen[-1].method == "GET"
    assert test.get("/").body == make_bytes(1 << 20, "1m")


def test_head_goes_as_head_by_default(target: TargetServer, pool: Any) -> None:
    headers = [("X-Reproxy-Url", target.url("/files/hello.txt"))]
    client(headers, "AllowReproxy On\n", pool).head("/")
    assert target.seen[-1].method == "HEAD"


def test_every_target_404_is_404(target: TargetServer, pool: Any) -> None:
    urls = f"{target.url('/files/none-1')} {target.url('/files/none-2')}"
    res = client([("X-Reproxy-Url", urls)], "AllowReproxy On\n", pool).get(
        "/", status=404
    )
    assert res.body == b"404 Not Found\n\nThe requested file could not be fetched.\n"


def test_one_404_and_one_500_stay_502(target: TargetServer, pool: Any) -> None:
    urls = f"{target.url('/files/none')} {target.url('/status/500')}"
    client([("X-Reproxy-Url", urls)], "AllowReproxy On\n", pool).get("/", status=502)


# -- the pure pieces ----------------------------------------------------------------------

DIR = AccelRedirect("/p/", "/srv/p", False)
HOST = AccelRedirect("/files/", "http://store:7500", True)
PATHED = AccelRedirect("/s3", "https://b.s3.example/bucket/", True)


@pytest.mark.parametrize(
    ("redirect", "path", "rest", "query", "url"),
    [
        pytest.param(HOST, "/files/a", "a", "", "http://store:7500/files/a", id="host"),
        pytest.param(PATHED, "/s3/k%2Bx", "/k%2Bx", "", "https://b.s3.example/bucket/k%2Bx", id="kept-encoded"),
        pytest.param(PATHED, "/s3/k", "/k", "X-Amz=1", "https://b.s3.example/bucket/k?X-Amz=1", id="query"),
        pytest.param(PATHED, "/s3", "", "", "https://b.s3.example/bucket/", id="prefix-only"),
    ],
)  # fmt: skip
def test_url_for_maps_like_proxy_pass(
    redirect: AccelRedirect, path: str, rest: str, query: str, url: str
) -> None:
    assert url_for(redirect, path, rest, query) == url


def test_find_redirect_takes_whole_segments_for_a_prefix_without_slash() -> None:
    assert find_redirect("/s3/x", [PATHED]) == (PATHED, "/x")
    assert find_redirect("/s3", [PATHED]) == (PATHED, "")
    assert find_redirect("/s3x/y", [PATHED]) is None
    assert find_redirect("/p/x", [DIR, PATHED]) == (DIR, "x")


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        pytest.param("/p/a/b", None, id="plain"),
        pytest.param("/p/a..b", None, id="dots-in-a-name"),
        pytest.param("/p/./a", "'.' or '..' segment in path", id="dot"),
        pytest.param("/p/%2E%2E/a", "'.' or '..' segment in path", id="encoded"),
        pytest.param("/p/a%00", "NUL in path", id="nul"),
    ],
)
def test_unsafe_paths_as_nginx_refuses_them(path: str, reason: str | None) -> None:
    assert unsafe(path) == reason


@pytest.mark.parametrize(
    ("content_type", "charset", "result"),
    [
        pytest.param("text/html", "koi8-r", "text/html; charset=koi8-r", id="add"),
        pytest.param("text/html; charset=utf-8", "koi8-r", "text/html; charset=koi8-r", id="replace"),
        pytest.param("text/plain; format=flowed", "utf-8", "text/plain; format=flowed; charset=utf-8", id="keep-params"),
        pytest.param("image/png", "utf-8", "image/png", id="not-text"),
        pytest.param("text/html", "None", "text/html", id="downloadview-none"),
        pytest.param("text/html", "off", "text/html", id="off"),
        pytest.param("text/html", "a b", "text/html", id="not-a-token"),
    ],
)  # fmt: skip
def test_with_charset(content_type: str, charset: str, result: str) -> None:
    assert with_charset(content_type, charset) == result


def test_rate_limited_warnings_count_what_they_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    warnings = RateLimitedWarnings(
        logging.getLogger("wsgi_reproxy.test"), interval=60, clock=lambda: now[0]
    )
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        assert warnings.warn("a", "first %s", "x")
        assert not warnings.warn("a", "first %s", "x")
        assert warnings.warn("b", "other")
        now[0] += 61
        assert warnings.warn("a", "first %s", "x")
    assert messages(caplog) == [
        "first x",
        "other",
        "first x (1 more like this in the last 60s)",
    ]


# -- several triggers in one response ------------------------------------------------


def test_first_trigger_switched_on_wins(
    files: Path, target: TargetServer, pool: Any
) -> None:
    # X-Reproxy-Url comes first, but AllowReproxy is off: X-Sendfile serves.
    headers = [
        ("X-Reproxy-Url", target.url("/files/hello.txt")),
        ("X-Sendfile", str(files / "data.bin")),
    ]
    conf = f"XSendFile On\nXSendFilePath {files}\n"
    assert client(headers, conf, pool).get("/").body == DATA
    # Both on: perlbal's own headers first, X-Reproxy-File before the URLs.
    both = [*headers, ("X-Reproxy-File", str(files / "a b.txt"))]
    conf += f"AllowReproxy On\nReproxyFileRoot {files}\n"
    assert client(both, conf, pool).get("/").body == b"spaced name\n"


def test_app_preserve_header_names_only_preservable_headers(
    target: TargetServer, pool: Any
) -> None:
    headers = [
        ("X-Reproxy-Url", target.url("/files/hello.txt")),
        ("X-Reproxy-Preserve-Headers", "Content-Type Content-Length bad/name"),
        ("Content-Type", "text/x-app"),
        ("Content-Length", "1"),
    ]
    res = client(headers, "AllowReproxy On\n", pool).get("/")
    assert res.body == HELLO
    assert res.headers["Content-Type"] == "text/x-app"
    assert res.headers["Content-Length"] == str(len(HELLO))
    assert "X-Reproxy-Preserve-Headers" not in res.headers
