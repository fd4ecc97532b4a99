"""X-Reproxy-File: root containment, and static-file answers (Range, 304, HEAD)."""

from __future__ import annotations

import http.client
import os
import socket
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from wsgi_reproxy.config.settings import Settings
from wsgi_reproxy.responders.confine import Refusal, resolve_file
from wsgi_reproxy.responders.file import (
    FileResponse,
    _FileSlice,
    guess_type,
    reproxy_file,
    serve_file,
)

with warnings.catch_warnings():
    # webob (under webtest) imports the cgi module, deprecated since 3.11.
    warnings.simplefilter("ignore", DeprecationWarning)
    import webtest

DATA = b"0123456789abcdefghij"  # 20 bytes


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A file root and its surroundings::

    files/hello.txt  files/photo.JPG  files/sub/inner.txt  files/empty.bin
    files/link-in -> sub/inner.txt     files/link-out -> ../secret.txt
    files/loop -> loop                 files/dirlink -> ../outside
    secret.txt  files-private/x.txt  outside/y.txt  rootlink -> files
    """
    root = tmp_path / "files"
    (root / "sub").mkdir(parents=True)
    (root / "hello.txt").write_bytes(DATA)
    (root / "photo.JPG").write_bytes(b"\xff\xd8jpeg")
    (root / "sub" / "inner.txt").write_bytes(b"inner")
    (root / "empty.bin").write_bytes(b"")
    (root / "link-in").symlink_to("sub/inner.txt")
    (root / "link-out").symlink_to("../secret.txt")
    (root / "loop").symlink_to("loop")
    (tmp_path / "secret.txt").write_bytes(b"secret")
    (tmp_path / "files-private").mkdir()
    (tmp_path / "files-private" / "x.txt").write_bytes(b"x")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "y.txt").write_bytes(b"y")
    (root / "dirlink").symlink_to("../outside")
    (tmp_path / "rootlink").symlink_to("files")
    os.mkfifo(root / "fifo")
    return tmp_path


# -- resolve_file ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "roots", "expected"),
    [
        pytest.param("files/hello.txt", ["files"], "files/hello.txt", id="inside"),
        pytest.param(
            "files/sub/inner.txt", ["files"], "files/sub/inner.txt", id="nested"
        ),
        pytest.param(
            "files/sub/../hello.txt",
            ["files"],
            "files/hello.txt",
            id="dotdot-staying-inside",
        ),
        pytest.param(
            "files/link-in",
            ["files"],
            "files/sub/inner.txt",
            id="symlink-inside-resolved",
        ),
        pytest.param(
            "rootlink/hello.txt",
            ["files"],
            "files/hello.txt",
            id="path-through-symlinked-dir",
        ),
        pytest.param(
            "files/hello.txt", ["rootlink"], "files/hello.txt", id="root-is-a-symlink"
        ),
        pytest.param(
            "outside/y.txt", ["files", "outside"], "outside/y.txt", id="second-root"
        ),
        pytest.param(
            "files/hello.txt",
            ["missing-root", "files"],
            "files/hello.txt",
            id="missing-root-skipped",
        ),
        pytest.param(
            "files/../secret.txt", ["files"], "outside every", id="dotdot-escape"
        ),
        pytest.param(
            "files/sub/../../secret.txt",
            ["files"],
            "outside every",
            id="deep-dotdot-escape",
        ),
        pytest.param("files/link-out", ["files"], "outside every", id="symlink-escape"),
        pytest.param(
            "files/dirlink/y.txt", ["files"], "outside every", id="dir-symlink-escape"
        ),
        pytest.param(
            "files-private/x.txt",
            ["files"],
            "outside every",
            id="sibling-with-root-as-prefix",
        ),
        pytest.param(
            "secret.txt", ["files/sub"], "outside every", id="outside-nested-root"
        ),
        pytest.param("files/nope.txt", ["files"], "no such file", id="missing-file"),
        pytest.param("files/sub", ["files"], "not a regular file", id="directory"),
        pytest.param("files", ["files"], "not a regular file", id="the-root-itself"),
        pytest.param("files/fifo", ["files"], "not a regular file", id="fifo"),
        pytest.param("files/loop", ["files"], "cannot resolve", id="symlink-loop"),
        pytest.param(
            "files/hello.txt", [], "no ReproxyFileRoot", id="no-root-configured"
        ),
        pytest.param(
            "files/hello.txt/", ["files"], "not a regular file", id="file-as-directory"
        ),
    ],
)
def test_resolve_file(tree: Path, path: str, roots: list[str], expected: str) -> None:
    # f-string, not "/": pathlib would drop the trailing slash of a path
    result = resolve_file(f"{tree}/{path}", [str(tree / r) for r in roots])
    if isinstance(result, Refusal):
        assert str(result).startswith(expected), result
    else:
        assert result == str(tree / expected)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        pytest.param("hello.txt", "not an absolute path", id="relative"),
        pytest.param("", "empty path", id="empty"),
        pytest.param("/x\x00y", "empty path or control character", id="nul"),
        pytest.param("/x\ny", "empty path or control character", id="newline"),
    ],
)
def test_resolve_file_refuses_malformed_paths(
    tree: Path, path: str, reason: str
) -> None:
    result = resolve_file(path, [str(tree / "files")])
    assert isinstance(result, Refusal)
    assert str(result).startswith(reason)


# -- serving through WSGI ---------------------------------------------------------


def file_app(
    path: str,
    root: Path | None,
    app_headers: list[tuple[str, str]] | None = None,
    preserve: tuple[str, ...] = (),
    refusals: list[str] | None = None,
) -> Any:
    """A WSGI app doing what the middleware does with ``X-Reproxy-File``."""
    settings = Settings(
        allow_reproxy=True,
        file_roots=(str(root),) if root else (),
        preserve_headers=preserve,
    )

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        response, refused = reproxy_file(environ, path, settings, app_headers or [])
        if refused is not None and refusals is not None:
            refusals.append(refused)
        start_response(response.status, response.headers)
        return response.body

    return app


@pytest.fixture
def client(tree: Path) -> webtest.TestApp:
    return webtest.TestApp(file_app(str(tree / "files/hello.txt"), tree / "files"))


def test_full_get_serves_the_file_with_validators(
    tree: Path, client: webtest.TestApp
) -> None:
    response = client.get("/")
    assert response.status_int == 200
    assert response.body == DATA
    assert response.headers["Content-Length"] == "20"
    assert response.headers["Content-Type"] == "text/plain"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["ETag"].startswith('"')
    stat = os.stat(tree / "files/hello.txt")
    assert response.headers["Last-Modified"] == formatdate(
        int(stat.st_mtime), usegmt=True
    )
    assert "Date" not in response.headers  # the server adds its own


def test_head_has_headers_and_no_body(client: webtest.TestApp) -> None:
    response = client.head("/")
    assert response.status_int == 200
    assert response.body == b""
    assert response.headers["Content-Length"] == "20"


@pytest.mark.parametrize(
    ("range_", "content_range", "body"),
    [
        pytest.param("bytes=0-4", "bytes 0-4/20", DATA[0:5], id="first-bytes"),
        pytest.param("bytes=15-", "bytes 15-19/20", DATA[15:], id="open-ended"),
        pytest.param("bytes=-3", "bytes 17-19/20", DATA[-3:], id="suffix"),
        pytest.param("bytes=7-7", "bytes 7-7/20", DATA[7:8], id="one-byte"),
        pytest.param("bytes=10-999", "bytes 10-19/20", DATA[10:], id="end-clamped"),
    ],
)
def test_single_range_answers_206(
    client: webtest.TestApp, range_: str, content_range: str, body: bytes
) -> None:
    response = client.get("/", headers={"Range": range_}, status=206)
    assert response.headers["Content-Range"] == content_range
    assert response.headers["Content-Length"] == str(len(body))
    assert response.body == body


def test_head_with_range_has_206_headers_and_no_body(client: webtest.TestApp) -> None:
    response = client.head("/", headers={"Range": "bytes=0-4"}, status=206)
    assert response.headers["Content-Length"] == "5"
    assert response.body == b""


def test_range_past_the_end_answers_416(client: webtest.TestApp) -> None:
    response = client.get("/", headers={"Range": "bytes=20-"}, status=416)
    assert response.headers["Content-Range"] == "bytes */20"
    assert response.body == b""


@pytest.mark.parametrize(
    "range_",
    [
        pytest.param("bytes=0-1,5-6", id="several-ranges"),
        pytest.param("bytes=5-2", id="reversed"),
        pytest.param("pages=1-2", id="unknown-unit"),
        pytest.param("garbage", id="garbage"),
    ],
)
def test_range_we_do_not_serve_is_ignored_with_full_200(
    client: webtest.TestApp, range_: str
) -> None:
    # RFC 9110 §14.2: a server MAY ignore Range; nginx does for these.
    response = client.get("/", headers={"Range": range_}, status=200)
    assert response.body == DATA


def test_matching_if_none_match_answers_304(client: webtest.TestApp) -> None:
    etag = client.get("/").headers["ETag"]
    response = client.get("/", headers={"If-None-Match": etag}, status=304)
    assert response.body == b""
    assert response.headers["ETag"] == etag


def test_other_if_none_match_answers_200(client: webtest.TestApp) -> None:
    client.get("/", headers={"If-None-Match": '"other"'}, status=200)


def test_if_modified_since_not_older_answers_304(client: webtest.TestApp) -> None:
    last_modified = client.get("/").headers["Last-Modified"]
    client.get("/", headers={"If-Modified-Since": last_modified}, status=304)


def test_if_modified_since_older_answers_200(client: webtest.TestApp) -> None:
    client.get(
        "/", headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}, status=200
    )


def test_if_range_with_current_etag_answers_206(client: webtest.TestApp) -> None:
    etag = client.get("/").headers["ETag"]
    headers = {"Range": "bytes=0-1", "If-Range": etag}
    assert client.get("/", headers=headers, status=206).body == DATA[:2]


def test_if_range_with_old_etag_answers_full_200(client: webtest.TestApp) -> None:
    headers = {"Range": "bytes=0-1", "If-Range": '"old"'}
    assert client.get("/", headers=headers, status=200).body == DATA


def test_failed_if_match_answers_412(client: webtest.TestApp) -> None:
    response = client.get("/", headers={"If-Match": '"old"'}, status=412)
    assert response.body == b""


def test_post_gets_the_whole_file(client: webtest.TestApp) -> None:
    # Like a URL target, which is fetched with GET for any method (SPEC §4.6).
    response = client.post("/", headers={"Range": "bytes=0-1"}, status=200)
    assert response.body == DATA


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        pytest.param("a.txt", "text/plain", id="text"),
        pytest.param("a.JPG", "image/jpeg", id="upper-case-suffix"),
        pytest.param("a.html", "text/html", id="html"),
        pytest.param("a.tar.gz", "application/octet-stream", id="compressed"),
        pytest.param("README", "application/octet-stream", id="no-suffix"),
        pytest.param(
            "a.unknownsuffix", "application/octet-stream", id="unknown-suffix"
        ),
    ],
)
def test_guess_type(name: str, content_type: str) -> None:
    assert guess_type(name) == content_type


def test_content_type_guessed_from_the_file_name(tree: Path) -> None:
    app = file_app(str(tree / "files/photo.JPG"), tree / "files")
    assert webtest.TestApp(app).get("/").headers["Content-Type"] == "image/jpeg"


def test_content_type_from_the_app_wins_over_the_guess(tree: Path) -> None:
    headers = [("content-type", "application/x-custom; v=1")]
    app = file_app(str(tree / "files/photo.JPG"), tree / "files", headers)
    response = webtest.TestApp(app).get("/")
    assert response.headers.getall("Content-Type") == ["application/x-custom; v=1"]


APP_HEADERS = [
    ("Cache-Control", "public, max-age=60"),
    ("ETag", '"app-etag"'),
    ("Link", "</a>; rel=a"),
    ("Link", "</b>; rel=b"),
    ("Content-Length", "3"),
    ("Content-Range", "bytes 0-2/3"),
    ("Connection", "close"),
    ("Set-Cookie", "session=secret"),
    ("X-Reproxy-File", "/elsewhere"),
    ("X-App-Only", "1"),
]


@pytest.mark.parametrize(
    ("preserve", "expected"),
    [
        pytest.param(
            ("Cache-Control",), {"Cache-Control": ["public, max-age=60"]}, id="added"
        ),
        pytest.param(
            ("etag",), {"ETag": ['"app-etag"']}, id="replaces-generated-any-case"
        ),
        pytest.param(
            ("Link",),
            {"Link": ["</a>; rel=a", "</b>; rel=b"]},
            id="every-value-of-repeated",
        ),
        pytest.param(
            ("Content-Length", "Content-Range", "Connection"),
            {"Content-Length": ["20"], "Content-Range": [], "Connection": []},
            id="never-length-range-or-hop-by-hop",
        ),
        pytest.param(
            (),
            {"Set-Cookie": ["session=secret"], "Cache-Control": ["public, max-age=60"]},
            id="kept-by-default-keep-app-headers",
        ),
        pytest.param(("ETag",), {"X-App-Only": []}, id="unlisted-not-passed"),
        pytest.param(("X-Reproxy-File",), {"X-Reproxy-File": []}, id="never-x-reproxy"),
    ],
)
def test_preserve_headers(
    tree: Path, preserve: tuple[str, ...], expected: dict[str, list[str]]
) -> None:
    app = file_app(str(tree / "files/hello.txt"), tree / "files", APP_HEADERS, preserve)
    response = webtest.TestApp(app).get("/")
    assert response.body == DATA
    for name, values in expected.items():
        assert response.headers.getall(name) == values


@pytest.mark.parametrize(
    ("path", "root", "app_headers", "reason"),
    [
        pytest.param("files/nope", "files", [], "no such file", id="missing"),
        pytest.param("secret.txt", "files", [], "outside every", id="outside-root"),
        pytest.param("files/hello.txt", None, [], "no ReproxyFileRoot", id="no-root"),
        pytest.param(
            "files/hello.txt",
            "files",
            [("X-Reproxy-Expected-Size", "19")],
            "size 20 differs from X-Reproxy-Expected-Size 19",
            id="expected-size-differs",
        ),
        pytest.param(
            "files/hello.txt",
            "files",
            [("X-Reproxy-Expected-Size", "big")],
            "bad X-Reproxy-Expected-Size 'big'",
            id="expected-size-malformed",
        ),
        pytest.param(
            "files/hello.txt",
            "files",
            [("X-Reproxy-Expected-Size", "\u00b2")],
            "bad X-Reproxy-Expected-Size",
            id="expected-size-superscript-digit",
        ),
    ],
)
def test_refusal_answers_404_and_reports_why(
    tree: Path,
    path: str,
    root: str | None,
    app_headers: list[tuple[str, str]],
    reason: str,
) -> None:
    refusals: list[str] = []
    app = file_app(
        str(tree / path), tree / root if root else None, app_headers, refusals=refusals
    )
    response = webtest.TestApp(app).get("/", status=404)
    assert response.body == b"404 Not Found\n"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert len(refusals) == 1 and refusals[0].startswith(reason), refusals


def test_matching_expected_size_serves_the_file(tree: Path) -> None:
    headers = [("X-Reproxy-Expected-Size", " 20 ")]
    app = file_app(str(tree / "files/hello.txt"), tree / "files", headers)
    assert webtest.TestApp(app).get("/").body == DATA


def test_empty_file_served_as_empty_200(tree: Path) -> None:
    # perlbal answered 404 for a zero-length file; a static server does not.
    app = file_app(str(tree / "files/empty.bin"), tree / "files")
    response = webtest.TestApp(app).get("/", headers={"Range": "bytes=0-5"})
    assert (response.status_int, response.body) == (200, b"")


def environ(**extra: Any) -> dict[str, Any]:
    env: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    env.update(extra)
    return env


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("files/nope", id="vanished-since-resolve"),
        pytest.param("files/link-in", id="symlink-swapped-in-since-resolve"),
        pytest.param("files/fifo", id="fifo-swapped-in-since-resolve"),
    ],
)
def test_serve_file_answers_404_when_the_resolved_path_changed(
    tree: Path, path: str
) -> None:
    response = serve_file(environ(), str(tree / path), [], ())
    assert response.status == "404 Not Found"


def test_wsgi_file_wrapper_gets_a_slice_with_the_real_fileno(tree: Path) -> None:
    wrapped: list[Any] = []

    class FileWrapper:
        def __init__(self, filelike: Any, blksize: int = 8192) -> None:
            wrapped.append(filelike)
            self.filelike = filelike

        def __iter__(self) -> Iterator[bytes]:
            return iter(lambda: self.filelike.read(4), b"")

        def close(self) -> None:
            self.filelike.close()

    env = environ(HTTP_RANGE="bytes=3-9", **{"wsgi.file_wrapper": FileWrapper})
    response = serve_file(env, str(tree / "files/hello.txt"), [], ())
    assert isinstance(response.body, FileWrapper)
    filelike = wrapped[0]
    assert (
        os.fstat(filelike.fileno()).st_ino == os.stat(tree / "files/hello.txt").st_ino
    )
    # sendfile servers start at the current offset for Content-Length bytes
    assert filelike.tell() == 3
    assert b"".join(response.body) == DATA[3:10]
    response.body.close()
    with pytest.raises(ValueError):
        filelike.fileno()  # closed


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
@pytest.mark.parametrize(
    ("method", "headers"),
    [
        pytest.param("GET", {}, id="full"),
        pytest.param("HEAD", {}, id="head"),
        pytest.param("GET", {"Range": "bytes=99-"}, id="416"),
        pytest.param("GET", {"If-Match": '"x"'}, id="412"),
        pytest.param(
            "GET", {"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}, id="304"
        ),
    ],
)
def test_every_answer_closes_the_file(
    tree: Path, method: str, headers: dict[str, str]
) -> None:
    before = open_fds()
    env = environ(
        REQUEST_METHOD=method,
        **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()},
    )
    response: FileResponse = serve_file(env, str(tree / "files/hello.txt"), [], ())
    b"".join(response.body)
    getattr(response.body, "close", lambda: None)()
    assert open_fds() == before


# -- a real server that iterates wsgi.file_wrapper (no sendfile) ----------------


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def wsgiref_url(tree: Path) -> Iterator[str]:
    app = file_app(str(tree / "files/hello.txt"), tree / "files")
    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize(
    ("range_", "status", "body"),
    [
        pytest.param(None, 200, DATA, id="full"),
        pytest.param("bytes=2-5", 206, DATA[2:6], id="range-stops-at-its-end"),
    ],
)
def test_wsgiref_file_wrapper_sends_exactly_the_range(
    wsgiref_url: str, range_: str | None, status: int, body: bytes
) -> None:
    # wsgiref's FileWrapper reads until EOF and does not stop at
    # Content-Length: the slice must end the range itself.  Read the raw
    # connection to its close, so any extra byte would show.
    host, port = wsgiref_url.split(":")
    request = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    if range_:
        request += f"Range: {range_}\r\n"
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request.encode() + b"\r\n")
        raw = b"".join(iter(lambda: sock.recv(65536), b""))
    head, _, got = raw.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == str(status).encode()
    assert f"Content-Length: {len(body)}".encode() in head
    assert got == body


# -- through ReproxyMiddleware --------------------------------------------------


def middleware_client(tree: Path, conf: str, file: str) -> webtest.TestApp:
    from wsgi_reproxy import ReproxyMiddleware, parse_config

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response(
            "200 OK",
            [
                ("X-Reproxy-File", str(tree / file)),
                ("Cache-Control", "max-age=60"),
                ("Content-Type", "text/html; charset=utf-8"),
            ],
        )
        return [b"the app's own body"]

    config = parse_config(conf.format(root=tree / "files"))
    return webtest.TestApp(ReproxyMiddleware(app, config))


def test_middleware_serves_the_file_with_ranges_and_preserved_headers(
    tree: Path,
) -> None:
    conf = "AllowReproxy On\nReproxyFileRoot {root}\nPreserveHeaders Cache-Control\n"
    client = middleware_client(tree, conf, "files/hello.txt")
    response = client.get("/x", headers={"Range": "bytes=4-"}, status=206)
    assert response.body == DATA[4:]
    assert response.headers["Cache-Control"] == "max-age=60"
    # the app's Content-Type wins over the guess (issue 5)
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "X-Reproxy-File" not in response.headers


@pytest.mark.parametrize(
    ("conf", "path"),
    [
        pytest.param("AllowReproxy On\n", "/x", id="no-root-configured"),
        pytest.param(
            "AllowReproxy On\n<Location /public>\nReproxyFileRoot {root}\n</Location>\n",
            "/private/x",
            id="root-only-in-another-location",
        ),
        pytest.param(
            "AllowReproxy On\nReproxyFileRoot {root}/sub\n", "/x", id="outside-root"
        ),
    ],
)
def test_middleware_refuses_with_404(tree: Path, conf: str, path: str) -> None:
    client = middleware_client(tree, conf, "files/hello.txt")
    response = client.get(path, status=404)
    assert response.body == b"404 Not Found\n"


def test_middleware_serves_where_the_location_sets_a_root(tree: Path) -> None:
    conf = "AllowReproxy On\n<Location /public>\nReproxyFileRoot {root}\n</Location>\n"
    client = middleware_client(tree, conf, "files/hello.txt")
    assert client.get("/public/x").body == DATA


# -- under gunicorn: wsgi.file_wrapper and sendfile from an offset ---------------

GUNICORN_APP = """
import http.client
import os

