"""The prometheus extra in one process: each event moves exactly its series;
``serve --metrics-bind`` helpers: address parsing, the directory, hooks, and
the startup summary line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import urllib3
import webtest
from conftest import HELLO, TargetServer

pytest.importorskip("prometheus_client")
from prometheus_client import CollectorRegistry  # noqa: E402

from wsgi_reproxy import ReproxyMiddleware, parse_config  # noqa: E402
from wsgi_reproxy.fetch.poolstats import pool_connections  # noqa: E402
from wsgi_reproxy.prometheus import (  # noqa: E402
    PrometheusMetrics,
    classify_failure,
    mark_process_dead,
    multiprocess_registry,
)
from wsgi_reproxy.run import metricsbind  # noqa: E402
from wsgi_reproxy.run.summary import summary_line  # noqa: E402

CONFIG = parse_config("AllowReproxy On\nReproxyAllowTargets http://127.0.0.1:*/\n")


def reproxy_app(urls: str, cache_for: str | None = None) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        headers = [("X-Reproxy-Url", urls)]
        if cache_for:
            headers.append(("X-Reproxy-Cache-For", cache_for))
        start_response("200 OK", headers)
        return [b""]

    return app


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_each_event_moves_its_series(
    refused_url: str, target: TargetServer, pool: urllib3.PoolManager
) -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry, pool=lambda: pool)
    good = target.url("/files/hello.txt")
    live = good.split("/")[2]
    dead = refused_url.split("/")[2]
    client = webtest.TestApp(
        ReproxyMiddleware(
            reproxy_app(f"{refused_url} {good}", cache_for="60"),
            CONFIG,
            pool=pool,
            metrics=metrics,
        )
    )
    assert client.get("/a").body == HELLO  # failover, cache miss
    assert client.get("/a").body == HELLO  # cache hit, failover again
    refusing = webtest.TestApp(
        ReproxyMiddleware(
            reproxy_app("http://10.1.2.3/x"), CONFIG, pool=pool, metrics=metrics
        )
    )
    refusing.get("/b", status=502)

    def v(name: str, **labels: str) -> float:
        return value(registry, f"wsgi_reproxy_{name}", **labels)

    assert v("reproxies_total", outcome="failover") == 2
    assert v("reproxies_total", outcome="failed") == 1
    assert v("reproxies_total", outcome="served") == 0
    assert v("tries_total", host=live) == 2
    assert v("tries_total", host=dead) == 2
    assert v("try_failures_total", host=dead, reason="connect") == 2
    assert v("allowlist_refusals_total") == 1
    assert v("cache_hits_total") == 1
    assert v("cache_misses_total") == 2  # /a once, /b (another middleware's cache)
    assert v("cache_evictions_total") == 0
    assert v("response_bytes_sum") == 2 * len(HELLO)
    assert v("response_bytes_count") == 3
    assert v("ttfb_seconds_count") == 2
    assert v("duration_seconds_count") == 3
    assert v("transfers_in_flight") == 0
    # Refreshed after the first reproxy: one idle keep-alive connection.
    assert v("pool_connections", host=live, state="idle") == 1
    assert v("pool_connections", host=live, state="open") == 1


def test_in_flight_counts_a_body_being_streamed(
    target: TargetServer, pool: urllib3.PoolManager
) -> None:
    registry = CollectorRegistry()
    metrics = PrometheusMetrics(registry=registry, pool=lambda: pool)
    app = ReproxyMiddleware(
        reproxy_app(target.url("/files/1m.bin")), CONFIG, pool=pool, metrics=metrics
    )
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    body: Any = app(environ, lambda status, headers, exc_info=None: None)
    assert value(registry, "wsgi_reproxy_transfers_in_flight") == 1
    body.close()
    assert value(registry, "wsgi_reproxy_transfers_in_flight") == 0
    assert value(registry, "wsgi_reproxy_reproxies_total", outcome="client-gone") == 1


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        pytest.param("cannot connect: Connection refused", "connect", id="connect"),
        pytest.param("read timeout", "timeout", id="read-timeout"),
        pytest.param("no free connection in the pool", "timeout", id="pool"),
        pytest.param("status 404", "status", id="status"),
        pytest.param("size 3 differs from expected size 4", "size", id="size"),
        pytest.param(
            "redirect to 'http://x/' refused: outside ReproxyAllowTargets",
            "refused",
            id="refused-redirect",
        ),
        pytest.param("status 302 redirect to x not followed", "redirect", id="redir"),
        pytest.param("connection broken: reset", "broken", id="broken"),
        pytest.param("ValueError: odd", "other", id="other"),
    ],
)
def test_failure_reasons_become_few_labels(reason: str, label: str) -> None:
    assert classify_failure(reason) == label


def test_pool_connections_counts_checked_out_and_idle(target: TargetServer) -> None:
    pool = urllib3.PoolManager(maxsize=2)
    response = pool.request(
        "GET", target.url("/files/hello.txt"), preload_content=False
    )
    host = target.url("").split("/")[2]
    assert pool_connections(pool) == {host: (1, 0)}
    response.read()
    response.release_conn()
    assert pool_connections(pool) == {host: (1, 1)}
    pool.clear()
    assert pool_connections(pool) == {}


def test_multiprocess_registry_needs_the_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with pytest.raises(ValueError, match="PROMETHEUS_MULTIPROC_DIR"):
        multiprocess_registry()
    mark_process_dead(os.getpid())  # a no-op without the directory
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert list(multiprocess_registry().collect()) == []
    mark_process_dead(12345)  # nothing to remove: fine


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        pytest.param("127.0.0.1:9100", ("127.0.0.1", 9100), id="host-port"),
        pytest.param(":9100", ("127.0.0.1", 9100), id="port-only-colon"),
        pytest.param("9100", ("127.0.0.1", 9100), id="port-only"),
        pytest.param("[::1]:0", ("::1", 0), id="ipv6"),
        pytest.param("0.0.0.0:80", ("0.0.0.0", 80), id="all"),
    ],
)
def test_metrics_bind_addresses(addr: str, expected: tuple[str, int]) -> None:
    assert metricsbind.parse_bind(addr) == expected


@pytest.mark.parametrize("addr", ["host:", "h:99999", "h:x", "h:-1"])
def test_bad_metrics_bind_addresses(addr: str) -> None:
    with pytest.raises(ValueError, match="--metrics-bind wants HOST:PORT"):
        metricsbind.parse_bind(addr)


def test_directory_created_once_and_owned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv(metricsbind.OWNED_ENV, raising=False)
    owned = metricsbind.prepare_directory()
    try:
        assert owned is not None and os.path.isdir(owned)
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == owned
        # The gevent re-execution sees the same directory, still its own.
        assert metricsbind.prepare_directory() == owned
    finally:
        os.rmdir(owned)  # type: ignore[arg-type]


def test_users_directory_is_used_and_not_owned(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.delenv(metricsbind.OWNED_ENV, raising=False)
    assert metricsbind.prepare_directory() is None
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path)


class FakeCfg:
    """gunicorn's Config as the summary and the hooks read it."""

    def __init__(self, **values: Any) -> None:
        self.values = {
            "worker_class_str": "sync",
            "workers": 1,
            "threads": 1,
            "worker_connections": 1000,
            **values,
        }
        self.hooks: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return self.values[name]


