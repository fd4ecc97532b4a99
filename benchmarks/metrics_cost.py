"""What ``metrics=`` costs on the 1 KiB path (issue 15).

Run (about 40 s on 2 shared cores; needs ``prometheus_client``)::

    python benchmarks/metrics_cost.py            # 7 rounds x 2,000 requests
    python benchmarks/metrics_cost.py --quick    # 3 rounds x 1,000

A minimal keep-alive storage node in its own process answers every GET with
the same 1 KiB on 127.0.0.1.  Each measurement
is a fresh Python process that wraps a one-line WSGI app answering
``X-Reproxy-Url`` in ``ReproxyMiddleware`` and calls it directly (no WSGI
server, so the middleware's own cost is not diluted), reading and closing
every body; it reports the CPU time per request (``time.process_time``: the
storage node's work is in the other process).  Three variants, interleaved
round by round so drift hits all alike:

``none``          the default ``metrics=None`` (the no-op);
``prometheus``    ``PrometheusMetrics()``, one process;
``multiprocess``  the same with ``PROMETHEUS_MULTIPROC_DIR`` set (each value
                  an ``mmap`` write), as under ``serve --metrics-bind``.

Printed: the median per variant and its difference to ``none``, in
microseconds and percent, and the cost of one reproxy's metrics calls
measured alone.
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

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("none", "prometheus", "multiprocess")

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


def measure(variant: str, url: str, requests: int) -> dict[str, float]:
    """Run in a child process: CPU µs per request, and per event set."""
    from wsgi_reproxy import ReproxyMiddleware, parse_config

    metrics = None
    if variant != "none":
        from wsgi_reproxy.prometheus import PrometheusMetrics

        metrics = PrometheusMetrics()

    def app(environ: dict[str, object], start_response: object) -> list[bytes]:
        start_response("200 OK", [("X-Reproxy-Url", url)])  # type: ignore[operator]
        return [b""]

    middleware = ReproxyMiddleware(
        app, parse_config("AllowReproxy On\n"), metrics=metrics
    )
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/f", "SCRIPT_NAME": ""}

    def one() -> None:
        body = middleware(dict(environ), lambda status, headers, exc_info=None: None)
        for _ in body:
            pass
        body.close()  # type: ignore[attr-defined]

    for _ in range(300):  # warm: connections, caches, label children
        one()
    started = time.process_time()
    for _ in range(requests):
        one()
    per_request = (time.process_time() - started) / requests * 1e6

    events = middleware.metrics
    started = time.process_time()
    for _ in range(requests):
        events.cache_miss()
        events.try_succeeded("127.0.0.1:1")
        events.transfer_started()
        events.transfer_ended()
        events.reproxy_finished("served", 200, 1024, 0.0005, 0.001)
    per_events = (time.process_time() - started) / requests * 1e6
    return {"request_us": per_request, "events_us": per_events}


def _child(variant: str, url: str, requests: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with tempfile.TemporaryDirectory() as directory:
        if variant == "multiprocess":
            env["PROMETHEUS_MULTIPROC_DIR"] = directory
        out = subprocess.run(
            [sys.executable, __file__, "--child", variant, url, str(requests)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        variant, url, requests = args.child
        print(json.dumps(measure(variant, url, int(requests))))
        return 0

    rounds, requests = (3, 1000) if args.quick else (7, 2000)
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
        results: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
        for _ in range(rounds):
            for variant in VARIANTS:
                results[variant].append(_child(variant, url, requests))
    finally:
        assert storage.stdin is not None
        storage.stdin.close()
        storage.wait(timeout=10)

    def median(variant: str, key: str) -> float:
        return statistics.median(r[key] for r in results[variant])

    base = median("none", "request_us")
    load = os.getloadavg()[0]
    print(f"1 KiB reproxy, CPU per request, median of {rounds} x {requests}")
    print(f"(middleware called in-process; load average {load:.1f})")
    print(f"{'variant':<14}{'request µs':>12}{'vs none':>10}{'':>8}{'events µs':>11}")
    for variant in VARIANTS:
        value = median(variant, "request_us")
        delta = value - base
        print(
            f"{variant:<14}{value:>12.1f}{delta:>+10.1f}{delta / base:>+8.1%}"
            f"{median(variant, 'events_us'):>11.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
