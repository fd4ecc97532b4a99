"""What an operator sees, in-process (issue 15): WARNINGs reach wsgi.errors
until logging is configured, every reproxy line carries structured fields,
and the metrics seam gets one call per event."""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
import webtest
from conftest import HELLO, TargetServer

from wsgi_reproxy import ReproxyMiddleware, parse_config
from wsgi_reproxy.exceptions import redact_query
from wsgi_reproxy.fetch.metrics import NO_METRICS, target_host
from wsgi_reproxy.logs import (
    ErrorsFallbackHandler,
    install_fallback,
    logging_configured,
    request_id,
)
from wsgi_reproxy.responders.cache import ReproxyCache

CONFIG = parse_config(
    "AllowReproxy On\nReproxyAllowTargets http://127.0.0.1:*/\n", "inline.conf"
)


def reproxy_app(*values: str, cache_for: str | None = None) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        headers = [("X-Reproxy-Url", v) for v in values]
        if cache_for is not None:
            headers.append(("X-Reproxy-Cache-For", cache_for))
        start_response("200 OK", headers)
        return [b"app body"]

    return app


class Recorder:
    """A Metrics that writes down every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any) -> None:
            self.calls.append((name, *args))

        return record

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


@contextlib.contextmanager
def unconfigured() -> Iterator[None]:
    """Logging as an app that never configured it has it: no root handler
    (pytest's capture handlers, added for each test phase, removed), only
    the package's own fallback; restored afterwards."""
    root = logging.getLogger()
    ours = logging.getLogger("wsgi_reproxy")
    saved = root.handlers, ours.handlers
    root.handlers = []
    ours.handlers = [h for h in ours.handlers if isinstance(h, ErrorsFallbackHandler)]
    try:
        yield
    finally:
        root.handlers, ours.handlers = saved


def test_package_logger_has_the_fallback_instead_of_a_null_handler() -> None:
    handlers = logging.getLogger("wsgi_reproxy").handlers
    assert [type(h) for h in handlers] == [ErrorsFallbackHandler]
    assert install_fallback() is handlers[0]  # idempotent


def test_unconfigured_failover_and_502_go_to_wsgi_errors(
    refused_url: str, pool: urllib3.PoolManager
) -> None:
    app = ReproxyMiddleware(reproxy_app(refused_url), CONFIG, pool=pool)
    with unconfigured():
        # webtest gives the app its own wsgi.errors and shows what it got.
        response = webtest.TestApp(app).get("/f", status=502, expect_errors=True)
    assert response.status_int == 502
    lines = response.errors.splitlines()
    assert len(lines) == 2, lines
    assert "[WARNING] wsgi_reproxy.middleware: reproxy target failed after" in lines[0]
    assert f"{refused_url}: cannot connect" in lines[0]
    assert lines[1].endswith(
        f"reproxy of /f failed (502): {refused_url}: cannot connect: Connection refused"
    )


def test_configured_logging_gets_each_line_once_and_wsgi_errors_none(
    refused_url: str, pool: urllib3.PoolManager
) -> None:
    seen = io.StringIO()
    app = ReproxyMiddleware(reproxy_app(refused_url), CONFIG, pool=pool)
    with unconfigured():
        logging.getLogger().addHandler(logging.StreamHandler(seen))  # basicConfig
        # webtest raises AppError when anything reached wsgi.errors.
        webtest.TestApp(app).get("/f", status=502)
    assert seen.getvalue().count("failed (502)") == 1


def test_null_handler_added_by_the_app_silences_the_fallback(
    refused_url: str, pool: urllib3.PoolManager
) -> None:
    app = ReproxyMiddleware(reproxy_app(refused_url), CONFIG, pool=pool)
    with unconfigured():
        logging.getLogger("wsgi_reproxy").addHandler(logging.NullHandler())
        webtest.TestApp(app).get("/f", status=502)  # AppError if wsgi.errors got any


def test_info_lines_never_reach_wsgi_errors(
    target: TargetServer, pool: urllib3.PoolManager
) -> None:
    logger = logging.getLogger("wsgi_reproxy")
    app = ReproxyMiddleware(
        reproxy_app(target.url("/files/hello.txt")), CONFIG, pool=pool
    )
    errors = io.StringIO()
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        with unconfigured():
            body = webtest.TestApp(app).get("/f", extra_environ={"wsgi.errors": errors})
    finally:
        logger.setLevel(old)
    assert body.body == HELLO
    assert errors.getvalue() == ""


def test_outside_a_request_the_fallback_writes_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def log() -> None:  # a fresh thread: no request's stream in its context
        logging.getLogger("wsgi_reproxy.x").error("lost %s", "nothing")

    with unconfigured():
        thread = threading.Thread(target=log)
        thread.start()
        thread.join(5)
    assert "[ERROR] wsgi_reproxy.x: lost nothing" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("handlers_on", "propagate", "configured"),
    [
        pytest.param("", True, False, id="nothing"),
        pytest.param("root", True, True, id="root-handler"),
        pytest.param("package", True, True, id="package-handler"),
        pytest.param("root", False, False, id="root-handler-not-reached"),
    ],
)
def test_what_configured_means(
    handlers_on: str, propagate: bool, configured: bool
) -> None:
    child = logging.getLogger("wsgi_reproxy.some.module")
    package = logging.getLogger("wsgi_reproxy")
    where = {"root": logging.getLogger(), "package": package}
    with unconfigured():
        if handlers_on:
            where[handlers_on].addHandler(logging.StreamHandler(io.StringIO()))
        package.propagate = propagate
        try:
            assert logging_configured(child) is configured
        finally:
            package.propagate = True


