"""X-Reproxy-Cache-For: header parsing, keys, the bounded LRU, expiry, threads."""

from __future__ import annotations

import logging
import sys
import threading
import warnings
from collections.abc import Iterable
from typing import Any

import pytest

from wsgi_reproxy.config.settings import Settings
from wsgi_reproxy.responders.cache import CacheEntry, ReproxyCache
from wsgi_reproxy.responders.cachefor import CacheFor, cache_key, parse_cache_for

with warnings.catch_warnings():
    # webob (under webtest) imports the cgi module, deprecated since 3.11.
    warnings.simplefilter("ignore", DeprecationWarning)
    import webtest

ON = Settings(allow_reproxy=True)
OFF = Settings(allow_reproxy=False)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def environ(
    method: str = "GET",
    path: str = "/obj",
    query: str = "",
    host: str | None = "example.org",
    **extra: str,
) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "server.local",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
    }
    if host is not None:
        env["HTTP_HOST"] = host
    env.update(extra)
    return env


# -- parse_cache_for ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(
            "300; Content-Type Last-Modified",
            CacheFor(300.0, ("Content-Type", "Last-Modified")),
            id="perlbal-format",
        ),
        pytest.param("60", CacheFor(60.0, ()), id="seconds-only"),
        pytest.param("60;", CacheFor(60.0, ()), id="empty-header-list"),
        pytest.param(
            " 1.5 ;  ETag,Expires ",
            CacheFor(1.5, ("ETag", "Expires")),
            id="commas-and-blanks",
        ),
        pytest.param("10;\tA \t B", CacheFor(10.0, ("A", "B")), id="tabs"),
        pytest.param("0", None, id="zero-never-reuses-like-perlbal"),
        pytest.param("-5", None, id="negative"),
        pytest.param("abc; ETag", None, id="not-a-number"),
        pytest.param("", None, id="empty"),
        pytest.param("; ETag", None, id="no-seconds"),
        pytest.param("inf", None, id="infinite"),
        pytest.param("nan", None, id="nan"),
        pytest.param("1e3", None, id="exponent"),
        pytest.param("\u0663", None, id="non-ascii-digit"),
        pytest.param("10\n", CacheFor(10.0, ()), id="trailing-newline-stripped"),
        pytest.param("10; A\n", CacheFor(10.0, ("A",)), id="names-stripped"),
        pytest.param("10; Bad:Name", None, id="header-name-not-a-token"),
        pytest.param("10; Caf\u00e9", None, id="non-ascii-header-name"),
    ],
)
def test_parse_cache_for(value: str, expected: CacheFor | None) -> None:
    assert parse_cache_for(value) == expected


# -- cache_key ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param(
            environ(host="Example.ORG"), ("example.org", "/obj"), id="host-lower-cased"
        ),
        pytest.param(
            environ(host="a.b:8080"), ("a.b:8080", "/obj"), id="host-port-kept"
        ),
        pytest.param(
            environ(query="a=1&b=2"),
            ("example.org", "/obj?a=1&b=2"),
            id="query-included",
        ),
        pytest.param(
            environ(query=""),
            ("example.org", "/obj"),
            id="empty-query-no-question-mark",
        ),
        pytest.param(
            environ(path="/x", SCRIPT_NAME="/app"),
            ("example.org", "/app/x"),
            id="script-name-prefix",
        ),
        pytest.param(
            environ(path="/CaSe"), ("example.org", "/CaSe"), id="path-case-kept"
        ),
        pytest.param(
            environ(host=None), ("server.local", "/obj"), id="server-name-fallback"
        ),
        pytest.param(
            environ(host=None, SERVER_PORT="8080"),
            ("server.local:8080", "/obj"),
            id="server-name-with-port",
        ),
        pytest.param(
            environ(host=None, SERVER_PORT="443", **{"wsgi.url_scheme": "https"}),
            ("server.local", "/obj"),
            id="https-default-port-omitted",
        ),
    ],
)
def test_cache_key(env: dict[str, Any], expected: tuple[str, str]) -> None:
    assert cache_key(env) == expected


def test_cache_key_differs_by_host() -> None:
    assert cache_key(environ(host="a")) != cache_key(environ(host="b"))


