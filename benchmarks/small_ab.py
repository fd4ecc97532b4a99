"""A/B of the 1 KiB path: two revisions of wsgi_reproxy in one interleaved run.

``benchmarks/run --at REV`` measures one revision per run, and on a shared
machine two runs minutes apart differ by more than the change under test.
This starts the same gunicorn (serve's default gevent worker, 2 workers,
the benchmark's reproxy app) once per revision against one nginx storage
node and alternates ``wrk`` rounds between them, reading each server
tree's CPU from ``/proc``::

    python benchmarks/small_ab.py cb7ccaf HEAD            # 6 rounds of 4 s
    python benchmarks/small_ab.py cb7ccaf HEAD --rounds 10 --worker sync

It prints per-round and median req/s and CPU per request of both, and their
ratio (B ÷ A).  Everything stays on 127.0.0.1 and stops by PID on exit.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench import servers  # noqa: E402
from _bench.measure import download, wrk  # noqa: E402
from _bench.procs import Procs, cpu_seconds, free_ports  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def extract(rev: str, into: Path) -> str:
    """``git archive`` *rev*'s tree into *into*; return its short hash."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", rev],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="baseline revision")
    parser.add_argument("b", help="revision under test")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--worker", default="gevent")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="small_ab-"))
    procs = Procs(work)
    try:
        servers.make_files(work / "files", {"1k": 1024})
        storage_port, dead_port, port_a, port_b = free_ports(4)
        servers.start_storage(procs, work, storage_port)
        started = {}
        for label, rev, port in (("A", args.a, port_a), ("B", args.b, port_b)):
            tree = work / f"tree-{label}"
            short = extract(rev, tree)
            env = {
                "BENCH_STORAGE_PORT": str(storage_port),
                "BENCH_DEAD_PORT": str(dead_port),
                "PYTHONPATH": f"{servers.BENCH_DIR}:{tree}",
                "PYTHONSAFEPATH": "1",
            }
            proc = servers.start_wsgi_reproxy(procs, label, port, args.worker, env)
            url = f"http://127.0.0.1:{port}/ok/1k"
            download(url, expect_size=1024)  # up, and serving the right size
            started[label] = (short, proc, url)
        procs.remember_workers()
        results: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
        for r in range(args.rounds):
            order = ("A", "B") if r % 2 == 0 else ("B", "A")
            for label in order:
                _, proc, url = started[label]
                pids = proc.tree()
                cpu0 = sum(cpu_seconds(p) for p in pids)
                w = wrk(url, connections=16, threads=2, seconds=args.seconds)
                cpu = sum(cpu_seconds(p) for p in pids) - cpu0
                results[label].append((w.rps, cpu / w.requests * 1e6))
            print(
                f"round {r + 1}: "
                + "  ".join(
                    f"{k} {results[k][-1][0]:,.0f} req/s {results[k][-1][1]:,.0f} µs"
                    for k in ("A", "B")
                ),
                flush=True,
            )
        med = {
            k: tuple(statistics.median(x[i] for x in v) for i in (0, 1))
            for k, v in results.items()
        }
        for k in ("A", "B"):
            rps, cpu = med[k]
            print(f"{k} {started[k][0]} ({args.worker}): median {rps:,.0f} req/s, "
                  f"{cpu:,.0f} µs CPU per request")  # fmt: skip
        print(
            f"B ÷ A: {med['B'][0] / med['A'][0]:.2f}× req/s, "
            f"{med['B'][1] / med['A'][1]:.2f}× CPU per request"
        )
    finally:
        procs.stop_all()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
