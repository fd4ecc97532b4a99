"""What an operator sees under real gunicorn (issue 15).

Plain ``gunicorn app:application`` with no logging configured: a dead
node's failover and the 502 land in gunicorn's error log.  ``wsgi-reproxy
serve --metrics-bind`` with 2 workers in multiprocess mode: a scripted mix
of requests, then ``/metrics`` from the master shows each counter's exact
value, summed over both workers.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from _processes import GUNICORN_LISTENING, Command, gunicorn_quiet_options
from conftest import HELLO, TargetServer, make_bytes

pytestmark = pytest.mark.slow

APP = """
import os

LIVE = os.environ["REPROXY_LIVE"]
DEAD = os.environ["REPROXY_DEAD"]
ROUTES = {
    "/r/served": LIVE + "/files/hello.txt",
    "/r/failover": DEAD + " " + LIVE + "/files/hello.txt",
    "/r/dead": DEAD,
    "/r/refused": "http://10.255.0.1:7500/x",
    "/r/big": LIVE + "/files/obs-32m.bin",
    "/r/cached": LIVE + "/files/hello.txt",
}


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path not in ROUTES:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"pong"]
    headers = [("X-Reproxy-Url", ROUTES[path])]
    if path == "/r/cached":
        headers.append(("X-Reproxy-Cache-For", "300"))
    start_response("200 OK", headers)
    return [b""]
"""

CONF = """
<Location /r>
    AllowReproxy On
</Location>
ReproxyAllowTargets http://127.0.0.1:*/
"""

WRAPPED = """
from wsgi_reproxy import ReproxyMiddleware
from mix_app import app as inner

application = ReproxyMiddleware(inner, "reproxy.conf")
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, target: TargetServer) -> Path:
    path = tmp_path_factory.mktemp("observe")
    (path / "mix_app.py").write_text(textwrap.dedent(APP))
    (path / "wrapped.py").write_text(textwrap.dedent(WRAPPED))
    (path / "reproxy.conf").write_text(CONF)
    target.add_file("obs-32m.bin", make_bytes(32 << 20, "obs"))
    return path


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/gone.fid"