# -- ReproxyCache: get/put, LRU, bytes, expiry --------------------------------


def test_put_then_get_returns_urls_and_headers_as_sent() -> None:
    cache = ReproxyCache()
    headers = [("content-TYPE", "image/jpeg"), ("X-Tag", " a  b ")]
    cache.put(("h", "/a"), ["http://s1/a", "http://s2/a"], headers, 10)
    entry = cache.get(("h", "/a"))
    assert entry is not None
    assert entry.urls == ("http://s1/a", "http://s2/a")
    assert entry.headers == (("content-TYPE", "image/jpeg"), ("X-Tag", " a  b "))
    assert cache.stats.hits == 1


def test_get_unknown_key_counts_a_miss() -> None:
    cache = ReproxyCache()
    assert cache.get(("h", "/nope")) is None
    assert (cache.stats.hits, cache.stats.misses) == (0, 1)


def test_least_recently_used_entry_evicted_at_entry_bound() -> None:
    cache = ReproxyCache(max_entries=2)
    cache.put(("h", "/a"), ["http://s/a"], [], 10)
    cache.put(("h", "/b"), ["http://s/b"], [], 10)
    assert cache.get(("h", "/a")) is not None  # /a is now the most recent
    cache.put(("h", "/c"), ["http://s/c"], [], 10)
    assert cache.get(("h", "/b")) is None
    assert cache.get(("h", "/a")) is not None
    assert cache.get(("h", "/c")) is not None
    stats = cache.stats
    assert (stats.entries, stats.evictions) == (2, 1)


def test_least_recently_used_entries_evicted_at_byte_bound() -> None:
    # Each entry: key 1 + 2, URL 10, header 1 + 6 = 20 bytes.
    cache = ReproxyCache(max_bytes=45)
    for name in "abc":
        cache.put(("h", f"/{name}"), [f"http://s/{name}"], [("X", "123456")], 10)
    stats = cache.stats
    assert (stats.entries, stats.bytes, stats.evictions) == (2, 40, 1)
    assert cache.get(("h", "/a")) is None
    assert cache.get(("h", "/c")) is not None


def test_one_large_entry_evicts_several_small_ones() -> None:
    cache = ReproxyCache(max_bytes=100)
    for name in "abcd":
        cache.put(("h", f"/{name}"), [f"http://s/{name}"], [], 10)  # 13 bytes each
    cache.put(("h", "/big"), ["http://s/" + "x" * 70], [], 10)  # 84 bytes
    stats = cache.stats
    assert (stats.entries, stats.bytes, stats.evictions) == (2, 97, 3)
    assert cache.get(("h", "/d")) is not None


def test_entry_larger_than_byte_bound_not_stored() -> None:
    cache = ReproxyCache(max_bytes=20)
    cache.put(("h", "/a"), ["http://s/a"], [], 10)
    assert cache.put(("h", "/big"), ["http://s/" + "x" * 50], [], 10) is None
    assert cache.get(("h", "/a")) is not None  # nothing evicted for it
    assert cache.stats.evictions == 0


@pytest.mark.parametrize(
    ("urls", "seconds"),
    [
        pytest.param([], 10, id="no-url"),
        pytest.param(["http://s/a"], 0, id="zero-seconds"),
        pytest.param(["http://s/a"], -1, id="negative-seconds"),
    ],
)
def test_put_stores_nothing_without_urls_or_time(
    urls: list[str], seconds: float
) -> None:
    cache = ReproxyCache()
    assert cache.put(("h", "/a"), urls, [], seconds) is None
    assert cache.stats.entries == 0


def test_replacing_an_entry_does_not_count_its_bytes_twice() -> None:
    cache = ReproxyCache()
    cache.put(("h", "/a"), ["http://s/a"], [], 10)
    cache.put(("h", "/a"), ["http://s/aa"], [], 10)
    stats = cache.stats
    assert (stats.entries, stats.bytes, stats.evictions) == (1, 14, 0)
    entry = cache.get(("h", "/a"))
    assert entry is not None and entry.urls == ("http://s/aa",)


