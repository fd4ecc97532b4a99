"""The slow-client scenario (issue 12): N phones downloading at once.

``benchmarks/run --slow`` (``--slow --quick`` while developing) starts the
storage node, the backend, perlbal, nginx and wsgi_reproxy under
``wsgi-reproxy serve``'s defaults, then, for each N and each system in
turn, runs :mod:`_bench.slowclient` (one asyncio process) with N
concurrent downloads of a 1 MiB file at 20-100 kB/s, and meanwhile:

- asks for ``/ok/1k`` every 100 ms over a fresh connection (latency p50/p99,
  errors: a status other than 200, a wrong length, no answer in 10 s);
- every 250 ms sums ``VmRSS`` over the serving process tree (the front
  only: nginx's master and workers, perlbal's process, gunicorn's arbiter
  and workers; the perlbal/nginx backend answers short requests and is not
  per-download memory) and counts ESTABLISHED connections to the storage
  node's port in ``/proc/net/tcp``.

Per system and N it reports downloads served byte-exact, errors, the peak
number in flight, kB of RSS per download (RSS at the peak in flight minus
the idle RSS before, divided by that count), peak storage connections, CPU
(front and backend, % of one core over the phase) and the 1 KiB p50/p99.

Everything runs in a network namespace of its own (``unshare --net``, as
root; the driver re-executes itself there) whose ``net.ipv4.tcp_wmem``
caps a socket's send buffer at 128 KiB.  On loopback the kernel otherwise
grows each send buffer to 4 MiB (the machine's ``tcp_wmem`` maximum; a
WAN link's bandwidth-delay product keeps it far smaller), which would
swallow most of a 1 MiB download and leave no server anything to hold.
The machine's own settings are not touched.  Without ``unshare`` the run
goes ahead in the machine's namespace and the report says so.

The anchors use their default buffers here (nginx ``proxy_buffers 8 4k``,
perlbal ``buffer_size_reproxy_url`` 50k): the throughput run's 8 MiB of
nginx buffers per request would measure a configuration nobody runs for
thousands of slow clients.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from statistics import median
from typing import Any

from . import apache, servers
from .procs import Proc, Procs, cpu_seconds, free_ports, rss_kib, wait_for_port

SLOW_FILE = "slow"
SLOW_SIZE = 1024 * 1024
BIG_FILE = "slow_big"
BIG_SIZE = 16 * 1024 * 1024
CAPACITY_N = 32

#: Each system's RSS (KiB) before its first phase.
IDLE_RSS: dict[str, int] = {}
FULL_COUNTS = (100, 1000, 5000)
QUICK_COUNTS = (100, 1000)


#: Set in the environment of the driver re-executed in its namespace.
NETNS_ENV = "BENCH_SLOW_NETNS"

#: The namespace's send-buffer sizes: min, default, max (bytes).
TCP_WMEM = "4096 16384 131072"


def can_unshare() -> bool:
    return os.geteuid() == 0 and bool(shutil.which("unshare") and shutil.which("ip"))


def reexec_in_netns(argv: list[str]) -> int:
    """Run ``python -m _bench ARGV`` again inside a new network namespace."""
    env = {**os.environ, NETNS_ENV: "1"}
    cmd = ["unshare", "--net", "--", sys.executable, "-m", "_bench", *argv]
    return subprocess.call(cmd, env=env)


def prepare_netns() -> str:
    """Inside our namespace: loopback up, small send buffers; a description."""
    if NETNS_ENV not in os.environ:
        return (
            "the machine's network namespace (tcp_wmem "
            + Path("/proc/sys/net/ipv4/tcp_wmem").read_text().strip().replace("\t", " ")
            + ")"
        )
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    Path("/proc/sys/net/ipv4/tcp_wmem").write_text(TCP_WMEM)
    return f"a private network namespace, tcp_wmem {TCP_WMEM}"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- the systems, configured for many slow clients --------------------------------


def _front_nginx(
    procs: Procs, work: Path, port: int, backend: int, storage: int
) -> Proc:
    """nginx with X-Accel-Redirect, default proxy buffers, many connections."""
    conf = (
        servers.nginx_main(work, "nginx_slow", servers.WORKERS, 16384)
        + f"""
    upstream app {{ server 127.0.0.1:{backend}; keepalive 32; }}
    upstream storage {{ server 127.0.0.1:{storage}; keepalive 32; }}
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location / {{ proxy_pass http://app; }}
        location ~ ^/_reproxy/(?<rp_host>[a-z_]+)(?<rp_path>/.*)$ {{
            internal;
            proxy_pass http://$rp_host$rp_path;
        }}
    }}
}}
"""
    )
    path = work / "nginx_slow" / "nginx.conf"
    path.write_text(conf)
    proc = procs.start("nginx_slow", servers.nginx_argv(path))
    wait_for_port(port, proc)
    return proc


def _front_wsgi_reproxy(
    procs: Procs, work: Path, port: int, env: dict[str, str]
) -> Proc:
    """``wsgi-reproxy serve`` with its defaults, 2 workers like nginx's."""
    conf = work / "slow_reproxy.conf"
    conf.write_text("<Location />\n  AllowReproxy On\n</Location>\n")
    argv = [
        sys.executable,
        "-m",
        "wsgi_reproxy",
        "serve",
        str(conf),
        "_bench.app:app",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(servers.WORKERS),
        "--",
        "--backlog",
        "4096",
        "--log-level",
        "warning",
        "--no-control-socket",
    ]
    proc = procs.start("wr_serve", argv, env=env)
    wait_for_port(port, proc, timeout=40)
    return proc


