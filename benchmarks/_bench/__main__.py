"""Driver: start everything, measure round by round, write the report.

Run through ``benchmarks/run`` (which installs what is missing first)::

    benchmarks/run            # full run, ~10 minutes on 2 cores
    benchmarks/run --quick    # fewer rounds, short wrk, no 1 GiB

Systems are interleaved round by round (direct, perlbal, nginx,
wsgi_reproxy sync, gthread, gevent, then again) so drift on a shared
machine hits all of them alike; the report uses medians.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

from . import report, servers
from .measure import MeasureError, RssSampler, download, wrk
from .procs import Procs, cpu_seconds

BENCH_DIR = servers.BENCH_DIR


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="development run")
    p.add_argument("--rounds", type=int, help="rounds for 100 MiB (default 15)")
    p.add_argument("--wrk-seconds", type=float, help="wrk duration (default 8)")
    p.add_argument("--no-1g", action="store_true", help="skip the 1 GiB phase")
    p.add_argument(
        "--without-wsgi-reproxy",
        action="store_true",
        help="anchors only (while the middleware is a placeholder)",
    )
    p.add_argument(
        "--slow",
        action="store_true",
        help="the slow-client scenario instead (N = 100, 1,000, 5,000; with "
        "--quick 100 and 1,000): results/slow.{md,json,png}",
    )
    p.add_argument("--slow-counts", metavar="N,N", help="the slow scenario's N values")
    p.add_argument(
        "--slow-systems",
        metavar="KEY,KEY",
        help="only these of perlbal,nginx,wr_serve (development)",
    )
    p.add_argument("--note", default="", help="a line added to latest.md")
    p.add_argument(
        "--at",
        metavar="REV",
        help="measure wsgi_reproxy as committed at REV (e.g. HEAD), not the "
        "working tree, which other work may be editing",
    )
    p.add_argument(
        "--from-json",
        type=Path,
        help="only rewrite latest.md/.png from this latest.json (no measuring)",
    )
    p.add_argument(
        "--out", type=Path, default=BENCH_DIR / "results", help="results directory"
    )
    args = p.parse_args(argv)
    if args.quick:
        plan = {"r100": 3, "r1g": 0, "rwrk": 2, "wrk_s": 3.0, "lat_s": 2.0}
    else:
        plan = {"r100": 15, "r1g": 5, "rwrk": 5, "wrk_s": 8.0, "lat_s": 3.0}
    if args.rounds:
        plan["r100"] = args.rounds
    if args.wrk_seconds:
        plan["wrk_s"] = args.wrk_seconds
    if args.no_1g:
        plan["r1g"] = 0
    plan["rc1"] = plan["rwrk"]
    args.plan = plan
    return args


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def wsgi_reproxy_ready() -> str | None:
    """``None`` if the wrapped app can be built here, else why not."""
    sys.path.insert(0, str(BENCH_DIR))
    try:
        import _bench.reproxy_app  # noqa: F401
    except Exception as exc:  # a placeholder package raises anything
        return f"{type(exc).__name__}: {exc}"
    finally:
        sys.path.remove(str(BENCH_DIR))
    return None


def use_revision(rev: str, tree: Path) -> str:
    """Extract ``wsgi_reproxy/`` at *rev* into *tree* and import it from there.

    ``git archive`` only reads the repository, so this never touches the
    working tree. The servers find the copy through ``PYTHONPATH``.
    """
    # Pin the commit now: other work may move HEAD while the run lasts.
    rev = subprocess.run(
        [
            "git",
            "-C",
            str(BENCH_DIR.parent),
            "rev-parse",
            "--verify",
            rev + "^{commit}",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    archive = subprocess.run(
        [
            "git",
            "-C",
            str(BENCH_DIR.parent),
            "archive",
            "--format=tar",
            rev,
            "wsgi_reproxy",
        ],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(tree, filter="data")
        else:  # Python < 3.11.4
            tar.extractall(tree)  # our own repository's files
    path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(tree), path) if p)
    sys.path.insert(0, str(tree))
    log(f"measuring wsgi_reproxy at {rev} (extracted to {tree})")
    return rev


def start_all(args: argparse.Namespace, procs: Procs, work: Path) -> list[Any]:
    sizes = dict(servers.FILES)
    if not args.plan["r1g"]:
        sizes.pop("1g")
    log(f"files: {', '.join(sizes)} in {work / 'files'}")
    servers.make_files(work / "files", sizes)
    port = servers.ports()
    env = {
        "BENCH_STORAGE_PORT": str(port["storage"]),
        "BENCH_DEAD_PORT": str(port["dead"]),
        # An inherited PYTHONPATH comes after _bench, so that
        # ``PYTHONPATH=/path/to/other/tree benchmarks/run`` measures that
        # tree's wsgi_reproxy (the driver's own imports use it too).
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(BENCH_DIR), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    log(f"ports: {port}")
    S = servers.System
    storage = servers.start_storage(procs, work, port["storage"])
    systems = [S("direct", "direct (storage)", port["storage"], storage, "", False)]
    backend = servers.start_backend(procs, port["backend"], env)
    pb = servers.start_perlbal(procs, work, port["perlbal"], port["backend"])
    systems.append(S("perlbal", "perlbal", port["perlbal"], pb, "/ok", True, backend))
    ngx = servers.start_nginx_front(
        procs, work, port["nginx"], port["backend"], port["storage"], port["dead"]
    )
    systems.append(S("nginx", "nginx", port["nginx"], ngx, "/ok", True, backend))
    why = None if args.without_wsgi_reproxy else wsgi_reproxy_ready()
    if args.without_wsgi_reproxy or why:
        log(f"wsgi_reproxy left out: {why or '--without-wsgi-reproxy'}")
    else:
        for worker in ("sync", "gthread", "gevent"):
            key = f"wr_{worker}"
            proc = servers.start_wsgi_reproxy(procs, key, port[key], worker, env)
            label = f"wsgi_reproxy {worker}"
            systems.append(S(key, label, port[key], proc, "/ok"))
    procs.remember_workers()
    return systems


def check(systems: list[Any], files: Path) -> None:
    """Every system serves the right bytes, also with a dead first URL."""
    want = {
        name: hashlib.sha256((files / name).read_bytes()).hexdigest()
        for name in ("1k", "1m")
    }
    for s in systems:
        for failover in (False, True) if s.failover else (False,):
            for name, sha in want.items():
                url = s.url(name, failover=failover)
                got = download(url, expect_size=servers.FILES[name], digest=True)
                if got.sha256 != sha:
                    raise MeasureError(f"{url}: body differs from {files / name}")
        log(f"ok: {s.label} on 127.0.0.1:{s.port}")


def rounds(n: int, systems: list[Any], fn: Callable[[Any], None]) -> None:
    for r in range(n):
        for s in systems:
            fn(s)
        log(f"  round {r + 1}/{n} done")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.from_json:
        results = json.loads(args.from_json.read_text())
        if args.note:
            results["note"] = args.note
        write_results(results, args.out)
        return 0
    if args.slow:
        return main_slow(args)
    plan = args.plan
    work = BENCH_DIR / ".work"
    work.mkdir(exist_ok=True)
    procs = Procs(work)

    def on_signal(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "plan": plan,
        "load_before": os.getloadavg(),
        "raw": {},
    }
    raw: dict[str, dict[str, list[float]]] = results["raw"]

    def add(system: str, metric: str, value: float) -> None:
        raw.setdefault(system, {}).setdefault(metric, []).append(value)

    t0 = time.monotonic()
    try:
        if args.at:
            args.at = use_revision(args.at, work / "tree")
        systems = start_all(args, procs, work)
        results["systems"] = {s.key: s.label for s in systems}
        check(systems, work / "files")
        reproxies = [s for s in systems if s.failover]

        log("warm-up")
        for s in systems:
            for _ in range(3):
                download(s.url("1m"), expect_size=servers.FILES["1m"])
            wrk(s.url("1k"), connections=16, threads=2, seconds=1)
        procs.remember_workers()

        log(f"100 MiB downloads, {plan['r100']} rounds")

        def dl100(s: Any) -> None:
            pids = s.pids()
            cpu0 = sum(cpu_seconds(p) for p in pids)
            d = download(s.url("100m"), expect_size=servers.FILES["100m"])
            add(s.key, "cpu_ms_100m", (sum(cpu_seconds(p) for p in pids) - cpu0) * 1e3)
            add(s.key, "mib_s_100m", d.mib_s)

        rounds(plan["r100"], systems, dl100)

        if plan["r1g"]:
            log(f"1 GiB downloads with RSS sampling, {plan['r1g']} rounds")

            def dl1g(s: Any) -> None:
                pids = s.pids()
                cpu0 = sum(cpu_seconds(p) for p in pids)
                with RssSampler(s.proc.tree) as rss:
                    d = download(s.url("1g"), expect_size=servers.FILES["1g"])
                add(s.key, "cpu_s_1g", sum(cpu_seconds(p) for p in pids) - cpu0)
                add(s.key, "mib_s_1g", d.mib_s)
                add(s.key, "rss_growth_mib", rss.growth_mib)

            rounds(plan["r1g"], systems, dl1g)

        log(f"1 KiB wrk -c16 -t2 -d{plan['wrk_s']:g}s, {plan['rwrk']} rounds")

        def wrk16(s: Any) -> None:
            for failover in (False, True) if s.failover else (False,):
                sfx = "_failover" if failover else ""
                pids = s.pids()
                cpu0 = sum(cpu_seconds(p) for p in pids)
                w = wrk(
                    s.url("1k", failover=failover),
                    connections=16,
                    threads=2,
                    seconds=plan["wrk_s"],
                )
                cpu = sum(cpu_seconds(p) for p in pids) - cpu0
                add(s.key, f"cpu_us{sfx}", cpu / w.requests * 1e6)
                add(s.key, f"rps{sfx}", w.rps)
                add(s.key, f"p50_ms{sfx}", w.p50_ms)
                add(s.key, f"p99_ms{sfx}", w.p99_ms)

        rounds(plan["rwrk"], systems, wrk16)

        log(f"1 KiB unloaded latency, wrk -c1 -t1 -d{plan['lat_s']:g}s")

        def wrk1(s: Any) -> None:
            for failover in (False, True):
                sfx = "_failover" if failover else ""
                w = wrk(
                    s.url("1k", failover=failover),
                    connections=1,
                    threads=1,
                    seconds=plan["lat_s"],
                )
                add(s.key, f"c1_p50_ms{sfx}", w.p50_ms)

        rounds(plan["rc1"], reproxies, wrk1)
    except (MeasureError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
        traceback.print_exc()
        log(f"FAILED: {exc}; server logs are in {work / 'logs'}")
        return 1
    finally:
        procs.stop_all()
        log("every started process stopped")

    results["seconds"] = time.monotonic() - t0
    results["load_after"] = os.getloadavg()
    results["note"] = args.note
    results["machine"] = report.machine(args.at)
    results["medians"] = {
        s: {m: median(v) for m, v in metrics.items()} for s, metrics in raw.items()
    }
    write_results(results, args.out)
    return 0


def main_slow(args: argparse.Namespace) -> int:
    """``--slow``: the slow-client scenario (:mod:`_bench.slow`)."""
    from . import apache, slow, slowreport

    if args.from_json:
        results = json.loads(args.from_json.read_text())
    elif slow.NETNS_ENV not in os.environ and slow.can_unshare():
        # Again, inside a network namespace of its own (see _bench.slow).
        return slow.reexec_in_netns(sys.argv[1:])
    else:
        work = BENCH_DIR / ".work"
        work.mkdir(exist_ok=True)
        procs = Procs(work)

        def on_signal(signum: int, frame: object) -> None:
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGHUP, on_signal)
        t0 = time.monotonic()
        try:
            if args.at:
                args.at = use_revision(args.at, work / "tree")
            netns = slow.prepare_netns()
            results = slow.run(args, procs, work)
            results["network"] = netns
        except (MeasureError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
            traceback.print_exc()
            log(f"FAILED: {exc}; server logs are in {work / 'logs'}")
            return 1
        finally:
            procs.stop_all()
            apache.cleanup()
            log("every started process stopped")
        results["seconds"] = time.monotonic() - t0
        results["machine"] = report.machine(args.at)
    if args.note:
        results["note"] = args.note
    args.out.mkdir(parents=True, exist_ok=True)
    name = "slow-quick" if args.quick and not args.from_json else "slow"
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    slowreport.write_markdown(results, args.out / f"{name}.md")
    slowreport.write_chart(results, args.out / f"{name}.png")
    log(f"wrote {args.out / name}.md, .json and .png")
    print((args.out / f"{name}.md").read_text())
    return 0


def write_results(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    report.write_markdown(results, out / "latest.md")
    report.write_chart(results, out / "latest.png")
    log(f"wrote {out / 'latest.md'} and latest.png")
    print((out / "latest.md").read_text())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
