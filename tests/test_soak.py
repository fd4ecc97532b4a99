"""Soak and disconnect tests under real gunicorn (gthread workers).

``wsgi-reproxy serve`` runs a small app (written to ``tmp_path``) in one
gthread worker; the storage node runs in its own process so that the 32
client threads of this test do not share its GIL.  The app's ``/stats``
reports the worker's pid, open descriptors, RSS and pool state, read from
inside the worker.

``SOAK_REQUESTS`` sets the soak's request count (default 10,000, as issue 4
asks).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from _processes import Command, gunicorn_quiet_options

from wsgi_reproxy.run.storage import closed_port_url, generated_bytes

pytestmark = pytest.mark.slow

OBJECTS = 64
OBJECT_SIZE = 16 * 1024
BIG_SIZE = 32 * 1024 * 1024
SOAK_REQUESTS = int(os.environ.get("SOAK_REQUESTS", "10000"))
CLIENTS = 32

STORAGE_SCRIPT = f"""
import sys
from wsgi_reproxy.run.storage import StorageNode, generated_bytes
files = {{f"obj{{i}}": generated_bytes({OBJECT_SIZE}, f"obj{{i}}") for i in range({OBJECTS})}}
files["big"] = generated_bytes({BIG_SIZE}, "big")
with StorageNode(files) as node:
    print(node.port, flush=True)
    sys.stdin.read()  # serve until the test closes our stdin
