"""``latest.md`` (tables, goals, machine) and ``latest.png`` (bar chart).

Ratios are plain quotients of medians: "÷ wsgi_reproxy" is the system's
median divided by wsgi_reproxy gevent's (``serve``'s default worker),
"÷ direct" the system's median divided by the storage node's own (the
ceiling). The goals of issues 7 and 16 are checked for every wsgi_reproxy
worker.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

REF = "wr_gevent"

#: metric key -> (label, unit, higher is better)
METRICS: dict[str, tuple[str, str, bool]] = {
    "mib_s_100m": ("100 MiB download", "MiB/s", True),
    "cpu_ms_100m": ("100 MiB download, CPU", "ms", False),
    "mib_s_1g": ("1 GiB download", "MiB/s", True),
    "cpu_s_1g": ("1 GiB download, CPU", "s", False),
    "rss_growth_mib": ("RSS growth, 1 GiB download", "MiB", False),
    "rps": ("1 KiB, 16 conns", "req/s", True),
    "p50_ms": ("1 KiB, 16 conns, p50", "ms", False),
    "p99_ms": ("1 KiB, 16 conns, p99", "ms", False),
    "cpu_us": ("1 KiB, CPU per request", "µs", False),
    "rps_failover": ("1 KiB, dead first URL, 16 conns", "req/s", True),
    "p50_ms_failover": ("1 KiB, dead first URL, p50", "ms", False),
    "p99_ms_failover": ("1 KiB, dead first URL, p99", "ms", False),
    "cpu_us_failover": ("1 KiB, dead first URL, CPU per request", "µs", False),
    "c1_p50_ms": ("1 KiB, 1 conn, p50", "ms", False),
    "c1_p50_ms_failover": ("1 KiB, dead first URL, 1 conn, p50", "ms", False),
    "failover_cost_ms": ("failover cost (1 conn p50 delta)", "ms", False),
}


def _run(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (out.stdout + out.stderr).strip()


def machine(at: str | None = None) -> dict[str, str]:
    """Describe the machine and the versions of everything measured.

    :param at: the git revision whose ``wsgi_reproxy`` was measured
        (``--at``); ``None``: the working tree.
    """
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    nginx = _run(["nginx", "-v"]).rpartition("/")[2]
    perlbal = _run(["perlbal", "--version"]).rpartition(" ")[2]
    wrk = re.search(r"wrk (\S+)", _run(["wrk", "--version"]))
    import gunicorn
    import urllib3

    here = Path(__file__).resolve().parent
    rev = at or "HEAD"
    commit = _run(["git", "-C", str(here), "log", "-1", "--format=%h %s", rev, "--"])
    dirty = _run(
        ["git", "-C", str(here), "status", "--porcelain", "--", "../../wsgi_reproxy"]
    )
    if at is None and dirty and dirty != "?":
        commit += " (with uncommitted changes in wsgi_reproxy/)"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{mem_kib / 1024**2:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "gunicorn": gunicorn.__version__,
        "urllib3": urllib3.__version__,
        "nginx": nginx,
        "perlbal": perlbal,
        "wrk": wrk.group(1) if wrk else "?",
        "commit": commit,
        "wsgi_reproxy": _package_dir(),
    }


def _package_dir() -> str:
    """Where the measured wsgi_reproxy came from (a PYTHONPATH tree?)."""
    try:
        import wsgi_reproxy
    except Exception as exc:  # a placeholder package may raise anything
        return f"not importable ({type(exc).__name__})"
    return str(Path(wsgi_reproxy.__file__).resolve().parent)


def _medians(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    med: dict[str, dict[str, float]] = {
        s: dict(m) for s, m in results["medians"].items()
    }
    for m in med.values():
        if "c1_p50_ms" in m and "c1_p50_ms_failover" in m:
            m["failover_cost_ms"] = m["c1_p50_ms_failover"] - m["c1_p50_ms"]
    return med


def _fmt(v: float | None) -> str:
    if v is None:
        return "–"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def _table(
    systems: dict[str, str],
    med: dict[str, dict[str, float]],
    cell: Any,
    metrics: list[str],
) -> list[str]:
    keys = list(systems)
    lines = [
        "| metric | " + " | ".join(systems[k] for k in keys) + " |",
        "| --- | " + " | ".join("---:" for _ in keys) + " |",
    ]
    for metric in metrics:
        if not any(metric in med.get(k, {}) for k in keys):
            continue
        label, unit, _ = METRICS[metric]
        row = [cell(k, metric) for k in keys]
        lines.append(f"| {label} ({unit}) | " + " | ".join(row) + " |")
    return lines


def _goals(med: dict[str, dict[str, float]], systems: dict[str, str]) -> list[str]:
    def ratio(wr: str, metric: str, anchor: str) -> float | None:
        a, b = med.get(wr, {}).get(metric), med.get(anchor, {}).get(metric)
        return None if a is None or not b else a / b

    goals: list[tuple[str, Any]] = []
    for metric, name in (("mib_s_100m", "100 MiB"), ("mib_s_1g", "1 GiB")):
        goals.append((f"{name}: ≥ 1.3× perlbal", (metric, "perlbal", 1.3)))
        goals.append((f"{name}: ≥ 1.0× nginx", (metric, "nginx", 1.0)))
    goals.append(("1 KiB req/s: ≥ 2× perlbal", ("rps", "perlbal", 2.0)))
    goals.append(("1 KiB req/s: ≥ 0.8× nginx", ("rps", "nginx", 0.8)))
    goals.append(("1 KiB req/s: ≥ 1.5× perlbal (issue 16)", ("rps", "perlbal", 1.5)))
    goals.append(("1 KiB req/s: ≥ 0.6× nginx (issue 16)", ("rps", "nginx", 0.6)))
    goals.append(("RSS growth, 1 GiB: < 32 MiB", ("rss_growth_mib", None, 32.0)))
    goals.append(("failover cost: < 2 ms p50", ("failover_cost_ms", None, 2.0)))
    wrs = [k for k in ("wr_sync", "wr_gthread", "wr_gevent") if k in systems]
    lines = [
        "| goal (issues 7, 16) | " + " | ".join(systems[k] for k in wrs) + " |",
        "| --- | " + " | ".join("---:" for _ in wrs) + " |",
    ]
    for text, (metric, anchor, bound) in goals:
        cells = []
        for wr in wrs:
            if anchor:
                r = ratio(wr, metric, anchor)
                ok = r is not None and r >= bound
                shown = None if r is None else f"{r:.2f}×"
            else:
                v = med.get(wr, {}).get(metric)
                ok = v is not None and v < bound
                shown = None if v is None else f"{_fmt(v)} {METRICS[metric][1]}"
            cells.append(
                "not measured" if shown is None else f"{shown} {'✅' if ok else '❌'}"
            )
        lines.append(f"| {text} | " + " | ".join(cells) + " |")
    return lines


def write_markdown(results: dict[str, Any], path: Path) -> None:
    systems: dict[str, str] = results["systems"]
    med = _medians(results)
    plan = results["plan"]
    order = list(METRICS)
    out = [
        "# wsgi_reproxy side by side with perlbal and nginx",
        "",
        f"Run {results['started']}, {results['seconds'] / 60:.1f} minutes; "
        "reproduce with `benchmarks/run` (see `benchmarks/README.rst`). "
        "Everything on 127.0.0.1; systems interleaved round by round; "
        "medians of "
        f"{plan['r100']} rounds (100 MiB), {plan['r1g']} (1 GiB), "
        f"{plan['rwrk']} wrk runs of {plan['wrk_s']:g} s (1 KiB, 16 connections, "
        "2 threads, keep-alive), "
        f"{plan.get('rc1', max(1, plan['rwrk'] - 2))} runs of {plan['lat_s']:g} s "
        "with one connection.",
        "",
        "Load average (1, 5, 15 min) before the run: "
        + ", ".join(f"{x:.2f}" for x in results["load_before"])
        + "; after: "
        + ", ".join(f"{x:.2f}" for x in results["load_after"])
        + ".",
    ]
    if results.get("note"):
        out += ["", f"**Note:** {results['note']}"]
    # Only the load before the run tells of other work: the load after it
    # is mostly the benchmark's own last wrk rounds.
    busy = results["load_before"][0]
    if busy > 0.5 * (os.cpu_count() or 1):
        out += [
            "",
            f"**The machine was busy** (1-minute load average {busy:.1f} on "
            f"{os.cpu_count()} CPUs before the run): other work shared it, so "
            "absolute numbers are low and noisy; the CPU-time rows are the "
            "steadier comparison.",
        ]
    if any(k.startswith("wr_") for k in systems):
        out += ["", "## Goals", "", *_goals(med, systems)]
    out += ["", "## Medians", ""]
    out += _table(systems, med, lambda k, m: _fmt(med.get(k, {}).get(m)), order)
    if REF in systems:
        out += ["", f"## Ratio to {systems[REF]} (system ÷ wsgi_reproxy)", ""]
        out += _table(
            systems,
            med,
            lambda k, m: _ratio(med.get(k, {}).get(m), med[REF].get(m)),
            [m for m in order if m != "failover_cost_ms"],
        )
    out += ["", "## Ratio to the direct download (system ÷ direct)", ""]
    out += _table(
        systems,
        med,
        lambda k, m: _ratio(med.get(k, {}).get(m), med["direct"].get(m)),
        ["mib_s_100m", "mib_s_1g", "rps", "p50_ms", "p99_ms"],
    )
    out += ["", "## Machine", ""]
    out += [f"- {k}: {v}" for k, v in results["machine"].items()]
    out += [
        "",
        "Raw per-round values are in `latest.json`; the chart is `latest.png`.",
        "",
    ]
    path.write_text("\n".join(out))


def write_chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems: dict[str, str] = results["systems"]
    med = _medians(results)
    raw = results["raw"]
    panels = [
        m
        for m in (
            "mib_s_100m",
            "mib_s_1g",
            "rss_growth_mib",
            "cpu_s_1g",
            "cpu_ms_100m",
            "rps",
            "cpu_us",
            "rps_failover",
            "c1_p50_ms",
            "c1_p50_ms_failover",
        )
        if any(m in med.get(k, {}) for k in systems)
    ]
    cols = 5
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.6 * cols, 3.4 * rows), squeeze=False
    )
    colors = {
        "direct": "#999999",
        "perlbal": "#d62728",
        "nginx": "#2ca02c",
        "wr_sync": "#1f77b4",
        "wr_gthread": "#17becf",
        "wr_gevent": "#9467bd",
    }
    for ax, metric in zip(axes.flat, panels, strict=False):
        label, unit, higher = METRICS[metric]
        keys = [k for k in systems if metric in med.get(k, {})]
        if metric in ("rps", "cpu_us"):
            # nginx sending a static 1 KiB file is ~30x any reproxy: its bar
            # would flatten the others; latest.md keeps the ratio.
            keys = [k for k in keys if k != "direct"]
        vals = [med[k][metric] for k in keys]
        lo = [v - min(raw[k][metric]) for k, v in zip(keys, vals, strict=True)]
        hi = [max(raw[k][metric]) - v for k, v in zip(keys, vals, strict=True)]
        x = range(len(keys))
        ax.bar(x, vals, color=[colors.get(k, "#8c564b") for k in keys], yerr=[lo, hi])
        for i, v in enumerate(vals):
            ax.annotate(_fmt(v), (i, v), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(list(x))
        ax.set_xticklabels([k.replace("wr_", "wr ") for k in keys], fontsize=8)
        better = "higher" if higher else "lower"
        ax.set_title(f"{label}\n{unit}, {better} is better", fontsize=9)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(
        "wsgi_reproxy vs perlbal vs nginx (medians, whiskers: min–max), "
        f"{results['started']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