@pytest.mark.parametrize(
    ("cfg", "tail"),
    [
        pytest.param(
            {"workers": 2},
            "worker class: sync; capacity: 2 workers x 1 thread = 2 concurrent downloads",
            id="sync",
        ),
        pytest.param(
            {"workers": 2, "threads": 8},
            "worker class: gthread; capacity: 2 workers x 8 threads = 16 concurrent downloads",
            id="sync-with-threads-is-gthread",
        ),
        pytest.param(
            {"worker_class_str": "gevent", "workers": 3},
            "worker class: gevent; capacity: 3 workers x 1000 connections = 3000 concurrent downloads",
            id="gevent",
        ),
    ],
)
def test_summary_line(cfg: dict[str, Any], tail: str) -> None:
    config = parse_config(
        "ReproxyAllowTargets http://10.0.0.*:7500/\n"
        "<Location /a>\n AllowReproxy On\n ReproxyFileRoot /srv/a\n</Location>\n"
        "<Directory /srv>\n ReproxyFileRoot /srv/a /srv/b\n</Directory>\n"
        "<VirtualHost *:80>\n ServerName x\n <Location /v>\n  AllowReproxy On\n"
        " </Location>\n</VirtualHost>\n"
    )
    line = summary_line(config, "site.conf", FakeCfg(**cfg))
    assert line == (
        "wsgi-reproxy: site.conf: 3 sections, 1 virtual hosts, AllowReproxy On in 2;"
        " file roots: /srv/a /srv/b; allow-list: http://10.0.0.*:7500/; " + tail
    )


def test_summary_line_of_an_empty_config() -> None:
    line = summary_line(parse_config(""), "e.conf", FakeCfg())
    assert (
        "0 sections, 0 virtual hosts, AllowReproxy On in 0; file roots: none;" in line
    )
    assert "allow-list: any http/https URL;" in line