def app(environ, start_response):
    start_response("200 OK", [("X-Reproxy-File", os.environ["FILE_TO_SERVE"])])
    return [b"the app's own body"]
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "gunicorn_args",
    [pytest.param([], id="sync"), pytest.param(["--threads", "4"], id="gthread")],
)
def test_gunicorn_sendfile_serves_whole_file_and_ranges(
    tmp_path: Path, gunicorn_args: list[str]
) -> None:
    from _processes import Command, gunicorn_quiet_options

    root = tmp_path / "root"
    root.mkdir()
    data = os.urandom(3 * 1024 * 1024 + 7)
    (root / "big.bin").write_bytes(data)
    (tmp_path / "fileapp.py").write_text(GUNICORN_APP)
    conf = tmp_path / "reproxy.conf"
    conf.write_text(f"AllowReproxy On\nReproxyFileRoot {root}\n")
    args = ["serve", str(conf), "fileapp:app", "--bind", "127.0.0.1:0", "--"]
    env = {"FILE_TO_SERVE": str(root / "big.bin")}
    with Command(
        [*args, *gunicorn_quiet_options(), *gunicorn_args],
        tmp_path,
        cwd=tmp_path,
        env=env,
    ) as server:
        cases = [
            ("GET", None, 200, data),
            ("GET", "bytes=1000000-2999999", 206, data[1000000:3000000]),
            ("GET", "bytes=-7", 206, data[-7:]),
            ("HEAD", "bytes=10-19", 206, b""),
        ]
        for method, range_, status, body in cases:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            try:
                conn.request(method, "/f", headers={"Range": range_} if range_ else {})
                response = conn.getresponse()
                got = response.read()
                assert (response.status, len(got)) == (status, len(body)), range_
                assert got == body, range_
                if method == "HEAD":
                    assert response.getheader("Content-Length") == "10"
                # one Date header, the server's own
                assert len(response.msg.get_all("Date") or []) == 1
            finally:
                conn.close()