def start(procs: Procs, work: Path) -> tuple[list[servers.System], int]:
    """Every system; returns them and the storage port."""
    sizes = {SLOW_FILE: SLOW_SIZE, BIG_FILE: BIG_SIZE, "1k": 1024}
    servers.make_files(work / "files", sizes)
    names = ("storage", "backend", "perlbal", "nginx", "wr", "apache", "dead")
    port = dict(zip(names, free_ports(len(names)), strict=True))
    env = {
        "BENCH_STORAGE_PORT": str(port["storage"]),
        "BENCH_DEAD_PORT": str(port["dead"]),
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(servers.BENCH_DIR), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    storage = servers.start_storage(procs, work, port["storage"], connections=16384)
    del storage
    backend = servers.start_backend(procs, port["backend"], env)
    S = servers.System
    systems = [
        S(
            "perlbal",
            "perlbal",
            port["perlbal"],
            servers.start_perlbal(
                procs,
                work,
                port["perlbal"],
                port["backend"],
                name="perlbal_slow",
                tuned_buffers=False,
            ),
            "/ok",
            True,
            backend,
        ),
        S(
            "nginx",
            "nginx",
            port["nginx"],
            _front_nginx(procs, work, port["nginx"], port["backend"], port["storage"]),
            "/ok",
            True,
            backend,
        ),
        S(
            "wr_serve",
            "wsgi_reproxy (serve defaults)",
            port["wr"],
            _front_wsgi_reproxy(procs, work, port["wr"], env),
            "/ok",
            True,
        ),
    ]
    missing = apache.available()
    if missing:
        log(f"Apache + mod_wsgi left out: {missing}")
    else:
        proc = apache.start(procs, port["apache"], env, servers.BENCH_DIR)
        label = f"Apache mod_wsgi ({apache.PROCESSES}x{apache.THREADS} threads)"
        systems.append(S("apache", label, port["apache"], proc, "/ok", True))
    procs.remember_workers()
    return systems, port["storage"]


# -- one phase ----------------------------------------------------------------------


def storage_connections(storage_port: int) -> int:
    """ESTABLISHED connections whose remote end is the storage node."""
    want = f":{storage_port:04X}"
    count = 0
    try:
        with open("/proc/net/tcp") as table:
            next(table)
            for line in table:
                fields = line.split(None, 4)
                if fields[3] == "01" and fields[2].endswith(want):
                    count += 1
    except OSError:
        return -1
    return count


class Probe(threading.Thread):
    """GET ``url``'s 1 KiB every *interval* over a fresh connection."""

    def __init__(self, port: int, path: str, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.port, self.path, self.interval = port, path, interval
        self.latencies: list[float] = []
        self.errors = 0
        self.stop = threading.Event()

    def one(self) -> float:
        start = time.perf_counter()
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(
                f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            data = b""
            while piece := s.recv(65536):
                data += piece
        head, _, body = data.partition(b"\r\n\r\n")
        if head.split(b" ", 2)[1:2] != [b"200"] or len(body) != 1024:
            raise ValueError(head[:40])
        return (time.perf_counter() - start) * 1e3

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                self.latencies.append(self.one())
            except (OSError, ValueError):
                self.errors += 1


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def phase(
    s: servers.System,
    count: int,
    storage_port: int,
    sha: str,
    *,
    name: str = SLOW_FILE,
    size: int = SLOW_SIZE,
    deadline: float | None = None,
) -> dict[str, Any]:
    """N slow downloads of *name* from *s*; everything measured meanwhile."""
    tree = s.proc.tree
    # The RSS of the system fresh after its warm-up, not after the last
    # phase: allocators keep freed memory, which would make the next
    # phase's downloads look free.
    idle_rss = IDLE_RSS.setdefault(s.key, sum(rss_kib(p) for p in tree()))
    pids = s.pids()
    cpu0 = sum(cpu_seconds(p) for p in pids)
    ramp = max(2.0, count / 1000)
    if deadline is None:
        deadline = ramp + 2 * size / 20_000 + 15
    argv = [
        sys.executable, "-m", "_bench.slowclient",
        "--port", str(s.port), "--path", f"{s.path_prefix}/{name}",
        "--count", str(count), "--size", str(size), "--sha256", sha,
        "--ramp", str(ramp), "--deadline", str(deadline),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(servers.BENCH_DIR)}
    client = subprocess.Popen(
        argv, stdout=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    state: dict[str, Any] = {"active": 0, "receiving": 0, "final": None}

    def read() -> None:
        assert client.stdout is not None
        for line in client.stdout:
            msg = json.loads(line)
            if msg.get("final"):
                state["final"] = msg
            else:
                state["active"] = msg["active"]
                state["receiving"] = msg["receiving"]
                state["receiving_peak"] = max(
                    state.get("receiving_peak", 0), msg["receiving"]
                )

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    probe = Probe(s.port, f"{s.path_prefix}/1k")
    probe.start()
    samples: list[tuple[int, int, int]] = []
    t0 = time.monotonic()
    try:
        while client.poll() is None:
            time.sleep(0.25)
            rss = sum(rss_kib(p) for p in tree())
            conns = storage_connections(storage_port)
            samples.append((state["receiving"], rss, conns))
            if time.monotonic() - t0 > deadline + 30:
                client.kill()
        client.wait()
    finally:
        probe.stop.set()
        probe.join()
        reader.join(5)
        if client.poll() is None:
            client.kill()
    seconds = time.monotonic() - t0
    cpu = sum(cpu_seconds(p) for p in s.pids()) - cpu0
    final = state["final"] or {
        "served": 0,
        "errors": count,
        "reasons": {"no result": 1},
    }
    # Per download: RSS above idle when the most downloads were being
    # received at once, divided by that number (connections still waiting
    # to be accepted cost the server nothing and are not counted).
    peak = max((a for a, _, _ in samples), default=0)
    at_peak = [rss for a, rss, _ in samples if a == peak and peak]
    rss_peak = median(at_peak) if at_peak else idle_rss
    per_download_kb = (rss_peak - idle_rss) * 1.024 / peak if peak else float("nan")
    return {
        "count": count,
        "served": final["served"],
        "errors": final["errors"],
        "reasons": final["reasons"],
        "peak_in_flight": peak,
        "receiving_peak": state.get("receiving_peak", 0),
        "idle_rss_mib": idle_rss / 1024,
        "rss_peak_mib": rss_peak / 1024,
        "kb_per_download": per_download_kb,
        "storage_conns_peak": max((c for _, _, c in samples), default=0),
        "cpu_pct": cpu / seconds * 100,
        "seconds": seconds,
        "p50_ms": percentile(probe.latencies, 0.50),
        "p99_ms": percentile(probe.latencies, 0.99),
        "probes": len(probe.latencies),
        "probe_errors": probe.errors,
    }


def settle(storage_port: int, timeout: float = 30) -> None:
    """Wait until no connection to the storage node is left over."""
    deadline = time.monotonic() + timeout
    while storage_connections(storage_port) > 64 and time.monotonic() < deadline:
        time.sleep(0.5)


def run(args: argparse.Namespace, procs: Procs, work: Path) -> dict[str, Any]:
    counts = QUICK_COUNTS if args.quick else FULL_COUNTS
    if args.slow_counts:
        counts = tuple(int(c) for c in args.slow_counts.split(","))
    systems, storage_port = start(procs, work)
    if args.slow_systems:
        keep = args.slow_systems.split(",")
        systems = [s for s in systems if s.key in keep]
    sha = hashlib.sha256((work / "files" / SLOW_FILE).read_bytes()).hexdigest()
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "load_before": os.getloadavg(),
        "size": SLOW_SIZE,
        "counts": list(counts),
        "systems": {s.key: s.label for s in systems},
        "phases": [],
    }
    for s in systems:  # warm-up: imports, pools, backend threads
        for _ in range(8):
            Probe(s.port, f"{s.path_prefix}/1k").one()
    plan = [(count, s) for count in counts for s in systems if s.key != "apache"]
    # mod_wsgi holds threads x processes downloads at a time and queues the
    # rest (the "held at once" phase below shows it): N = 100 only.
    plan = [(100, s) for s in systems if s.key == "apache"] + plan
    for count, s in plan:
        settle(storage_port)
        log(f"slow clients: {s.label}, N={count}")
        result = phase(s, count, storage_port, sha)
        result["system"] = s.key
        results["phases"].append(result)
        log(
            f"  served {result['served']}/{count}, errors {result['errors']}, "
            f"{result['kb_per_download']:.1f} kB/download, storage conns "
            f"{result['storage_conns_peak']}, CPU {result['cpu_pct']:.0f}%, "
            f"1 KiB p50 {result['p50_ms']:.1f} ms p99 {result['p99_ms']:.1f} ms"
            f" ({result['probe_errors']} errors) {result['reasons'] or ''}"
        )
        procs.remember_workers()
    # How many downloads a system holds at once: 32 clients of a file far
    # bigger than the socket buffers, for 30 s (none finishes): how many
    # get their first bytes, and what 1 KiB requests see meanwhile.
    big_sha = hashlib.sha256((work / "files" / BIG_FILE).read_bytes()).hexdigest()
    results["capacity"] = []
    for s in systems:
        if s.key not in ("apache", "wr_serve"):
            continue
        settle(storage_port)
        log(f"held at once: {s.label}, {CAPACITY_N} x {BIG_SIZE >> 20} MiB")
        result = phase(
            s, CAPACITY_N, storage_port, big_sha,
            name=BIG_FILE, size=BIG_SIZE, deadline=30,
        )  # fmt: skip
        result["system"] = s.key
        results["capacity"].append(result)
        log(
            f"  receiving at once {result['receiving_peak']}/{CAPACITY_N}, 1 KiB "
            f"p50 {result['p50_ms']:.1f} ms p99 {result['p99_ms']:.1f} ms, "
            f"{result['probe_errors']} errors"
        )
    results["load_after"] = os.getloadavg()
    return results