"""

APP_MODULE = '''
"""The soak app: X-Reproxy-Url lists by kind, and /stats from the worker."""
import json
import os
import threading

from wsgi_reproxy.fetch.fetcher import default_pool

GOOD, DEAD, FAIL = os.environ["SOAK_GOOD"], os.environ["SOAK_DEAD"], os.environ["SOAK_FAIL"]
TRUNCATING = os.environ["SOAK_TRUNCATING"]


def stats():
    pool = default_pool()
    idle = free = size = 0
    for key in list(pool.pools.keys()):
        queue = pool.pools[key].pool
        if queue is None:
            continue
        free += queue.qsize()
        size += queue.maxsize
        idle += sum(1 for c in list(queue.queue) if c is not None and c.sock is not None)
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return {
        "pid": os.getpid(),
        "fds": len(os.listdir("/proc/self/fd")),
        "rss": rss,
        "idle": idle,
        "free": free,
        "size": size,
        "threads": threading.active_count(),
    }


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/stats":
        body = json.dumps(stats()).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    _, _, kind, name = path.split("/", 3)
    good = f"{GOOD}/{name}"
    urls = {
        "good": good,
        "dead-first": f"{DEAD}/{name} {good}",
        "fail-first": f"{FAIL} {good}",
        "all-bad": f"{DEAD}/{name} {FAIL}",
        "truncating": f"{TRUNCATING} {good}",
    }[kind]
    start_response("200 OK", [("X-Reproxy-Url", urls), ("Content-Type", "text/plain")])
    return [b"the app body, never sent"]
'''

CONFIG = """\
AllowReproxy On
ReproxyAllowTargets http://127.0.0.1:*/
ReproxyTimeout 2 10
"""


@dataclass
class Worker:
    port: int

    def stats(self) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", "/stats", headers={"Connection": "close"})
            stats: dict[str, Any] = json.loads(conn.getresponse().read())
            return stats
        finally:
            conn.close()

    def settled(self, want: int | None = None, timeout: float = 5.0) -> dict[str, Any]:
        """/stats once the worker has closed what clients hung up on.

        Polls until ``fds - idle`` (descriptors not held by the pool's idle
        keep-alive connections) equals *want*, or stops changing.
        """
        deadline = time.monotonic() + timeout
        last: list[int] = []
        while True:
            stats = self.stats()
            own = stats["fds"] - stats["idle"]
            last = [*last[-2:], own]
            steady = len(last) == 3 and len(set(last)) == 1
            if own == want or (want is None and steady):
                return stats
            if time.monotonic() > deadline:
                return stats
            time.sleep(0.05)


@pytest.fixture(scope="module")
def storage_port() -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", STORAGE_SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONDEVMODE": ""},
    )
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


@pytest.fixture(scope="module")
def worker(
    tmp_path_factory: pytest.TempPathFactory,
    storage_port: int,
    truncating_target: Any,
) -> Iterator[Worker]:
    tmp = tmp_path_factory.mktemp("soak")
    (tmp / "soakapp.py").write_text(APP_MODULE)
    (tmp / "reproxy.conf").write_text(CONFIG)
    env = {
        "SOAK_GOOD": f"http://127.0.0.1:{storage_port}",
        "SOAK_DEAD": closed_port_url("").rstrip("/"),
        "SOAK_FAIL": f"http://127.0.0.1:{storage_port}/no-such-object",
        # conftest's RawServer: Content-Length 1000, 500 bytes, then close.
        "SOAK_TRUNCATING": truncating_target.url("/big"),
        "PYTHONPATH": os.pathsep.join([str(tmp), *sys.path]),
        # A production-like worker: dev mode's debug allocator would
        # triple its CPU per request and distort RSS.
        "PYTHONDEVMODE": "",
    }
    command = Command(
        [
            "serve",
            str(tmp / "reproxy.conf"),
            "soakapp:app",
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--threads",
            "16",
            "--",
            "--worker-class",
            "gthread",
            *gunicorn_quiet_options(),
        ],
        tmp,
        cwd=tmp,
        env=env,
    )
    with command as server:
        yield Worker(server.port)


def expected(name: str) -> str:
    return hashlib.sha256(generated_bytes(OBJECT_SIZE, name)).hexdigest()


def test_client_disconnects_mid_stream_leak_nothing(worker: Worker) -> None:
    """100 clients hang up (RST) after 64 KiB of a 32 MiB reproxied body."""
    conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=10)
    conn.request("GET", "/obj/good/obj1", headers={"Connection": "close"})
    assert conn.getresponse().read() == generated_bytes(OBJECT_SIZE, "obj1")
    conn.close()
    before = worker.settled()
    for _ in range(100):
        with socket.create_connection(("127.0.0.1", worker.port), timeout=10) as sock:
            sock.sendall(b"GET /obj/good/big HTTP/1.1\r\nHost: soak\r\n\r\n")
            received = 0
            while received < 64 * 1024:
                data = sock.recv(65536)
                assert data, "the worker closed before 64 KiB"
                received += len(data)
            # SO_LINGER 0: close() sends RST, like a client that went away.
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
    conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=10)
    conn.request("GET", "/obj/good/obj3", headers={"Connection": "close"})
    assert conn.getresponse().read() == generated_bytes(OBJECT_SIZE, "obj3")
    conn.close()
    after = worker.settled(want=before["fds"] - before["idle"])
    print(
        f"\ndisconnects: worker fds {before['fds']} -> {after['fds']}"
        f" (idle pooled {before['idle']} -> {after['idle']}),"
        f" pool slots free {after['free']}/{after['size']}"
    )
    assert after["pid"] == before["pid"], "the worker was restarted"
    assert after["fds"] - after["idle"] == before["fds"] - before["idle"]
    assert after["free"] == after["size"], "a pool slot was not returned"
    # gthread starts its pool threads lazily, so only a bound makes sense.
    assert after["threads"] <= 16 + 2


def test_target_breaking_mid_body_aborts_the_client_connection(worker: Worker) -> None:
    """The client sees a short body and a closed connection, never a
    complete-looking response; the worker then serves the next request."""
    before = worker.settled()
    conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=10)
    try:
        conn.request("GET", "/obj/truncating/obj2")
        response = conn.getresponse()
        assert response.status == 200
        assert response.headers["Content-Length"] == "1000000"
        with pytest.raises(http.client.IncompleteRead) as info:
            response.read()
        assert len(info.value.partial) == 500_000
    finally:
        conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=10)
    try:
        conn.request("GET", "/obj/good/obj2")
        assert conn.getresponse().read() == generated_bytes(OBJECT_SIZE, "obj2")
    finally:
        conn.close()
    after = worker.settled(want=before["fds"] - before["idle"])
    assert after["pid"] == before["pid"], "the worker was restarted"
    assert after["fds"] - after["idle"] == before["fds"] - before["idle"]
    assert after["free"] == after["size"]


@dataclass
class Counts:
    served: int = 0
    bad_gateway: int = 0
    wrong: int = 0


def _kind(i: int) -> str:
    if i % 100 == 50:
        return "all-bad"  # an expected 502
    if i % 3 == 0:
        # every third URL list starts with a dead or a failing target
        return "dead-first" if i % 6 == 0 else "fail-first"
    return "good"


def _run(port: int, indexes: range, counts: Counts, problems: list[str]) -> None:
    lock = threading.Lock()
    want = {f"obj{n}": expected(f"obj{n}") for n in range(OBJECTS)}

    def client(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            for i in indexes[offset::CLIENTS]:
                kind, name = _kind(i), f"obj{i % OBJECTS}"
                try:
                    conn.request("GET", f"/obj/{kind}/{name}")
                    response = conn.getresponse()
                    body = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()  # reconnects on the next request
                    status, body, error = 0, b"", repr(exc)
                else:
                    status, error = response.status, ""
                with lock:
                    if kind == "all-bad" and status == 502:
                        counts.bad_gateway += 1
                    elif (
                        status == 200 and hashlib.sha256(body).hexdigest() == want[name]
                    ):
                        counts.served += 1
                    else:
                        counts.wrong += 1
                        problems.append(f"{i} {kind} {status} {error}")
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_soak_serves_right_bytes_with_flat_fds_and_rss(worker: Worker) -> None:
    tenth = max(SOAK_REQUESTS // 10, 1)
    phases = [range(0, tenth), range(tenth, SOAK_REQUESTS - tenth)]
    phases.append(range(SOAK_REQUESTS - tenth, SOAK_REQUESTS))
    counts, problems = Counts(), []
    started = time.monotonic()
    _run(worker.port, phases[0], counts, problems)
    first = worker.settled()
    _run(worker.port, phases[1], counts, problems)
    _run(worker.port, phases[2], counts, problems)
    last = worker.settled(want=first["fds"] - first["idle"])
    elapsed = time.monotonic() - started
    print(
        f"\nsoak: {SOAK_REQUESTS} requests, {CLIENTS} clients, {elapsed:.1f}s"
        f" ({SOAK_REQUESTS / elapsed:.0f} req/s): served {counts.served},"
        f" 502 {counts.bad_gateway}, wrong {counts.wrong}\n"
        f"worker after first {tenth}: fds {first['fds']} (idle pooled"
        f" {first['idle']}), rss {first['rss'] / 2**20:.1f} MiB; after last"
        f" {tenth}: fds {last['fds']} (idle pooled {last['idle']}),"
        f" rss {last['rss'] / 2**20:.1f} MiB"
    )
    assert counts.wrong == 0, problems[:20]
    assert counts.bad_gateway == sum(
        _kind(i) == "all-bad" for i in range(SOAK_REQUESTS)
    )
    assert counts.served + counts.bad_gateway == SOAK_REQUESTS
    assert last["pid"] == first["pid"], "the worker was restarted"
    assert last["fds"] - last["idle"] == first["fds"] - first["idle"]
    assert last["free"] == last["size"], "a pool slot was not returned"
    # Flat: the allocator may keep a little more, a leak of one buffer per
    # request (16 KiB x 8,000) would not fit in this.
    assert last["rss"] - first["rss"] < 8 * 2**20