# -- structured fields ---------------------------------------------------------


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def collected() -> Iterator[Collect]:
    handler = Collect()
    logger = logging.getLogger("wsgi_reproxy")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


FIELDS = ("reproxy_url", "status", "bytes", "tries", "outcome", "request_id")


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in FIELDS}


def test_failover_line_carries_fields_with_the_query_redacted(
    collected: Collect,
    refused_url: str,
    target: TargetServer,
    pool: urllib3.PoolManager,
) -> None:
    good = target.url("/files/hello.txt") + "?X-Amz-Signature=secret"
    app = ReproxyMiddleware(reproxy_app(f"{refused_url} {good}"), CONFIG, pool=pool)
    webtest.TestApp(app).get("/f", headers={"X-Request-ID": "req-42"})
    (line,) = [r for r in collected.records if r.getMessage().startswith("reproxied")]
    assert fields_of(line) == {
        "reproxy_url": target.url("/files/hello.txt") + "?…",
        "status": 200,
        "bytes": len(HELLO),
        "tries": 2,
        "outcome": "failover",
        "request_id": "req-42",
    }
    assert 0 <= line.ttfb <= line.duration
    assert "secret" not in line.getMessage()


def test_502_line_carries_fields(
    collected: Collect, refused_url: str, pool: urllib3.PoolManager
) -> None:
    app = ReproxyMiddleware(reproxy_app(refused_url + "?t=1"), CONFIG, pool=pool)
    webtest.TestApp(app).get("/f", status=502)
    (line,) = [r for r in collected.records if "failed (502)" in r.getMessage()]
    assert fields_of(line) == {
        "reproxy_url": refused_url + "?…",
        "status": 502,
        "bytes": 0,
        "tries": 1,
        "outcome": "failed",
        "request_id": None,
    }
    assert line.ttfb is None
    assert "t=1" not in line.getMessage()


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param({"HTTP_X_REQUEST_ID": "abc"}, "abc", id="x-request-id"),
        pytest.param({"mod_wsgi.request_id": "m1"}, "m1", id="mod_wsgi"),
        pytest.param({"UNIQUE_ID": "u1"}, "u1", id="mod_unique_id"),
        pytest.param(
            {"HTTP_X_REQUEST_ID": "a", "UNIQUE_ID": "u"}, "a", id="header-first"
        ),
        pytest.param({"HTTP_X_REQUEST_ID": "x" * 300}, "x" * 200, id="cut"),
        pytest.param({}, None, id="none"),
    ],
)
def test_request_id_sources(environ: dict[str, str], expected: str | None) -> None:
    assert request_id(environ) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("http://h/p?sig=1", "http://h/p?…", id="query"),
        pytest.param("http://h/p?a#f", "http://h/p?…", id="query-and-fragment"),
        pytest.param("http://h/p#f", "http://h/p#f", id="fragment-kept"),
        pytest.param("http://h/p", "http://h/p", id="plain"),
    ],
)
def test_redact_query(url: str, expected: str) -> None:
    assert redact_query(url) == expected