def test_entry_expires_after_its_seconds() -> None:
    clock = FakeClock()
    cache = ReproxyCache(clock=clock)
    cache.put(("h", "/a"), ["http://s/a"], [], 10)
    clock.now += 9.9
    assert cache.get(("h", "/a")) is not None
    clock.now += 0.1
    assert cache.get(("h", "/a")) is None
    stats = cache.stats
    assert (stats.hits, stats.misses, stats.expired, stats.entries, stats.bytes) == (
        1,
        1,
        1,
        0,
        0,
    )


def test_clear_forgets_entries_and_keeps_counters() -> None:
    cache = ReproxyCache()
    cache.put(("h", "/a"), ["http://s/a"], [], 10)
    cache.get(("h", "/a"))
    cache.clear()
    assert cache.get(("h", "/a")) is None
    stats = cache.stats
    assert (stats.hits, stats.misses, stats.entries, stats.bytes) == (1, 1, 0, 0)


@pytest.mark.parametrize(
    ("kwargs"),
    [
        pytest.param({"max_entries": 0}, id="no-entries"),
        pytest.param({"max_bytes": 0}, id="no-bytes"),
    ],
)
def test_bounds_must_be_positive(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        ReproxyCache(**kwargs)


def test_counters_consistent_under_many_threads() -> None:
    cache = ReproxyCache(max_entries=20)
    threads_n, rounds = 8, 20000
    barrier = threading.Barrier(threads_n)
    gets = [0] * threads_n

    def work(n: int) -> None:
        barrier.wait()
        for i in range(rounds):
            key = ("h", f"/{(n * 7 + i) % 50:02d}")  # every key the same size
            if i % 3 == 0:
                cache.put(key, ["http://s/x"], [("A", "b")], 60)
            else:
                cache.get(key)
                gets[n] += 1

    threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_n)]
    # Switch threads as often as possible so a missing lock shows.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    stats = cache.stats
    assert stats.hits + stats.misses == sum(gets)
    assert stats.entries <= 20
    assert stats.bytes == stats.entries * (1 + 3 + 10 + 2)
    puts = threads_n * len(range(0, rounds, 3))
    # every put either replaced a live entry, or added one that is still
    # there or was evicted since
    assert stats.evictions <= puts
    assert stats.hits > 0 and stats.evictions > 0


# -- lookup / remember: what the middleware calls ------------------------------

APP_HEADERS = [
    ("Content-Type", "image/jpeg"),
    ("X-Reproxy-Url", "http://s1/a http://s2/a"),
    ("X-Reproxy-Url", "http://s3/a"),
    ("Set-Cookie", "session=secret"),
    ("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT"),
    ("X-Reproxy-Cache-For", "30; content-type Last-Modified"),
]


def test_remember_keeps_urls_and_only_the_named_headers() -> None:
    cache = ReproxyCache()
    entry = cache.remember(environ(), ON, APP_HEADERS)
    assert entry is not None
    assert entry.urls == ("http://s1/a", "http://s2/a", "http://s3/a")
    assert entry.headers == (
        ("Content-Type", "image/jpeg"),
        ("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT"),
    )
    assert cache.lookup(environ(), ON) == entry


def test_remember_keeps_every_value_of_a_repeated_header() -> None:
    cache = ReproxyCache()
    headers = [
        ("X-Reproxy-Url", "http://s/a"),
        ("Link", "</a>; rel=a"),
        ("Link", "</b>; rel=b"),
        ("X-Reproxy-Cache-For", "30; Link"),
    ]
    entry = cache.remember(environ(), ON, headers)
    assert entry is not None
    assert entry.headers == (("Link", "</a>; rel=a"), ("Link", "</b>; rel=b"))


def test_remember_always_keeps_expected_size_and_never_control_headers() -> None:
    cache = ReproxyCache()
    headers = [
        ("X-Reproxy-Url", "http://s/a"),
        ("X-Reproxy-Expected-Size", "1024"),
        ("X-Reproxy-Cache-For", "30; X-Reproxy-Url X-Reproxy-Cache-For"),
    ]
    entry = cache.remember(environ(), ON, headers)
    assert entry is not None
    assert entry.headers == (("X-Reproxy-Expected-Size", "1024"),)
    assert entry.app_headers() == [
        ("X-Reproxy-Expected-Size", "1024"),
        ("X-Reproxy-Url", "http://s/a"),
    ]