@pytest.mark.parametrize(
    ("passed", "given", "expected"),
    [
        pytest.param(["-k", "gevent"], None, (None, ["-k", "gevent"]), id="absent"),
        pytest.param(
            ["--workers", "2", "--metrics-bind", ":9", "--", "-k", "g"],
            None,
            (":9", ["--workers", "2", "--", "-k", "g"]),
            id="before-double-dash",
        ),
        pytest.param(["--metrics-bind=:8"], ":7", (":8", []), id="equals-later-wins"),
        pytest.param(
            ["--", "--metrics-bind", ":9"],
            None,
            (None, ["--", "--metrics-bind", ":9"]),
            id="after-double-dash-is-gunicorns",
        ),
    ],
)
def test_metrics_bind_found_after_the_app(
    passed: list[str], given: str | None, expected: tuple[str | None, list[str]]
) -> None:
    assert metricsbind.take_metrics_bind(passed, given) == expected


class FakeArbiter:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.log = self

    def info(self, message: str, *args: Any) -> None:
        self.lines.append(message % args)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_hooks_serve_metrics_keep_user_hooks_and_clean_up(
    host: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from gunicorn.config import Config

    if host == "::1" and not socket_has_ipv6():
        pytest.skip("no IPv6 loopback")
    owned = tmp_path / "metrics"
    owned.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(owned))
    cfg = Config()
    calls: list[str] = []
    cfg.set("on_exit", lambda arbiter: calls.append("user on_exit"))
    cfg.set("child_exit", lambda arbiter, worker: calls.append("user child_exit"))
    metricsbind.install_hooks(cfg, (host, 0), str(owned))
    arbiter = FakeArbiter()
    cfg.when_ready(arbiter)
    (line,) = arbiter.lines
    url = line.removeprefix("Metrics at: ")
    assert url.startswith(f"http://{'[::1]' if host == '::1' else host}:")
    response = urllib3.request("GET", url, timeout=5)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")

    class Worker:
        pid = 424242

    cfg.child_exit(arbiter, Worker())
    cfg.on_exit(arbiter)
    assert calls == ["user child_exit", "user on_exit"]
    assert not owned.exists()
    with pytest.raises(urllib3.exceptions.HTTPError):
        urllib3.request("GET", url, timeout=2, retries=False)


def socket_has_ipv6() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture
def serve_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A conf and an app module, and the env serve touches restored after."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv(metricsbind.OWNED_ENV, raising=False)
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    (tmp_path / "r.conf").write_text("<Location />\nAllowReproxy On\n</Location>\n")
    return tmp_path


def test_serve_with_metrics_bind_wires_metrics_hooks_and_summary(
    serve_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from gunicorn.config import Config

    from wsgi_reproxy.__main__ import main
    from wsgi_reproxy.run import serve

    calls: list[dict[str, Any]] = []

    def fake_run(options: list[str], load_app: Any, config: Any, **kw: Any) -> None:
        application = type("App", (), {"cfg": Config()})()
        kw["before_run"](application)
        calls.append({"options": options, "cfg": application.cfg, **kw})
        assert os.path.isdir(os.environ["PROMETHEUS_MULTIPROC_DIR"])

    monkeypatch.setattr(serve, "run_gunicorn", fake_run)
    conf = str(serve_env / "r.conf")
    argv = ["serve", conf, "m:app", "--workers", "2", "--metrics-bind", ":0"]
    assert main(argv) == 0
    ((call,),) = [calls]
    assert call["options"] == ["--workers", "2"]
    assert call["argv"] == [
        "serve", "--metrics-bind", ":0", "--send-timeout", "60.0",
        conf, "m:app", "--", "--workers", "2",
    ]  # fmt: skip
    assert call["metrics"] is serve._prometheus_metrics
    assert call["cfg"].settings["when_ready"].get().__name__ == "hook"
    out = capsys.readouterr().out
    assert out.startswith(f"wsgi-reproxy: {conf}: 1 sections,")
    assert "capacity: 1 workers x 1 thread = 1 concurrent downloads" in out
    # serve created the directory and removed it when gunicorn returned.
    assert not os.path.exists(os.environ["PROMETHEUS_MULTIPROC_DIR"])


@pytest.mark.parametrize(
    ("argv_tail", "available", "message"),
    [
        pytest.param(
            ["--metrics-bind", "h:x"], True, "--metrics-bind wants HOST:PORT", id="bad"
        ),
        pytest.param(
            ["--metrics-bind", ":9"], False, "wsgi_reproxy[prometheus]", id="missing"
        ),
    ],
)
def test_serve_metrics_bind_refusals_exit_2(
    serve_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv_tail: list[str],
    available: bool,
    message: str,
) -> None:
    from wsgi_reproxy.__main__ import main
    from wsgi_reproxy.run import serve

    monkeypatch.setattr(serve, "prometheus_available", lambda: available)
    monkeypatch.setattr(serve, "run_gunicorn", lambda *a, **k: pytest.fail("ran"))
    assert main(["serve", str(serve_env / "r.conf"), "m:app", *argv_tail]) == 2
    assert message in capsys.readouterr().err
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
