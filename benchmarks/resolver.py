"""How ``Config.resolve()`` scales with the number of config sections.

Run::

    python benchmarks/resolver.py            # 10, 100, 1,000, 10,000 sections
    python benchmarks/resolver.py --quick    # fewer repeats

Each config is a realistic mix of distinct sections: 48% plain
``<Location>``s and 25% plain ``<Directory>``s at depths 1 to 4, 9% wildcard
ones, 12% regexes (10% anchored at a literal path, 2% unanchored
``\\.ext$`` tests) and 6% ``<Files>`` (names and ``*.ext`` globs), after a
``<Location />``.  Requests are a fixed set of 2,000 varied paths drawn from
the same vocabulary: some under configured prefixes, some deeper, some
unknown, some with a configured file name or extension.

Columns: load time (parse + index), resolve time without the cache (every
call matches; this is the resolver's own cost), its ratio to the 10-section
config, resolve time with the default cache over 200 repeating paths, the
same resolve with the index flattened so every section is tested on every
request (what the index saves), and how many sections matched on average.  The goal
(issue 2) is 1,000 sections under 3x the cost of 10.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any

from wsgi_reproxy import Config, parse_config

WORDS = [
    "api", "static", "media", "files", "downloads", "users", "img", "css",
    "js", "v1", "v2", "admin", "private", "public", "docs", "blog", "shop",
    "cart", "assets", "thumbs", "videos", "archive", "reports", "export",
]  # fmt: skip
ROOT = "/srv/www"


def path(rng: random.Random, depth: int) -> str:
    """``/word/wordN/...``: a common first segment, then numbered ones."""
    parts = [rng.choice(WORDS)]
    parts += [f"{rng.choice(WORDS)}{rng.randrange(300)}" for _ in range(depth - 1)]
    return "/" + "/".join(parts)


def build_config_text(count: int, seed: int = 42) -> str:
    """*count* distinct sections in the mix the module docstring describes."""
    rng = random.Random(seed)
    blocks = ["<Location />\n  AllowReproxy On\n</Location>\n"]
    seen: set[tuple[str, str]] = set()
    i = 0
    while len(blocks) < count:
        i += 1
        roll = rng.random()
        p = path(rng, rng.choice([1, 2, 2, 3, 3, 3, 4, 4]))
        if roll < 0.45:
            tag, arg = "Location", p + ("/" if rng.random() < 0.2 else "")
        elif roll < 0.70:
            tag, arg = "Directory", ROOT + p
        elif roll < 0.76:
            tag, arg = "Location", f"{p}/*.{rng.choice(['css', 'js', 'png'])}"
        elif roll < 0.79:
            tag, arg = "Directory", f"{ROOT}{p}/*/public"
        elif roll < 0.87:
            tag, arg = "LocationMatch", f'"^{p}/[0-9]+/(thumb|full)$"'
        elif roll < 0.89:
            tag, arg = "DirectoryMatch", f'"^{ROOT}{p}/[a-z]+/$"'
        elif roll < 0.91:
            tag, arg = "LocationMatch", f'"\\.ext{i}$"'
        elif roll < 0.95:
            tag, arg = "Files", f"file{i}.txt"
        elif roll < 0.97:
            tag, arg = "Files", f"*.ext{i}"
        else:
            tag, arg = "Location", f"{p}/item{i}"
        if (tag, arg) in seen:  # a real config names each place once
            continue
        seen.add((tag, arg))
        blocks.append(f"<{tag} {arg}>\n  ReproxyMaxRedirects {i % 10}\n</{tag}>\n")
    return "".join(blocks)


def request_paths(count: int, seed: int = 7) -> list[str]:
    """Varied request paths; the same list for every config size."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        n = rng.randrange(12_000)
        tail = rng.choice(
            ["", "/", "/index.html", f"/{n}/thumb", f"/file{n}.txt", f"/a.ext{n}"]
        )
        out.append(path(rng, rng.randint(1, 5)) + tail)
    return out


def environ(p: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": p,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "HTTP_HOST": "www.example.com",
        "wsgi.url_scheme": "http",
    }


def per_call(fn: Callable[[dict[str, Any]], object], envs: list[dict[str, Any]],
             repeat: int) -> float:  # fmt: skip
    """Best-of-*repeat* microseconds per call of *fn* over *envs*."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for env in envs:
            fn(env)
        best = min(best, time.perf_counter() - start)
    return best / len(envs) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10, 100, 1_000, 10_000]
    )
    args = parser.parse_args()
    repeat = 3 if args.quick else 7
    envs = [environ(p) for p in request_paths(2_000)]
    repeating = [environ(p) for p in request_paths(200, seed=8)] * 10

    rows = []
    for size in args.sizes:
        text = build_config_text(size)
        start = time.perf_counter()
        cached = parse_config(text, document_root=ROOT)
        load_ms = (time.perf_counter() - start) * 1e3
        uncached = Config(cached.parsed, document_root=ROOT, cache_size=0)
        matched = sum(len(uncached.explain(e).sections) for e in envs) / len(envs)
        flat = uncached.without_index()
        # the index must only prune: same settings with and without it
        assert all(flat.resolve(e) == uncached.resolve(e) for e in envs[:200])
        rows.append(
            (
                size,
                load_ms,
                per_call(uncached.resolve, envs, repeat),
                per_call(cached.resolve, repeating, repeat),
                per_call(flat.resolve, envs, max(1, repeat // 3)),
                matched,
            )
        )

    base = rows[0][2]
    print(
        f"{'sections':>9} {'load ms':>9} {'µs/resolve':>11} {'ratio':>6} "
        f"{'cached µs':>10} {'no index µs':>11} {'matched':>8}"
    )
    for size, load_ms, resolve_us, cached_us, linear_us, matched in rows:
        print(
            f"{size:>9,} {load_ms:>9.1f} {resolve_us:>11.2f} "
            f"{resolve_us / base:>5.2f}x {cached_us:>10.2f} {linear_us:>11.1f} "
            f"{matched:>8.1f}"
        )


if __name__ == "__main__":
    main()
