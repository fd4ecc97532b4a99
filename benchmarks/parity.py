"""Perlbal parity benchmark (issue 5): what the cache and X-Reproxy-File buy.

Two questions, on 127.0.0.1 only, under gunicorn:

1. **Requests/s for a 1 KiB object** reproxied with ``X-Reproxy-Url``,
   without and with ``X-Reproxy-Cache-For`` (a hit skips the application).
   The application is trivial here, so it is also run with a simulated
   permission check (``--app-ms`` of CPU in the view, as a framework and its
   ORM spend it): that is the cost a cache hit saves in a real site.
2. **MiB/s for a 100 MiB object** served with ``X-Reproxy-File`` (gunicorn's
   ``wsgi.file_wrapper``: ``sendfile`` from the page cache) against
   ``X-Reproxy-Url`` for the same file on an nginx storage node (one more
   hop: nginx -> urllib3 -> gunicorn -> client), with the storage node
   downloaded directly as the ceiling.

Run::

    python3 benchmarks/parity.py            # ~2 minutes
    python3 benchmarks/parity.py --quick    # ~40 s

It reuses the process, port and measurement helpers of the side-by-side
benchmark (``benchmarks/_bench``: nginx storage node, ``wrk``, a raw-socket
download client that checks status and length), stops every process it
started by PID, and writes ``benchmarks/results/parity-WORKER.{md,json}``.

The same file is gunicorn's application: ``parity:application`` is the
middleware around :func:`app`, configured from the environment the driver
sets (``PARITY_STORAGE``, ``PARITY_FILES``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from statistics import median
from typing import Any
from urllib.parse import parse_qs

HERE = Path(__file__).resolve().parent

# -- the application gunicorn runs -------------------------------------------------

STORAGE = os.environ.get("PARITY_STORAGE", "http://127.0.0.1:9")
FILES = os.environ.get("PARITY_FILES", str(HERE / ".work" / "parity" / "files"))


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """``/url/NAME``, ``/cached/NAME`` and ``/file/NAME``; ``?ms=N`` first
    spends N milliseconds of CPU, standing in for a permission check."""
    kind, _, name = environ.get("PATH_INFO", "").lstrip("/").partition("/")
    ms = parse_qs(environ.get("QUERY_STRING", "")).get("ms")
    if ms:
        # Busy, holding the GIL, like the Python of a framework view and its
        # ORM; a sleep would release the GIL and cost a threaded worker
        # nothing, which is not what a real permission check costs.
        end = time.perf_counter() + float(ms[0]) / 1000
        while time.perf_counter() < end:
            pass
    headers = [("Content-Type", "application/octet-stream")]
    if kind == "url":
        headers.append(("X-Reproxy-Url", f"{STORAGE}/{name}"))
    elif kind == "cached":
        headers.append(("X-Reproxy-Url", f"{STORAGE}/{name}"))
        headers.append(("X-Reproxy-Cache-For", "3600; Content-Type"))
    elif kind == "file":
        headers.append(("X-Reproxy-File", f"{FILES}/{name}"))
    else:
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    start_response("200 OK", headers)
    return [b""]


def _application() -> Any:
    from wsgi_reproxy import ReproxyMiddleware, parse_config

    config = parse_config(
        f'AllowReproxy On\nReproxyFileRoot "{FILES}"\nPreserveHeaders Content-Type\n',
        filename="parity.conf",
    )
    return ReproxyMiddleware(app, config)


if os.environ.get("PARITY_FILES"):  # only inside the gunicorn workers
    application = _application()


# -- the driver ----------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short development run")
    p.add_argument(
        "--worker", default="gthread", choices=["gthread", "sync"], help="gunicorn"
    )
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    p.add_argument("--threads", type=int, default=8, help="threads per gthread worker")
    p.add_argument("--connections", type=int, default=16, help="wrk connections")
    p.add_argument("--app-ms", type=float, default=1.0, help="CPU ms per app call")
    p.add_argument("--out", type=Path, default=HERE / "results", help="results dir")
    args = p.parse_args(argv)
    args.rounds, args.wrk_s = (2, 3.0) if args.quick else (5, 5.0)
    return args


def start_gunicorn(
    procs: Any, args: argparse.Namespace, port: int, env: dict[str, str]
) -> Any:
    from _bench.procs import wait_for_port

    argv = [
        sys.executable, "-m", "gunicorn",
        "--chdir", str(HERE),
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(args.workers),
        "--worker-class", args.worker,
        "--keep-alive", "30",
        "--timeout", "300",
        "--backlog", "4096",
        "--log-level", "warning",
    ]  # fmt: skip
    if args.worker == "gthread":
        argv += ["--threads", str(args.threads)]
    proc = procs.start("parity-gunicorn", [*argv, "parity:application"], env=env)
    wait_for_port(port, proc)
    return proc


def run(args: argparse.Namespace) -> dict[str, Any]:
    from _bench import servers
    from _bench.measure import RssSampler, download, wrk
    from _bench.procs import Procs, free_ports

    workdir = HERE / ".work" / "parity"
    sizes = {"1k": 1024, "100m": 100 * 1024**2}
    servers.make_files(workdir / "files", sizes)
    procs = Procs(workdir)
    results: dict[str, Any] = {"rps": {}, "mib_s": {}, "rss_growth_mib": {}}
    try:
        storage_port, app_port = free_ports(2)
        servers.start_storage(procs, workdir, storage_port)
        env = {
            "PARITY_STORAGE": f"http://127.0.0.1:{storage_port}",
            "PARITY_FILES": str(workdir / "files"),
        }
        gunicorn = start_gunicorn(procs, args, app_port, env)
        procs.remember_workers()
        app_url = f"http://127.0.0.1:{app_port}"
        storage_url = f"http://127.0.0.1:{storage_port}"

        # 1. Requests/s, 1 KiB: interleaved rounds, medians.
        rps_cases = {
            "direct": f"{storage_url}/1k",
            "url": f"{app_url}/url/1k",
            "cached": f"{app_url}/cached/1k",
            f"url_app{args.app_ms:g}ms": f"{app_url}/url/1k?ms={args.app_ms:g}",
            f"cached_app{args.app_ms:g}ms": f"{app_url}/cached/1k?ms={args.app_ms:g}",
        }
        for url in rps_cases.values():
            download(url, expect_size=1024)  # warm the pools and the caches
        samples: dict[str, list[float]] = {k: [] for k in rps_cases}
        for r in range(args.rounds):
            for key, url in rps_cases.items():
                res = wrk(
                    url, connections=args.connections, threads=2, seconds=args.wrk_s
                )
                samples[key].append(res.rps)
                log(f"round {r + 1}: {key:>20}: {res.rps:9.0f} req/s")
        results["rps"] = {k: median(v) for k, v in samples.items()}
        results["rps_samples"] = samples

        # 2. MiB/s, 100 MiB: X-Reproxy-File against X-Reproxy-Url.
        mib_cases = {
            "direct": f"{storage_url}/100m",
            "file": f"{app_url}/file/100m",
            "url": f"{app_url}/url/100m",
        }
        speeds: dict[str, list[float]] = {k: [] for k in mib_cases}
        growth: dict[str, list[float]] = {k: [] for k in mib_cases}
        for r in range(args.rounds):
            for key, url in mib_cases.items():
                pids = gunicorn.tree if key != "direct" else (lambda: [])
                with RssSampler(pids) as rss:
                    d = download(url, expect_size=sizes["100m"])
                speeds[key].append(d.mib_s)
                growth[key].append(rss.growth_mib)
                log(f"round {r + 1}: {key:>20}: {d.mib_s:9.0f} MiB/s")
        results["mib_s"] = {k: median(v) for k, v in speeds.items()}
        results["mib_s_samples"] = speeds
        results["rss_growth_mib"] = {k: max(v) for k, v in growth.items()}
    finally:
        procs.stop_all()
    return results


def report(args: argparse.Namespace, results: dict[str, Any]) -> str:
    rps, mib = results["rps"], results["mib_s"]
    ms = f"{args.app_ms:g}"
    worker = f"{args.workers} {args.worker} workers" + (
        f" x {args.threads} threads" if args.worker == "gthread" else ""
    )
    lines = [
        "# Perlbal parity: X-Reproxy-Cache-For and X-Reproxy-File",
        "",
        f"gunicorn {worker}, nginx storage node, wrk -c{args.connections} "
        f"-t2 for {args.wrk_s:g} s, {args.rounds} interleaved rounds, medians; "
        f"127.0.0.1, {os.cpu_count()} CPUs shared with whatever else runs.",
        "",
        "## Requests/s, 1 KiB object",
        "",
        "| app work | X-Reproxy-Url | + X-Reproxy-Cache-For (hit) | ratio |",
        "| --- | ---: | ---: | ---: |",
        f"| none | {rps['url']:.0f} | {rps['cached']:.0f} "
        f"| {rps['cached'] / rps['url']:.2f}x |",
        f"| {ms} ms of CPU in the app (a permission check) "
        f"| {rps[f'url_app{ms}ms']:.0f} "
        f"| {rps[f'cached_app{ms}ms']:.0f} "
        f"| {rps[f'cached_app{ms}ms'] / rps[f'url_app{ms}ms']:.2f}x |",
        f"| storage node directly (ceiling) | {rps['direct']:.0f} | | |",
        "",
        "A hit saves the application call and nothing else: the target is",
        "still fetched. With a trivial application that is a few microseconds",
        "of a few hundred, below this machine's noise; with a view that spends",
        "CPU, as a permission check does, hits run at the rate of the proxy alone.",
        "",
        "## MiB/s, one 100 MiB download",
        "",
        "| path | MiB/s | vs direct | worker RSS growth |",
        "| --- | ---: | ---: | ---: |",
    ]
    growth = results["rss_growth_mib"]
    for key, label in (
        ("file", "X-Reproxy-File (sendfile)"),
        ("url", "X-Reproxy-Url (same file via nginx)"),
        ("direct", "storage node directly (ceiling)"),
    ):
        rss = f"{growth[key]:.1f} MiB" if key != "direct" else ""
        lines.append(
            f"| {label} | {mib[key]:.0f} | {mib[key] / mib['direct']:.2f} | {rss} |"
        )
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    sys.path.insert(0, str(HERE))  # for _bench
    results = run(args)
    text = report(args, results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"parity-{args.worker}.md").write_text(text)
    (args.out / f"parity-{args.worker}.json").write_text(
        json.dumps(
            {"args": {k: str(v) for k, v in vars(args).items()}, **results}, indent=2
        )
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
