"""The fetching layer on its own: pool lifecycle, error boundary, the body."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import urllib3
from conftest import HELLO, RawServer, TargetServer, make_bytes
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    ProtocolError,
    ReadTimeoutError,
)

from wsgi_reproxy import Settings, UpstreamError
from wsgi_reproxy.fetch import fetcher as fetcher_module
from wsgi_reproxy.fetch import pool as _pool
from wsgi_reproxy.fetch.fetcher import (
    Fetcher,
    TruncatedBodyError,
    default_pool,
    expected_size_error,
    upstream_errors,
)

SETTINGS = Settings(allow_reproxy=True, connect_timeout=1, read_timeout=0.3)


# -- the process-wide pool ---------------------------------------------------------


def test_default_pool_created_once_and_bounded() -> None:
    pool = default_pool()
    assert default_pool() is pool
    assert pool.connection_pool_kw["maxsize"] == _pool.DEFAULT_MAXSIZE
    # Blocking: the per-host bound holds (issue 12); a request past it waits.
    assert pool.connection_pool_kw["block"] is True


def test_default_pool_recreated_when_pid_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = default_pool()
    monkeypatch.setattr(_pool, "_pool_pid", -1)  # as seen by a forked child
    fresh = default_pool()
    assert fresh is not pool
    assert default_pool() is fresh


def test_forked_child_gets_its_own_pool() -> None:
    parent = default_pool()
    read, write = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about fork() in a process with threads; the
        # child only calls default_pool() and exits.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        ok = default_pool() is not parent and default_pool() is default_pool()
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 1) == b"1"
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert default_pool() is parent


def test_fetcher_without_pool_uses_default_pool() -> None:
    assert Fetcher().pool is default_pool()


# -- the error boundary ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "reason", "timeout"),
    [
        pytest.param("refused", "cannot connect", False, id="refused-not-timeout"),
        pytest.param("stall", "read timeout", True, id="stall-is-timeout"),
        pytest.param("404", "status 404", False, id="404"),
        pytest.param("500", "status 500", False, id="500"),
        pytest.param("302", "redirect", False, id="302-without-max-redirects"),
    ],
)
def test_open_raises_upstream_error(
    kind: str,
    reason: str,
    timeout: bool,
    target: TargetServer,
    stalling_target: RawServer,
    refused_url: str,
    pool: Any,
) -> None:
    url = {
        "refused": refused_url,
        "stall": stalling_target.url("/"),
        "404": target.url("/status/404"),
        "500": target.url("/status/500"),
        "302": target.url("/redirect?to=/files/hello.txt"),
    }[kind]
    with pytest.raises(UpstreamError) as info:
        Fetcher(pool).open(url, "GET", {}, SETTINGS)
    assert info.value.url == url
    assert reason in info.value.reason
    assert info.value.timeout is timeout
    assert info.value.__cause__ is not None or kind in ("404", "500", "302")


def test_relative_redirect_followed_and_reported_under_first_url(
    target: TargetServer, pool: Any
) -> None:
    settings = Settings(allow_reproxy=True, max_redirects=1)
    url = target.url("/redirect?to=/files/hello.txt")
    upstream = Fetcher(pool).open(url, "GET", {}, settings)
    try:
        assert upstream.url == target.url("/files/hello.txt")
        assert b"".join(upstream.body) == HELLO
    finally:
        upstream.body.close()
    chain = target.url("/redirect?to=" + target.url("/status/404"))
    with pytest.raises(UpstreamError) as info:
        Fetcher(pool).open(chain, "GET", {}, settings)
    assert info.value.url == chain
    assert "status 404" in info.value.reason


def test_open_first_collects_failures_in_order(
    target: TargetServer, refused_url: str, pool: Any
) -> None:
    urls = [refused_url, target.url("/status/500"), target.url("/files/hello.txt")]
    upstream, errors = Fetcher(pool).open_first(urls, "GET", {}, SETTINGS)
    assert upstream is not None
    upstream.body.close()
    assert [e.url for e in errors] == urls[:2]


# -- expected size -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "expected", "problem"),
    [
        pytest.param(200, {"Content-Length": "10"}, 10, None, id="200-match"),
        pytest.param(200, {"Content-Length": "11"}, 10, "differs", id="200-mismatch"),
        pytest.param(200, {}, 10, "no Content-Length", id="200-no-length"),
        pytest.param(206, {"Content-Range": "bytes 0-1/10"}, 10, None, id="206-total"),
        pytest.param(
            206, {"Content-Range": "bytes 0-1/10"}, 2, "differs", id="206-part"
        ),
        pytest.param(
            206, {"Content-Range": "bytes 0-1/*"}, 2, "no total", id="206-star"
        ),
        pytest.param(416, {"Content-Range": "bytes */10"}, 10, None, id="416-match"),
        pytest.param(416, {"Content-Range": "bytes */11"}, 10, "differs", id="416-bad"),
        pytest.param(416, {}, 10, None, id="416-no-range"),
        pytest.param(304, {}, 10, None, id="304-nothing-to-compare"),
    ],
)
def test_expected_size_error(
    status: int, headers: dict[str, str], expected: int, problem: str | None
) -> None:
    result = expected_size_error(status, urllib3.HTTPHeaderDict(headers), expected)
    if problem is None:
        assert result is None
    else:
        assert result is not None and problem in result


# -- the body --------------------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1024, 64 * 1024, 1 << 20])
def test_body_reads_at_most_chunk_size_pieces(
    chunk: int, target: TargetServer, pool: Any
) -> None:
    # How the reads grow to chunk_size: tests/test_body_sizing.py.
    upstream = Fetcher(pool, chunk_size=chunk).open(
        target.url("/files/1m.bin"), "GET", {}, SETTINGS
    )
    try:
        sizes = [len(piece) for piece in upstream.body]
    finally:
        upstream.body.close()
    assert sum(sizes) == 1 << 20
    # The first read is in before the response starts (SPEC §4.10), then
    # reads sized to the client (fetch.body), never above chunk_size.
    assert sizes[0] == min(chunk, 16 * 1024)
    assert max(sizes) <= chunk
    assert upstream.body.complete


def test_body_close_is_idempotent_and_reports_once(
    target: TargetServer, pool: Any
) -> None:
    reports: list[tuple[int, bool]] = []
    upstream = Fetcher(pool).open(target.url("/files/hello.txt"), "GET", {}, SETTINGS)
    upstream.body.on_close = lambda sent, complete: reports.append((sent, complete))
    assert b"".join(upstream.body) == HELLO
    upstream.body.close()
    upstream.body.close()
    assert reports == [(len(HELLO), True)]
    assert list(upstream.body) == []


def test_partial_body_connection_discarded_full_body_reused(
    target: TargetServer, pool: Any
) -> None:
    url = target.add_file("4m.bin", make_bytes(4 << 20, "4m"))
    fetcher = Fetcher(pool, chunk_size=4096)
    partial = fetcher.open(url, "GET", {}, SETTINGS)
    next(partial.body)
    partial.body.close()
    full = fetcher.open(target.url("/files/hello.txt"), "GET", {}, SETTINGS)
    b"".join(full.body)
    full.body.close()
    again = fetcher.open(target.url("/files/hello.txt"), "GET", {}, SETTINGS)
    again.body.close()
    ports = [seen.client_port for seen in target.seen[-3:]]
    assert ports[0] != ports[1], "a half-read connection must not be reused"
    assert ports[1] == ports[2], "a fully read connection must be reused"


def test_truncated_small_body_is_a_failed_try(
    truncating_target: RawServer, pool: Any
) -> None:
    # A body that fits one read is read whole before the response starts:
    # a target that breaks off inside it has not reached the client yet.
    with pytest.raises(UpstreamError) as info:
        Fetcher(pool, chunk_size=100).open(
            truncating_target.url("/"), "GET", {}, SETTINGS
        )
    assert "500 body bytes missing" in info.value.reason
    assert not isinstance(info.value, TruncatedBodyError)


def _half_then(action: str) -> Callable[[Any, bytes, Any], None]:
    size = 4 * fetcher_module.SMALL_BODY

    def handler(conn: Any, head: bytes, stop: Any) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        conn.sendall(b"t" * (size // 2))
        if action == "stall":
            stop.wait(5)

    return handler


@pytest.mark.parametrize(
    ("action", "message"),
    [
        pytest.param("close", "body bytes missing", id="close"),
        pytest.param("stall", "read timeout", id="stall"),
    ],
)
def test_large_body_breaking_off_raises_after_the_bytes_received(
    pool: Any, action: str, message: str
) -> None:
    size = 4 * fetcher_module.SMALL_BODY
    server = RawServer(_half_then(action)).start()
    settings = Settings(allow_reproxy=True, read_timeout=0.3)
    try:
        upstream = Fetcher(pool, chunk_size=4096).open(
            server.url(), "GET", {}, settings
        )
        got = b""
        try:
            with pytest.raises(TruncatedBodyError, match=message) as info:
                for piece in upstream.body:
                    got += piece
        finally:
            upstream.body.close()
        assert got == b"t" * (size // 2)
        assert isinstance(info.value, UpstreamError)
        assert not upstream.body.complete
    finally:
        server.stop()


def test_empty_pool_wait_is_bounded(target: TargetServer) -> None:
    tiny = urllib3.PoolManager(maxsize=1, block=True)
    settings = Settings(allow_reproxy=True, connect_timeout=0.2)
    try:
        held = Fetcher(tiny).open(target.url("/files/1m.bin"), "GET", {}, settings)
        try:
            with pytest.raises(UpstreamError) as info:
                Fetcher(tiny).open(target.url("/files/hello.txt"), "GET", {}, settings)
            assert info.value.timeout
            assert "pool" in info.value.reason
        finally:
            held.body.close()
    finally:
        tiny.clear()


@pytest.mark.parametrize(
    ("exc", "reason", "timeout"),
    [
        pytest.param(
            ConnectTimeoutError(None, "timed out"),
            "connect timeout",
            True,
            id="connect",
        ),
        pytest.param(
            MaxRetryError(None, "/", ReadTimeoutError(None, "/", "slow")),  # type: ignore[arg-type]
            "read timeout",
            True,
            id="max-retry-unwrapped",
        ),
        pytest.param(
            ProtocolError("Connection aborted.", OSError(104, "reset")),
            "connection broken: Connection aborted.",
            False,
            id="protocol",
        ),
        pytest.param(
            TimeoutError("timed out"), "read timeout", True, id="socket-timeout"
        ),
        pytest.param(OSError(22, "weird"), "OSError", False, id="other-oserror"),
    ],
)
def test_urllib3_exceptions_translated_at_one_boundary(
    exc: Exception, reason: str, timeout: bool
) -> None:
    with pytest.raises(UpstreamError) as info, upstream_errors("http://t/"):
        raise exc
    assert info.value.url == "http://t/"
    assert reason in info.value.reason
    assert info.value.timeout is timeout
    assert info.value.__cause__ is exc


# -- the request target ---------------------------------------------------------


def _fetch_body(fetcher: Fetcher, url: str) -> bytes:
    upstream = fetcher.open(url, "GET", {}, SETTINGS)
    try:
        return b"".join(upstream.body)
    finally:
        upstream.body.close()


def test_request_target_keeps_the_query_and_drops_the_fragment(
    target: TargetServer, pool: Any
) -> None:
    assert (
        _fetch_body(Fetcher(pool), target.url("/files/hello.txt?a=1&b=2#frag")) == HELLO
    )
    assert target.seen[-1].path == "/files/hello.txt?a=1&b=2"


def test_origin_pools_forget_and_close_what_their_lru_evicts() -> None:
    from wsgi_reproxy.fetch.pool import OriginPools

    pools = OriginPools(num_pools=1, maxsize=2, block=True)
    a = pools.connection_from_host("127.0.0.1", port=1, scheme="http")
    assert pools.connection_from_host("127.0.0.1", port=1, scheme="http") is a
    b = pools.connection_from_host("127.0.0.1", port=2, scheme="http")
    assert a.pool is None  # closed when evicted, so its bound cannot double
    again = pools.connection_from_host("127.0.0.1", port=1, scheme="http")
    assert again is not a and again.pool is not None
    assert b.pool is None  # evicted in turn
    pools.clear()
    assert again.pool is None
