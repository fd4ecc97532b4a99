"""End to end under real gunicorn: a Flask app wrapped in the middleware.

A 50 MB file is reproxied from a loopback target through gunicorn's sync
and gthread workers and compared by sha256 with what the target holds.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import TargetServer, make_bytes

pytestmark = pytest.mark.slow

SIZE = 50 * 1000 * 1000

APP_MODULE = """
import os

from flask import Flask, Response

from wsgi_reproxy import ReproxyMiddleware, parse_config

flask_app = Flask(__name__)
TARGET = os.environ["REPROXY_TARGET"]


@flask_app.route("/download/<name>")
def download(name):
    # The permission check would be here; the body is never sent.
    response = Response("the app's body\\n", content_type="text/plain")
    response.headers["X-Reproxy-Url"] = f"{TARGET}/files/{name}"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


CONFIG = '''
<Location /download>
    AllowReproxy On
    PreserveHeaders Content-Disposition
</Location>
'''
app = ReproxyMiddleware(flask_app, parse_config(CONFIG))

if os.environ.get("WARM_POOL"):
    # With --preload this runs in the arbiter: its process-wide pool now
    # holds a keep-alive connection that every forked worker inherits.
    from wsgi_reproxy.fetch.fetcher import default_pool

    default_pool().request("GET", f"{TARGET}/files/hello.txt")
"""

_LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")


@pytest.fixture(scope="module")
def big_file(target: TargetServer) -> tuple[str, str]:
    """A 50 MB file on the target: (name, sha256)."""
    data = make_bytes(SIZE, "50m")
    target.add_file("50m.bin", data)
    return "50m.bin", hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module", params=["sync", "gthread", "gthread-preload"])
def gunicorn(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    target: TargetServer,
) -> Iterator[int]:
    """gunicorn serving the wrapped Flask app; yields its port.

    gunicorn binds ``127.0.0.1:0`` and logs the port it got; the whole
    process group is killed in ``finally`` whatever happens.
    """
    tmp_path = tmp_path_factory.mktemp("gunicorn")
    (tmp_path / "reproxy_app.py").write_text(textwrap.dedent(APP_MODULE))
    log = tmp_path / "gunicorn.log"
    worker, _, preload = request.param.partition("-")
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        "127.0.0.1:0",
        "--worker-class",
        worker,
        "--workers",
        "2" if preload else "1",
        # gunicorn turns "sync" into "gthread" when threads > 1.
        "--threads",
        "1" if worker == "sync" else "4",
        "--chdir",
        str(tmp_path),
        "--log-level",
        "info",
        *(["--preload"] if preload else []),
        "reproxy_app:app",
    ]
    env = {**os.environ, "REPROXY_TARGET": target.url("")}
    if preload:
        env["WARM_POOL"] = "1"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        port = 0
        while not port:
            match = _LISTENING.search(log.read_text(errors="replace"))
            if match:
                port = int(match.group(1))
            elif proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start:\n{log.read_text()}")
            else:
                time.sleep(0.05)
        _wait_for_worker(port)
        yield port
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_for_worker(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/ping")
            conn.getresponse().read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        finally:
            conn.close()


def test_50mb_file_reproxied_intact(gunicorn: int, big_file: tuple[str, str]) -> None:
    name, digest = big_file
    conn = http.client.HTTPConnection("127.0.0.1", gunicorn, timeout=30)
    try:
        conn.request("GET", f"/download/{name}")
        response = conn.getresponse()
        sha = hashlib.sha256()
        received = 0
        while chunk := response.read(1 << 20):
            sha.update(chunk)
            received += len(chunk)
        assert response.status == 200
        assert response.getheader("Content-Length") == str(SIZE)
        assert (
            response.getheader("Content-Disposition")
            == f'attachment; filename="{name}"'
        )
        assert response.getheader("X-Reproxy-Url") is None
    finally:
        conn.close()
    assert received == SIZE
    assert sha.hexdigest() == digest


def test_range_request_through_gunicorn(
    gunicorn: int, big_file: tuple[str, str], target: TargetServer
) -> None:
    name, _ = big_file
    conn = http.client.HTTPConnection("127.0.0.1", gunicorn, timeout=30)
    try:
        conn.request("GET", f"/download/{name}", headers={"Range": "bytes=100-199"})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 206
    with (target.root / name).open("rb") as f:
        f.seek(100)
        assert body == f.read(100)


def test_parallel_downloads_each_get_their_own_connection(
    gunicorn: int, target: TargetServer
) -> None:
    """Eight concurrent 1 MiB downloads; after ``--preload`` a connection
    inherited from the arbiter would interleave two workers' responses."""
    expected = (target.root / "1m.bin").read_bytes()

    def fetch(_: int) -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", gunicorn, timeout=30)
        try:
            conn.request("GET", "/download/1m.bin")
            return conn.getresponse().read()
        finally:
            conn.close()

    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(fetch, range(16)))
    assert all(body == expected for body in bodies)
