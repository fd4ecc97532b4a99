"""``slow.md`` (one table per N, the issue's goals) and ``slow.png``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

WR = "wr_serve"
BIG_MIB = 16

COLUMNS = [
    ("served", "served", "{:.0f}"),
    ("errors", "errors", "{:.0f}"),
    ("receiving_peak", "received at once", "{:.0f}"),
    ("kb_per_download", "kB RSS / download", "{:.1f}"),
    ("rss_peak_mib", "RSS at peak (MiB)", "{:.0f}"),
    ("storage_conns_peak", "storage conns", "{:.0f}"),
    ("cpu_pct", "CPU (% of a core)", "{:.0f}"),
    ("p50_ms", "1 KiB p50 (ms)", "{:.1f}"),
    ("p99_ms", "1 KiB p99 (ms)", "{:.1f}"),
    ("probe_errors", "1 KiB errors", "{:.0f}"),
]


def _fmt(fmt: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return fmt.format(value)


def _by(results: dict[str, Any]) -> dict[int, dict[str, dict[str, Any]]]:
    out: dict[int, dict[str, dict[str, Any]]] = {}
    for p in results["phases"]:
        out.setdefault(p["count"], {})[p["system"]] = p
    return out


def goals(results: dict[str, Any]) -> list[str]:
    """The issue's goals at the largest N that wsgi_reproxy ran."""
    by = _by(results)
    lines = []
    for count in sorted(by):
        wr, ngx = by[count].get(WR), by[count].get("nginx")
        if wr is None:
            continue
        exact = wr["served"] == count and wr["errors"] == 0
        kb = wr["kb_per_download"] <= 32
        p99_limit = 2 * ngx["p99_ms"] + 20 if ngx else float("nan")
        fast = wr["p99_ms"] <= p99_limit
        errors = wr["errors"] + wr["probe_errors"] == 0
        lines.append(
            f"- N = {count:,}: every download served byte-exact "
            f"{'✔' if exact else '✘'} ({wr['served']:,}/{count:,}); "
            f"≤ 32 kB per download {'✔' if kb else '✘'} "
            f"({wr['kb_per_download']:.1f}); 1 KiB p99 ≤ 2× nginx + 20 ms "
            f"{'✔' if fast else '✘'} ({wr['p99_ms']:.1f} ≤ {p99_limit:.1f} ms); "
            f"0 errors {'✔' if errors else '✘'}"
        )
    return lines


def write_markdown(results: dict[str, Any], path: Path) -> None:
    systems: dict[str, str] = results["systems"]
    out = [
        "# Slow clients: N concurrent downloads at 20–100 kB/s",
        "",
        f"Run {results.get('started', '?')}, {results.get('seconds', 0):.0f} s; "
        f"file {results['size'] // 1024} KiB; load average before "
        f"{', '.join(f'{x:.2f}' for x in results.get('load_before', []))}, after "
        f"{', '.join(f'{x:.2f}' for x in results.get('load_after', []))} "
        "(a shared machine: other work ran meanwhile).",
        "",
    ]
    if results.get("network"):
        out += [f"Network: {results['network']}.", ""]
    if results.get("note"):
        out += [results["note"], ""]
    for count, row in sorted(_by(results).items()):
        out += [f"## N = {count:,}", ""]
        out.append("| system | " + " | ".join(label for _, label, _ in COLUMNS) + " |")
        out.append("| --- |" + " ---: |" * len(COLUMNS))
        for key, label in systems.items():
            p = row.get(key)
            if p is None:
                continue
            cells = [_fmt(fmt, p.get(k)) for k, _, fmt in COLUMNS]
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        reasons = {systems[k]: p["reasons"] for k, p in row.items() if p.get("reasons")}
        for label, why in reasons.items():
            out.append(f"\n{label}, failures: {why}")
        out.append("")
    if results.get("capacity"):
        first = results["capacity"][0]
        out += [
            "## Held at once",
            "",
            f"{first['count']} clients of a {BIG_MIB} MiB file at 20–100 kB/s for "
            "30 s (none can finish; far more than the socket buffers hold): how "
            "many receive bytes at once, and the 1 KiB requests made meanwhile "
            "(10 s without an answer is an error).",
            "",
            "| system | receiving at once | 1 KiB p50 (ms) | 1 KiB p99 (ms) "
            "| 1 KiB answered | 1 KiB errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for p in results["capacity"]:
            out.append(
                f"| {systems[p['system']]} | {p['receiving_peak']} of {p['count']} | "
                f"{_fmt('{:.1f}', p['p50_ms'])} | {_fmt('{:.1f}', p['p99_ms'])} | "
                f"{p['probes']} | {p['probe_errors']} |"
            )
        out.append("")
    out += ["## Goals (issue 12)", "", *goals(results), ""]
    machine = results.get("machine", {})
    if machine:
        out += ["## Machine", ""]
        out += [f"- {k}: {v}" for k, v in machine.items()]
        out.append("")
    path.write_text("\n".join(out))


def write_chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems: dict[str, str] = results["systems"]
    by = _by(results)
    counts = sorted(by)
    panels = [
        ("kb_per_download", "kB of RSS per download"),
        ("served_pct", "downloads served byte-exact (%)"),
        ("p99_ms", "1 KiB p99 meanwhile (ms)"),
        ("storage_conns_peak", "storage connections"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(16, 4))
    width = 0.8 / max(len(systems), 1)
    for ax, (metric, title) in zip(axes, panels, strict=True):
        for i, (key, label) in enumerate(systems.items()):
            values = []
            for count in counts:
                p = by[count].get(key, {})
                if metric == "served_pct":
                    v = 100 * p.get("served", 0) / count
                else:
                    v = p.get(metric, float("nan"))
                values.append(v)
            xs = [c + (i - (len(systems) - 1) / 2) * width for c in range(len(counts))]
            ax.bar(xs, values, width, label=label)
        ax.set_xticks(range(len(counts)), [f"N={c:,}" for c in counts])
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        "Slow clients at 20–100 kB/s, one 2-core machine (lower is better, "
        "except served)",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