def test_remember_uses_the_validated_url_list_when_given() -> None:
    cache = ReproxyCache()
    entry = cache.remember(environ(), ON, APP_HEADERS, urls=["http://s2/a"])
    assert entry is not None and entry.urls == ("http://s2/a",)


@pytest.mark.parametrize(
    ("env", "settings", "headers"),
    [
        pytest.param(environ(), ON, APP_HEADERS[:-1], id="not-asked"),
        pytest.param(environ(method="POST"), ON, APP_HEADERS, id="post-never-cached"),
        pytest.param(environ(method="PUT"), ON, APP_HEADERS, id="put-never-cached"),
        pytest.param(environ(), OFF, APP_HEADERS, id="reproxy-off"),
        pytest.param(
            environ(),
            ON,
            [("X-Reproxy-Cache-For", "30")],
            id="no-url-nothing-to-remember",
        ),
    ],
)
def test_remember_stores_nothing(
    env: dict[str, Any], settings: Settings, headers: list[tuple[str, str]]
) -> None:
    cache = ReproxyCache()
    assert cache.remember(env, settings, headers) is None
    assert cache.stats.entries == 0


def test_remember_logs_a_bad_value(caplog: pytest.LogCaptureFixture) -> None:
    cache = ReproxyCache()
    headers = [("X-Reproxy-Url", "http://s/a"), ("X-Reproxy-Cache-For", "soon")]
    with caplog.at_level(logging.WARNING, logger="wsgi_reproxy"):
        assert cache.remember(environ(), ON, headers) is None
    assert "X-Reproxy-Cache-For 'soon'" in caplog.text
    assert cache.stats.entries == 0


@pytest.mark.parametrize(
    ("method", "settings", "hit"),
    [
        pytest.param("GET", ON, True, id="get"),
        pytest.param("HEAD", ON, True, id="head-served-from-get-entry"),
        pytest.param("POST", ON, False, id="post"),
        pytest.param("DELETE", ON, False, id="delete"),
        pytest.param("GET", OFF, False, id="reproxy-off"),
    ],
)
def test_lookup_only_for_get_and_head_with_reproxy_on(
    method: str, settings: Settings, hit: bool
) -> None:
    cache = ReproxyCache()
    cache.remember(environ(), ON, APP_HEADERS)
    found = cache.lookup(environ(method=method), settings)
    assert (found is not None) == hit
    # requests the cache may not answer are not counted as misses either
    assert cache.stats.hits + cache.stats.misses == int(hit)


def test_lookup_keys_on_query_string() -> None:
    cache = ReproxyCache()
    cache.remember(environ(query="v=1"), ON, APP_HEADERS)
    assert cache.lookup(environ(query="v=2"), ON) is None
    assert cache.lookup(environ(query="v=1"), ON) is not None


# -- the intended integration, end to end through WSGI ------------------------