def test_file_closed_when_the_file_wrapper_raises(tree: Path) -> None:
    opened: list[Any] = []

    def broken_wrapper(filelike: Any, blksize: int = 8192) -> Any:
        opened.append(filelike)
        raise RuntimeError("no wrapper today")

    env = environ(**{"wsgi.file_wrapper": broken_wrapper})
    with pytest.raises(RuntimeError):
        serve_file(env, str(tree / "files/hello.txt"), [], ())
    with pytest.raises(ValueError):
        opened[0].fileno()  # closed


@pytest.mark.parametrize(
    ("start", "end", "reads", "expected"),
    [
        pytest.param(0, 20, [-1], [DATA], id="whole"),
        pytest.param(5, 8, [-1, -1], [DATA[5:8], b""], id="read-all-stops-at-end"),
        pytest.param(5, 12, [4, 4, 4], [DATA[5:9], DATA[9:12], b""], id="sized-reads"),
        pytest.param(18, 20, [100], [DATA[18:]], id="past-eof"),
    ],
)
def test_file_slice_reads_only_its_span(
    tree: Path, start: int, end: int, reads: list[int], expected: list[bytes]
) -> None:
    with open(tree / "files/hello.txt", "rb") as raw:
        part = _FileSlice(raw, start, end)
        assert part.seekable() and part.tell() == start
        assert [part.read(n) for n in reads] == expected
        assert part.seek(start) == start  # socket.sendfile seeks after sending
        assert part.read() == DATA[start:end]
