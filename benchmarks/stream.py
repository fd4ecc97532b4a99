"""Streaming throughput and memory of one reproxied download (issue 3).

Run::

    python benchmarks/stream.py              # 100 MiB x3 per chunk size, 1 GiB
    python benchmarks/stream.py --quick      # 100 MiB x1, no 1 GiB

What it does, all on 127.0.0.1: nginx (``sendfile on``) serves generated
files from a scratch directory; gunicorn with one ``sync`` worker serves a
tiny app that answers ``X-Reproxy-Url`` for every path, wrapped in
:class:`~wsgi_reproxy.ReproxyMiddleware`.  For each ``chunk_size`` (64 KiB,
256 KiB, 1 MiB) it downloads the 100 MiB file through gunicorn and directly
from nginx, interleaved, and reports MiB/s and the ratio; then, with the
default chunk size, it streams 1 GiB while sampling the worker's ``VmRSS``
(``/proc/PID/status``) every 20 ms and reports the peak growth.

Goals (issue 3): through gunicorn >= 0.5x the direct download; RSS growth
during the 1 GiB stream < 32 MiB.

The same file is also gunicorn's app: ``stream:make_app()`` (gunicorn
factory syntax) builds the wrapped app from ``STREAM_STORAGE`` and
``STREAM_CHUNK`` in the environment.  Helpers (nginx config, process
bookkeeping, the measuring client) come from ``benchmarks/_bench``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
MIB = 1024**2
CHUNK_SIZES = (64 * 1024, 256 * 1024, MIB)


def make_app() -> Any:
    """The gunicorn app: every path is reproxied to the storage node."""
    from wsgi_reproxy import ReproxyMiddleware, parse_config

    storage = os.environ["STREAM_STORAGE"]
    chunk = int(os.environ["STREAM_CHUNK"])

    def backend(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        url = storage + environ.get("PATH_INFO", "/")
        start_response(
            "200 OK", [("X-Reproxy-Url", url), ("Content-Type", "text/plain")]
        )
        return [b"the app's body is never sent\n"]

    config = parse_config("<Location />\n    AllowReproxy On\n</Location>\n")
    return ReproxyMiddleware(backend, config, chunk_size=chunk)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="no 1 GiB stream")
    parser.add_argument("--rounds", type=int, default=3, help="100 MiB rounds")
    parser.add_argument(
        "--chunks",
        default=",".join(str(c // 1024) for c in CHUNK_SIZES),
        help="chunk sizes in KiB, comma-separated (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    chunk_sizes = [int(c) * 1024 for c in args.chunks.split(",")]
    rounds = args.rounds

    sys.path.insert(0, str(BENCH_DIR))
    from _bench.measure import RssSampler, download
    from _bench.procs import Procs, descendants, free_ports, wait_for_port
    from _bench.servers import make_files, start_storage

    with tempfile.TemporaryDirectory(prefix="wsgi-reproxy-stream-") as tmp:
        work = Path(tmp)
        sizes = (
            {"100m": 100 * MIB} if args.quick else {"100m": 100 * MIB, "1g": 1024 * MIB}
        )
        make_files(work / "files", sizes)
        procs = Procs(work)
        try:
            storage_port, *ports = free_ports(1 + len(chunk_sizes))
            start_storage(procs, work, storage_port)
            storage = f"http://127.0.0.1:{storage_port}"
            fronts = {}
            for chunk, port in zip(chunk_sizes, ports, strict=True):
                env = {"STREAM_STORAGE": storage, "STREAM_CHUNK": str(chunk)}
                argv = [
                    sys.executable, "-m", "gunicorn", "--chdir", str(BENCH_DIR),
                    "--bind", f"127.0.0.1:{port}", "--workers", "1",
                    "--worker-class", "sync", "--timeout", "300",
                    "--log-level", "warning", "stream:make_app()",
                ]  # fmt: skip
                proc = procs.start(f"gunicorn-{chunk}", argv, env=env)
                wait_for_port(port, proc)
                fronts[chunk] = (port, proc)

            direct: list[float] = []
            through: dict[int, list[float]] = {c: [] for c in chunk_sizes}
            for _ in range(rounds):
                direct.append(download(f"{storage}/100m", expect_size=100 * MIB).mib_s)
                for chunk, (port, _proc) in fronts.items():
                    url = f"http://127.0.0.1:{port}/100m"
                    through[chunk].append(download(url, expect_size=100 * MIB).mib_s)

            d = statistics.median(direct)
            print(f"100 MiB, median of {rounds}, one sync worker, nginx storage")
            print(f"  direct from nginx:        {d:8.0f} MiB/s")
            for chunk, values in through.items():
                m = statistics.median(values)
                print(
                    f"  through gunicorn, {chunk // 1024:5d} KiB: "
                    f"{m:8.0f} MiB/s  {m / d:.2f}x direct"
                )

            if not args.quick:
                from wsgi_reproxy.fetch.fetcher import DEFAULT_CHUNK_SIZE

                port, proc = fronts[DEFAULT_CHUNK_SIZE]
                workers = descendants(proc.pid)
                gd = download(f"{storage}/1g", expect_size=1024 * MIB).mib_s
                with RssSampler(lambda: workers) as rss:
                    g = download(f"http://127.0.0.1:{port}/1g", expect_size=1024 * MIB)
                print(f"1 GiB, chunk {DEFAULT_CHUNK_SIZE // 1024} KiB (the default)")
                print(f"  direct from nginx:        {gd:8.0f} MiB/s")
                ratio = g.mib_s / gd
                print(f"  through gunicorn:         {g.mib_s:8.0f} MiB/s  {ratio:.2f}x")
                print(
                    f"  worker RSS: {rss.baseline / 1024:.1f} MiB before, "
                    f"peak growth {rss.growth_mib:.1f} MiB"
                )
        finally:
            procs.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