def caching_front(app: Any, cache: ReproxyCache, settings: Settings) -> Any:
    """What the middleware does with the cache: on a hit, answer from the
    entry without calling *app*; on a miss, call it and remember."""

    def front(env: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        entry: CacheEntry | None = cache.lookup(env, settings)
        if entry is not None:
            headers = entry.app_headers()
        else:
            captured: list[list[tuple[str, str]]] = []
            body = app(env, lambda s, h, e=None: captured.append(h))
            body.close()
            headers = captured[0]
            cache.remember(env, settings, headers)
        url = " ".join(v for n, v in headers if n == "X-Reproxy-Url")
        start_response("200 OK", [("X-Served", url)])
        return [b""]

    return front


def test_cache_hit_does_not_call_the_app() -> None:
    calls = []

    def app(env: dict[str, Any], start_response: Any) -> Any:
        calls.append(env["PATH_INFO"])
        start_response("200 OK", APP_HEADERS)
        return iter_closable([b"ignored"])

    client = webtest.TestApp(caching_front(app, ReproxyCache(), ON))
    for method in ("get", "get", "head"):
        response = getattr(client, method)("/obj")
        assert response.headers["X-Served"] == "http://s1/a http://s2/a http://s3/a"
    client.post("/obj")
    assert calls == ["/obj", "/obj"]  # the first GET, then the POST


class iter_closable(list[bytes]):  # noqa: N801 - reads like a function
    def close(self) -> None:
        pass


# -- through ReproxyMiddleware, against a real loopback target -----------------


class CountingApp:
    """Answers every request with *headers* and counts the calls."""

    def __init__(self, headers: list[tuple[str, str]]) -> None:
        self.headers = headers
        self.calls: list[str] = []

    def __call__(self, env: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.calls.append(f"{env['REQUEST_METHOD']} {env['PATH_INFO']}")
        start_response("200 OK", self.headers)
        return [b"the app's own body"]


def reproxy_client(
    app: CountingApp, cache: ReproxyCache, allow: str = "On"
) -> webtest.TestApp:
    from wsgi_reproxy import ReproxyMiddleware, parse_config

    config = parse_config(f"AllowReproxy {allow}\nPreserveHeaders X-App\n")
    return webtest.TestApp(ReproxyMiddleware(app, config, cache=cache))


@pytest.fixture
def cached_app(target: Any) -> CountingApp:
    return CountingApp(
        [
            ("X-Reproxy-Url", target.url("/files/hello.txt")),
            ("X-App", "from the app"),
            ("X-Reproxy-Cache-For", "60; X-App"),
        ]
    )


def test_middleware_cache_hit_skips_the_app(cached_app: CountingApp) -> None:
    cache = ReproxyCache()
    client = reproxy_client(cached_app, cache)
    first = client.get("/obj")
    second = client.get("/obj")
    head = client.head("/obj")
    assert cached_app.calls == ["GET /obj"]
    assert first.body == second.body == b"hello from the target\n"
    assert head.body == b"" and head.headers["Content-Length"] == "22"
    for response in (first, second, head):
        assert response.headers["X-App"] == "from the app"
        assert not [h for h in response.headers if h.lower().startswith("x-reproxy")]
    assert (cache.stats.hits, cache.stats.misses) == (2, 1)


def test_middleware_calls_the_app_again_after_expiry(cached_app: CountingApp) -> None:
    clock = FakeClock()
    client = reproxy_client(cached_app, ReproxyCache(clock=clock))
    client.get("/obj")
    clock.now += 59
    client.get("/obj")
    clock.now += 1
    client.get("/obj")
    assert cached_app.calls == ["GET /obj", "GET /obj"]


def test_middleware_never_caches_post(cached_app: CountingApp) -> None:
    cache = ReproxyCache()
    client = reproxy_client(cached_app, cache)
    client.post("/obj")
    client.post("/obj")
    client.get("/obj")
    assert cached_app.calls == ["POST /obj", "POST /obj", "GET /obj"]
    assert cache.stats.entries == 1  # only the GET was remembered


def test_middleware_skips_the_cache_where_reproxy_is_off(
    cached_app: CountingApp,
) -> None:
    cache = ReproxyCache()
    client = reproxy_client(cached_app, cache, allow="Off")
    for _ in range(2):
        # SPEC §4.12: a trigger where reproxying is off is a 502.
        assert b"the app's own body" not in client.get("/obj", status=502).body
    assert cached_app.calls == ["GET /obj", "GET /obj"]
    assert cache.stats.entries == 0


def test_middleware_calls_the_app_for_an_evicted_entry(cached_app: CountingApp) -> None:
    client = reproxy_client(cached_app, ReproxyCache(max_entries=1))
    for path in ("/a", "/b", "/a", "/a"):
        client.get(path)
    assert cached_app.calls == ["GET /a", "GET /b", "GET /a"]


def test_middleware_does_not_cache_a_failed_reproxy(refused_url: str) -> None:
    app = CountingApp([("X-Reproxy-Url", refused_url), ("X-Reproxy-Cache-For", "60")])
    client = reproxy_client(app, ReproxyCache())
    client.get("/obj", status=502)
    client.get("/obj", status=502)
    assert app.calls == ["GET /obj", "GET /obj"]


def test_an_empty_cache_is_truthy() -> None:
    # The middleware writes ``cache or None``; an empty cache must survive it.
    assert ReproxyCache()