def environment(target: TargetServer, dead: str) -> dict[str, str]:
    env = {
        **os.environ,
        "REPROXY_LIVE": target.url("").rstrip("/"),
        "REPROXY_DEAD": dead,
    }
    env.pop("GUNICORN_CMD_ARGS", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def get(port: int, path: str, conn: http.client.HTTPConnection | None = None) -> int:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        if own:
            conn.close()


def test_plain_gunicorn_error_log_shows_failover_and_502(
    site: Path, target: TargetServer, tmp_path: Path
) -> None:
    error_log = tmp_path / "error.log"
    dead = dead_url()
    args = [
        sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0",
        "--workers", "1", "--chdir", str(site), "--error-logfile", str(error_log),
        *gunicorn_quiet_options(), "wrapped:application",
    ]  # fmt: skip
    proc = subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=environment(target, dead),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (match := GUNICORN_LISTENING.search(_read(error_log))):
            assert proc.poll() is None and time.monotonic() < deadline, _read(error_log)
            time.sleep(0.05)
        port = int(match.group(1))
        assert get(port, "/r/failover") == 200
        assert get(port, "/r/dead") == 502
        deadline = time.monotonic() + 10
        while "failed (502)" not in _read(error_log) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    log = _read(error_log)
    failed_tries = [line for line in log.splitlines() if "target failed" in line]
    assert len(failed_tries) == 2, log  # the failover's dead try, the 502's
    assert all(
        "[WARNING] wsgi_reproxy.middleware: reproxy target failed after" in line
        and f"{dead}: cannot connect" in line
        for line in failed_tries
    )
    (bad_gateway,) = [line for line in log.splitlines() if "failed (502)" in line]
    assert bad_gateway.endswith(
        f"reproxy of /r/dead failed (502): {dead}: cannot connect: Connection refused"
    )
    assert "reproxied" not in log  # INFO stays out: logging is not configured


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _hang_up_after(port: int, path: str, nbytes: int) -> None:
    """Read *nbytes* of the response, then reset the connection (RST)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        got = 0
        while got < nbytes:
            chunk = sock.recv(65536)
            assert chunk
            got += len(chunk)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        sock.close()


_SAMPLE = re.compile(r"^(wsgi_reproxy_[a-z_]+)(\{[^}]*\})? (\S+)$", re.M)


def scrape(port: int) -> dict[str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        text = response.read().decode()
        assert response.status == 200
    finally:
        conn.close()
    return {
        name + (labels or ""): float(value)
        for name, labels, value in _SAMPLE.findall(text)
    }


def test_metrics_after_a_scripted_mix_with_two_workers(
    site: Path, target: TargetServer, tmp_path: Path
) -> None:
    pytest.importorskip("prometheus_client")
    dead = dead_url()
    live_host = target.url("").split("/")[2]
    dead_host = dead.split("/")[2]
    metrics_ready = re.compile(r"Metrics at: http://127\.0\.0\.1:(\d+)/metrics")
    args = [
        "serve", str(site / "reproxy.conf"), "mix_app:app",
        "--bind", "127.0.0.1:0", "--workers", "2", "--metrics-bind", "127.0.0.1:0",
        "--", "--worker-class", "gthread", "--threads", "4", "--chdir", str(site),
        *gunicorn_quiet_options(),
    ]  # fmt: skip
    with Command(
        args, tmp_path, ready=metrics_ready, env=environment(target, dead)
    ) as server:
        metrics_port = server.port
        port = int(GUNICORN_LISTENING.search(server.output()).group(1))  # type: ignore[union-attr]
        summary = [line for line in server.stdout().splitlines() if "capacity:" in line]
        assert summary == [
            f"wsgi-reproxy: {site / 'reproxy.conf'}: 1 sections, 0 virtual hosts, "
            "AllowReproxy On in 1; file roots: none; "
            "allow-list: http://127.0.0.1:*/; worker class: gthread; "
            "capacity: 2 workers x 4 threads = 8 concurrent downloads"
        ]
        assert get(port, "/ping") == 200  # reproxying off: not even a lookup
        assert get(port, "/r/served") == 200
        assert get(port, "/r/served") == 200
        assert get(port, "/r/failover") == 200
        assert get(port, "/r/dead") == 502
        assert get(port, "/r/refused") == 502
        _hang_up_after(port, "/r/big", 256 * 1024)
        # One keep-alive connection stays with one worker: miss, then hit.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            assert get(port, "/r/cached", conn) == 200
            assert get(port, "/r/cached", conn) == 200
        finally:
            conn.close()

        expected = {
            'wsgi_reproxy_reproxies_total{outcome="served"}': 4,
            'wsgi_reproxy_reproxies_total{outcome="failover"}': 1,
            'wsgi_reproxy_reproxies_total{outcome="failed"}': 2,
            'wsgi_reproxy_reproxies_total{outcome="client-gone"}': 1,
            'wsgi_reproxy_reproxies_total{outcome="aborted"}': 0,
            f'wsgi_reproxy_tries_total{{host="{live_host}"}}': 6,
            f'wsgi_reproxy_tries_total{{host="{dead_host}"}}': 2,
            f'wsgi_reproxy_try_failures_total{{host="{dead_host}",reason="connect"}}': 2,
            "wsgi_reproxy_allowlist_refusals_total": 1,
            "wsgi_reproxy_cache_hits_total": 1,
            "wsgi_reproxy_cache_misses_total": 7,
            "wsgi_reproxy_cache_evictions_total": 0,
            "wsgi_reproxy_ttfb_seconds_count": 6,
            "wsgi_reproxy_duration_seconds_count": 8,
            "wsgi_reproxy_response_bytes_count": 8,
            "wsgi_reproxy_transfers_in_flight": 0,
        }
        # The hung-up download ends when its worker notices: wait for it.
        deadline = time.monotonic() + 20
        while True:
            samples = scrape(metrics_port)
            got = {key: samples.get(key, 0.0) for key in expected}
            if got == expected or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert got == expected
        # Every byte but the hung-up download's, which is somewhere below 32 MiB.
        rest = samples["wsgi_reproxy_response_bytes_sum"] - 5 * len(HELLO)
        assert 256 * 1024 <= rest < 32 << 20
        open_ = samples[
            f'wsgi_reproxy_pool_connections{{host="{live_host}",state="open"}}'
        ]
        idle = samples[
            f'wsgi_reproxy_pool_connections{{host="{live_host}",state="idle"}}'
        ]
        # Sampled at most once a second per worker: present, and consistent.
        assert 0 <= idle <= open_ <= 2 * 4
    assert "Traceback" not in server.output()
