"""The offload dialects Flask and Django apps already speak, with the real
libraries: Flask ``send_file`` + ``USE_X_SENDFILE``, django-sendfile2's
``xsendfile`` and ``nginx`` backends and ours, django-downloadview's
``SmartDownloadMiddleware``, and the helpers ``wsgi_reproxy.flask.reproxy``,
``wsgi_reproxy.django.ReproxyResponse`` and ``can_reproxy``."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask
import pytest
import webtest
from conftest import HELLO, TargetServer, make_bytes

from wsgi_reproxy import ReproxyMiddleware, can_reproxy, parse_config
from wsgi_reproxy.flask import reproxy

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DATA = make_bytes(200_000, "frameworks")
NOT_IMPLEMENTED = (
    b"501 Not Implemented\n\nThis download needs wsgi_reproxy.ReproxyMiddleware"
    b" in front of the application.\n"
)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    root = tmp_path / "files"
    root.mkdir()
    (root / "data.bin").write_bytes(DATA)
    (root / "notes.txt").write_bytes(b"some notes\n")
    (tmp_path / "secret.txt").write_bytes(b"secret\n")
    return root


def wrapped(app: Any, conf: str, pool: Any) -> webtest.TestApp:
    return webtest.TestApp(ReproxyMiddleware(app, parse_config(conf), pool=pool))


# -- Flask ---------------------------------------------------------------------------


def flask_app(files: Path, target: TargetServer | None = None) -> flask.Flask:
    app = flask.Flask("frameworks")
    app.config["USE_X_SENDFILE"] = True

    @app.get("/send/<path:name>")
    def send(name: str) -> flask.Response:
        # send_file with a path the view trusts (the refusal tests pass one
        # outside the root on purpose): the middleware confines it again.
        return flask.send_file(files / name, as_attachment=True)

    @app.get("/reproxy")
    def via_reproxy() -> flask.Response:
        assert target is not None
        urls = [target.url("/files/none"), target.url("/files/hello.txt")]
        return reproxy(urls, download_name="hello.txt", as_attachment=True)

    @app.get("/can")
    def can() -> str:
        return "yes" if can_reproxy(flask.request.environ) else "no"

    return app


def test_flask_send_file_with_use_x_sendfile_is_served(files: Path, pool: Any) -> None:
    test = wrapped(flask_app(files), f"XSendFile On\nXSendFilePath {files}\n", pool)
    res = test.get("/send/data.bin")
    assert res.status_int == 200
    assert res.body == DATA
    assert res.headers["Content-Length"] == str(len(DATA))
    assert res.headers["Content-Type"] == "application/octet-stream"
    assert res.headers["Content-Disposition"] == "attachment; filename=data.bin"
    assert "X-Sendfile" not in res.headers
    ranged = test.get("/send/data.bin", headers={"Range": "bytes=5-9"}, status=206)
    assert ranged.body == DATA[5:10]
    head = test.head("/send/data.bin")
    assert head.body == b"" and head.headers["Content-Length"] == str(len(DATA))


@pytest.mark.parametrize(
    ("conf", "name", "status"),
    [
        pytest.param("XSendFile On\nXSendFilePath {files}\n", "../secret.txt", 404, id="outside-root"),
        pytest.param("XSendFile On\n", "data.bin", 404, id="no-root"),
        pytest.param("AllowReproxy On\nXSendFilePath {files}\n", "data.bin", 502, id="sendfile-off"),
    ],
)  # fmt: skip
def test_flask_send_file_refused(
    files: Path, pool: Any, conf: str, name: str, status: int
) -> None:
    test = wrapped(flask_app(files), conf.format(files=files), pool)
    res = test.get(f"/send/{name}", status=status)
    assert b"secret" not in res.body and DATA not in res.body
    assert "X-Sendfile" not in res.headers


def test_flask_reproxy_fails_over_and_keeps_the_download_name(
    files: Path, target: TargetServer, pool: Any
) -> None:
    test = wrapped(flask_app(files, target), "AllowReproxy On\n", pool)
    res = test.get("/reproxy")
    assert res.body == HELLO
    # Guessed from download_name, as send_file does, over the target's.
    assert res.headers["Content-Type"] == "text/plain"
    assert res.headers["Content-Disposition"] == "attachment; filename=hello.txt"
    assert [k for k in res.headers if k.lower().startswith("x-reproxy")] == []
    assert [s.path for s in target.seen[-2:]] == ["/files/none", "/files/hello.txt"]


def test_flask_reproxy_without_the_middleware_is_501(
    files: Path, target: TargetServer, caplog: pytest.LogCaptureFixture
) -> None:
    before = len(target.seen)
    with caplog.at_level(logging.WARNING, "wsgi_reproxy"):
        res = webtest.TestApp(flask_app(files, target)).get("/reproxy", status=501)
    assert res.body == NOT_IMPLEMENTED
    assert "X-Reproxy-Url" not in res.headers
    assert len(target.seen) == before
    assert [r.getMessage() for r in caplog.records] == [
        "reproxy() for /reproxy without wsgi_reproxy.ReproxyMiddleware in front:"
        " answered 501"
    ]


def test_flask_reproxy_as_attachment_needs_a_name() -> None:
    app = flask.Flask("x")
    with app.test_request_context("/"), pytest.raises(TypeError):
        reproxy("http://x/", as_attachment=True)
    with app.test_request_context("/"), pytest.raises(ValueError):
        reproxy(" ")


@pytest.mark.parametrize(
    ("conf", "sent", "answer"),
    [
        pytest.param("AllowReproxy On\n", {}, b"yes", id="on"),
        pytest.param("AllowReproxy Off\n", {}, b"no", id="off"),
        pytest.param(None, {"X-Proxy-Capabilities": "reproxy-file"}, b"no", id="absent-forged"),
    ],
)  # fmt: skip
def test_can_reproxy(
    files: Path, pool: Any, conf: str | None, sent: dict[str, str], answer: bytes
) -> None:
    app = flask_app(files)
    test = webtest.TestApp(app) if conf is None else wrapped(app, conf, pool)
    assert test.get("/can", headers=sent).body == answer


# -- Django ------------------------------------------------------------------------


def _django() -> None:
    # One settings module per process: the example project's (test_examples
    # loads the same); each test overrides what it needs.
    sys.path.insert(0, str(EXAMPLES / "django"))
    try:
        import downloads_site.wsgi  # type: ignore[import-not-found]  # noqa: F401
    finally:
        sys.path.remove(str(EXAMPLES / "django"))


_django()

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.http import HttpRequest, HttpResponseBase  # noqa: E402
from django.test import override_settings  # noqa: E402
from django.urls import path  # noqa: E402
from django_downloadview import StorageDownloadView  # noqa: E402
from django_sendfile import sendfile  # noqa: E402
from django_sendfile.utils import _get_sendfile  # noqa: E402

from wsgi_reproxy.django import ReproxyResponse  # noqa: E402

FILES_SETTING: dict[str, Path] = {}


def sendfile_view(request: HttpRequest, name: str) -> HttpResponseBase:
    response: HttpResponseBase = sendfile(
        request, FILES_SETTING["root"] / name, attachment=True
    )
    return response


def reproxy_view(request: HttpRequest) -> HttpResponseBase:
    return ReproxyResponse(
        request.GET.getlist("url"), filename="report.pdf", as_attachment=True
    )


def downloadview_view(request: HttpRequest, name: str) -> HttpResponseBase:
    from django.core.files.storage import FileSystemStorage

    storage = FileSystemStorage(location=FILES_SETTING["root"], base_url="/media/")
    view = StorageDownloadView.as_view(storage=storage, path=name)
    response: HttpResponseBase = view(request)
    return response


urlpatterns = [
    path("send/<path:name>", sendfile_view),
    path("reproxy", reproxy_view),
    path("dv/<path:name>", downloadview_view),
]


@pytest.fixture
def django_site(files: Path) -> Iterator[Path]:
    FILES_SETTING["root"] = files
    with override_settings(
        ROOT_URLCONF=__name__, SENDFILE_ROOT=str(files), SENDFILE_URL="/protected"
    ):
        yield files
    _get_sendfile.cache_clear()


def django_client(backend: str, conf: str | None, pool: Any) -> webtest.TestApp:
    _get_sendfile.cache_clear()  # django-sendfile2 caches its backend
    with override_settings(SENDFILE_BACKEND=backend):
        _get_sendfile()
    app = WSGIHandler()
    if conf is None:
        return webtest.TestApp(app)
    return wrapped(app, conf, pool)


@pytest.mark.parametrize(
    ("backend", "conf"),
    [
        pytest.param("django_sendfile.backends.xsendfile", "XSendFile On\nXSendFilePath {files}\n", id="xsendfile"),
        pytest.param("django_sendfile.backends.nginx", "ReproxyAccelRedirect /protected {files}\n", id="nginx"),
        pytest.param("wsgi_reproxy.django.sendfile", "AllowReproxy On\nReproxyFileRoot {files}\nPreserveHeaders Content-Disposition\n", id="ours"),
    ],
)  # fmt: skip
def test_django_sendfile2_backend_is_served(
    django_site: Path, pool: Any, backend: str, conf: str
) -> None:
    test = django_client(backend, conf.format(files=django_site), pool)
    res = test.get("/send/data.bin")
    assert res.status_int == 200
    assert res.body == DATA
    assert res.headers["Content-Length"] == str(len(DATA))
    assert res.headers["Content-Type"] == "application/octet-stream"
    assert res.headers["Content-Disposition"] == 'attachment; filename="data.bin"'
    assert not [
        k
        for k in res.headers
        if k.lower().startswith(("x-sendfile", "x-accel", "x-reproxy"))
    ]
    ranged = test.get("/send/data.bin", headers={"Range": "bytes=-100"}, status=206)
    assert ranged.body == DATA[-100:]
    head = test.head("/send/data.bin")
    assert head.body == b"" and head.headers["Content-Length"] == str(len(DATA))


@pytest.mark.parametrize(
    ("backend", "conf", "status"),
    [
        pytest.param("django_sendfile.backends.xsendfile", "AllowReproxy On\nReproxyFileRoot {files}\n", 502, id="xsendfile-off"),
        pytest.param("django_sendfile.backends.nginx", "ReproxyAccelRedirect /elsewhere {files}\n", 502, id="nginx-no-prefix"),
        pytest.param("django_sendfile.backends.nginx", "ReproxyAccelRedirect /protected {files}/sub\n", 404, id="nginx-outside"),
        pytest.param("wsgi_reproxy.django.sendfile", "AllowReproxy Off\nReproxyFileRoot {files}\n", 502, id="ours-off"),
        pytest.param("wsgi_reproxy.django.sendfile", "AllowReproxy On\nReproxyFileRoot {files}/sub\n", 404, id="ours-outside"),
    ],
)  # fmt: skip
def test_django_sendfile2_refused(
    django_site: Path, pool: Any, backend: str, conf: str, status: int
) -> None:
    (django_site / "sub").mkdir()
    test = django_client(backend, conf.format(files=django_site), pool)
    res = test.get("/send/data.bin", status=status)
    assert DATA not in res.body
    assert not [
        k
        for k in res.headers
        if k.lower().startswith(("x-sendfile", "x-accel", "x-reproxy"))
    ]


def test_our_sendfile_backend_without_the_middleware_serves_the_file_itself(
    django_site: Path, pool: Any
) -> None:
    test = django_client("wsgi_reproxy.django.sendfile", None, pool)
    res = test.get("/send/data.bin")
    assert res.body == DATA
    assert "X-Reproxy-File" not in res.headers


def test_django_downloadview_smart_middleware_nginx_is_served(
    django_site: Path, pool: Any
) -> None:
    rules = [{"source_url": "/media/", "destination_url": "/protected/"}]
    with override_settings(
        MIDDLEWARE=["django_downloadview.SmartDownloadMiddleware"],
        DOWNLOADVIEW_BACKEND="django_downloadview.nginx.XAccelRedirectMiddleware",
        DOWNLOADVIEW_RULES=rules,
    ):
        test = wrapped(
            WSGIHandler(), f"ReproxyAccelRedirect /protected/ {django_site}\n", pool
        )
        bare = webtest.TestApp(WSGIHandler())
    # What nginx would have seen: the header and its companion.
    seen = bare.get("/dv/notes.txt")
    assert seen.headers["X-Accel-Redirect"] == "/protected/notes.txt"
    assert "X-Accel-Charset" in seen.headers
    res = test.get("/dv/notes.txt")
    assert res.status_int == 200
    assert res.body == b"some notes\n"
    assert res.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert res.headers["Content-Disposition"] == 'attachment; filename="notes.txt"'
    assert not [k for k in res.headers if k.lower().startswith("x-accel")]
    missing = test.get("/dv/../secret.txt", expect_errors=True)
    assert b"secret" not in missing.body


def test_django_reproxy_response_fails_over_with_the_filename(
    django_site: Path, target: TargetServer, pool: Any
) -> None:
    test = django_client("wsgi_reproxy.django.sendfile", "AllowReproxy On\n", pool)
    urls = [target.url("/status/500"), target.url("/files/hello.txt")]
    res = test.get("/reproxy", {"url": urls})
    assert res.body == HELLO
    assert res.headers["Content-Type"] == "application/pdf"
    assert res.headers["Content-Disposition"] == 'attachment; filename="report.pdf"'
    assert [k for k in res.headers if k.lower().startswith("x-reproxy")] == []


def test_django_reproxy_response_without_the_middleware_is_501(
    django_site: Path, target: TargetServer, pool: Any
) -> None:
    before = len(target.seen)
    test = django_client("wsgi_reproxy.django.sendfile", None, pool)
    res = test.get("/reproxy", {"url": target.url("/files/hello.txt")}, status=501)
    assert res.body == NOT_IMPLEMENTED
    assert "X-Reproxy-Url" not in res.headers
    assert len(target.seen) == before
