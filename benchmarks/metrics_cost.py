"""What ``metrics=`` costs on the 1 KiB path (issue 15).

Run (about 30 s on 2 shared cores; needs ``prometheus_client``)::

    python benchmarks/metrics_cost.py            # 15 rounds x 1,000 requests
    python benchmarks/metrics_cost.py --quick    # 5 rounds x 500

A minimal keep-alive storage node in its own process answers every GET with
the same 1 KiB on 127.0.0.1.  A measuring process wraps a one-line WSGI app
answering ``X-Reproxy-Url`` in two ``ReproxyMiddleware`` instances, one with
the default ``metrics=None`` (the no-op) and one with ``PrometheusMetrics()``,
calls them directly (no WSGI server, so the middleware's own cost is not
diluted), reading and closing every body, and alternates between them batch
by batch so drift hits both alike.  It reports the CPU time per request
(``time.process_time``: the storage node works in the other process).  Two
such processes run: one in ``prometheus_client``'s single-process mode, one
with ``PROMETHEUS_MULTIPROC_DIR`` set (every value an ``mmap`` write), as
under ``serve --metrics-bind``.  (Separate processes per variant were tried
first: their medians differed by ±50 µs whatever the metrics did.)

Printed per mode: the medians with and without metrics, the median of the
per-round differences, and the cost of one reproxy's metrics calls measured
alone (five calls: cache miss, try, transfer start and end, finish).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# A keep-alive HTTP/1.1 node answering every GET with the same 1 KiB, head
# and body in one send (http.server's two writes meet the client's delayed
# ACK: 40 ms a request).
_STORAGE = """
import socket, socketserver, sys, threading
BODY = b"k" * 1024
RESPONSE = b"HTTP/1.1 200 OK\\r\\nContent-Length: 1024\\r\\n\\r\\n" + BODY

class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = b""
        while True:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            data += chunk
            while b"\\r\\n\\r\\n" in data:
                _, data = data.split(b"\\r\\n\\r\\n", 1)
                self.request.sendall(RESPONSE)

server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
print(f"http://127.0.0.1:{server.server_address[1]}/1k.bin", flush=True)
sys.stdin.read()
"""


def measure(url: str, rounds: int, requests: int) -> dict[str, object]:
    """Run in a child process: CPU µs per request without and with metrics."""
    from wsgi_reproxy import ReproxyMiddleware, parse_config
    from wsgi_reproxy.prometheus import PrometheusMetrics

    def app(environ: dict[str, object], start_response: object) -> list[bytes]:
        start_response("200 OK", [("X-Reproxy-Url", url)])  # type: ignore[operator]
        return [b""]

    config = parse_config("AllowReproxy On\n")
    variants = {
        "none": ReproxyMiddleware(app, config),
        "prometheus": ReproxyMiddleware(app, config, metrics=PrometheusMetrics()),
    }
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/f", "SCRIPT_NAME": ""}

    def batch(middleware: ReproxyMiddleware, count: int) -> float:
        started = time.process_time()
        for _ in range(count):
            body = middleware(dict(environ), lambda s, h, exc_info=None: None)
            for _ in body:
                pass
            body.close()  # type: ignore[attr-defined]
        return (time.process_time() - started) / count * 1e6

    for middleware in variants.values():  # warm: connections, label children
        batch(middleware, 300)
    per_round: dict[str, list[float]] = {name: [] for name in variants}
    order = list(variants)
    for _ in range(rounds):
        for name in order:
            per_round[name].append(batch(variants[name], requests))
        order.reverse()  # neither always runs first (caches, the node's turn)

    events = variants["prometheus"].metrics
    started = time.process_time()
    for _ in range(requests):
        events.cache_miss()
        events.try_succeeded("127.0.0.1:1")
        events.transfer_started()
        events.transfer_ended()
        events.reproxy_finished("served", 200, 1024, 0.0005, 0.001)
    per_events = (time.process_time() - started) / requests * 1e6
    return {"rounds": per_round, "events_us": per_events}


def _child(multiprocess: bool, url: str, rounds: int, requests: int) -> Any:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with tempfile.TemporaryDirectory() as directory:
        if multiprocess:
            env["PROMETHEUS_MULTIPROC_DIR"] = directory
        out = subprocess.run(
            [sys.executable, __file__, "--child", url, str(rounds), str(requests)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        ).stdout
    return json.loads(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        url, rounds, requests = args.child
        print(json.dumps(measure(url, int(rounds), int(requests))))
        return 0

    rounds, requests = (5, 500) if args.quick else (15, 1000)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    storage = subprocess.Popen(
        [sys.executable, "-c", _STORAGE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert storage.stdout is not None
        url = storage.stdout.readline().strip()
        results = {
            mode: _child(mode == "multiprocess", url, rounds, requests)
            for mode in ("single-process", "multiprocess")
        }
    finally:
        assert storage.stdin is not None
        storage.stdin.close()
        storage.wait(timeout=10)

    load = os.getloadavg()[0]
    print(f"1 KiB reproxy, CPU µs per request, {rounds} rounds x {requests}")
    print(f"(middleware called in-process; load average {load:.1f})")
    print(f"{'prometheus_client':<18}{'none':>8}{'metrics':>9}{'diff':>8}{'events':>8}")
    for mode, result in results.items():
        none, metrics = result["rounds"]["none"], result["rounds"]["prometheus"]
        diff = statistics.median(m - n for n, m in zip(none, metrics, strict=True))
        print(
            f"{mode:<18}{statistics.median(none):>8.1f}"
            f"{statistics.median(metrics):>9.1f}{diff:>+8.1f}"
            f"{result['events_us']:>8.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