@pytest.mark.parametrize(
    ("url", "host"),
    [
        pytest.param("http://10.0.0.5:7500/dev/1.fid", "10.0.0.5:7500", id="port"),
        pytest.param("https://s3.example/b?x=1", "s3.example", id="query"),
        pytest.param("http://[::1]:80#f", "[::1]:80", id="ipv6-fragment"),
        pytest.param("nonsense", "-", id="no-authority"),
    ],
)
def test_target_host(url: str, host: str) -> None:
    assert target_host(url) == host


# -- the metrics seam ----------------------------------------------------------


def test_metrics_calls_for_a_failover(
    refused_url: str, target: TargetServer, pool: urllib3.PoolManager
) -> None:
    metrics = Recorder()
    good = target.url("/files/hello.txt")
    app = ReproxyMiddleware(
        reproxy_app(f"{refused_url} {good}"), CONFIG, pool=pool, metrics=metrics
    )
    webtest.TestApp(app).get("/f")
    assert metrics.names() == [
        "cache_miss",
        "try_failed",
        "try_succeeded",
        "transfer_started",
        "transfer_ended",
        "reproxy_finished",
    ]
    assert metrics.calls[1][1:] == (
        target_host(refused_url),
        "cannot connect: Connection refused",
    )
    assert metrics.calls[2][1:] == (target_host(good),)
    outcome, status, sent, ttfb, duration = metrics.calls[5][1:]
    assert (outcome, status, sent) == ("failover", 200, len(HELLO))
    assert 0 <= ttfb <= duration


def test_metrics_calls_for_an_allowlist_refusal(pool: urllib3.PoolManager) -> None:
    metrics = Recorder()
    app = ReproxyMiddleware(
        reproxy_app("http://10.9.9.9/x"), CONFIG, pool=pool, metrics=metrics
    )
    webtest.TestApp(app).get("/f", status=502)
    assert metrics.names() == ["cache_miss", "allowlist_refused", "reproxy_finished"]
    assert metrics.calls[1][1:] == ("10.9.9.9",)
    assert metrics.calls[2][1:3] == ("failed", 502)


def test_metrics_calls_for_a_cache_hit_and_an_eviction(
    target: TargetServer, pool: urllib3.PoolManager
) -> None:
    metrics = Recorder()
    cache = ReproxyCache(max_entries=1)
    app = ReproxyMiddleware(
        reproxy_app(target.url("/files/hello.txt"), cache_for="60"),
        CONFIG,
        pool=pool,
        metrics=metrics,
        cache=cache,
    )
    assert cache.metrics is metrics  # a caller's cache built without metrics
    client = webtest.TestApp(app)
    client.get("/a")
    client.get("/a")
    client.get("/b")  # evicts /a
    names = metrics.names()
    assert names.count("cache_hit") == 1
    assert names.count("cache_miss") == 2
    assert names.count("cache_eviction") == 1


def test_client_gone_and_aborted_outcomes(
    target: TargetServer, truncating_target: Any, pool: urllib3.PoolManager
) -> None:
    metrics = Recorder()
    app = ReproxyMiddleware(
        reproxy_app(target.url("/files/1m.bin")),
        CONFIG,
        pool=pool,
        metrics=metrics,
        chunk_size=1024,
    )
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.errors": io.StringIO()}
    body = app(dict(environ), lambda status, headers, exc_info=None: None)
    next(iter(body))
    body.close()  # type: ignore[attr-defined]
    body.close()  # type: ignore[attr-defined]  # idempotent: one report
    assert [c for c in metrics.calls if c[0] == "reproxy_finished"][0][1:4] == (
        "client-gone",
        200,
        1024,
    )

    metrics.calls.clear()
    app = ReproxyMiddleware(
        # Past the read-whole size: a small body breaking off fails over instead.
        reproxy_app(truncating_target.url("/big")),
        CONFIG,
        pool=pool,
        metrics=metrics,
    )
    body = app(dict(environ), lambda status, headers, exc_info=None: None)
    with pytest.raises(Exception, match="broken|broke|Truncated|Incomplete"):
        for _ in body:
            pass
    body.close()  # type: ignore[attr-defined]
    finished = [c for c in metrics.calls if c[0] == "reproxy_finished"]
    assert finished[0][1:4] == ("aborted", 200, 500_000)


def test_no_metrics_is_the_default(pool: urllib3.PoolManager) -> None:
    app = ReproxyMiddleware(reproxy_app(), CONFIG, pool=pool)
    assert app.metrics is NO_METRICS
    assert app.fetcher.metrics is NO_METRICS
