"""N slow downloads from one asyncio process: phones on bad networks.

Run by :mod:`_bench.slow` as its own process (so its CPU is never counted
as the server's)::

    python -m _bench.slowclient --port P --path /ok/slow --count 1000 \\
        --size 1048576 --sha256 HEX

Connection *i* of N reads at ``rate_min + (rate_max - rate_min) * i / N``
bytes/s (20-100 kB/s by default): it wakes every ``--tick`` seconds and
takes what that rate allows since it started, through a small receive
buffer (``SO_RCVBUF`` 64 KiB, a phone's), so the server must hold the rest.
Connections open over ``--ramp`` seconds.  Each checks status 200, the byte
count and the SHA-256 of the body.  Every ``--report`` seconds it prints a
JSON line ``{"t", "active", "receiving", "done", "errors"}``; at the end
``{"final": true, "served", "errors", "reasons"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import socket
import sys
import time


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="slowclient")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--sha256", required=True)
    p.add_argument("--rate-min", type=float, default=20_000)
    p.add_argument("--rate-max", type=float, default=100_000)
    p.add_argument("--rcvbuf", type=int, default=64 * 1024)
    p.add_argument("--ramp", type=float, default=5.0)
    p.add_argument("--tick", type=float, default=0.5)
    p.add_argument("--report", type=float, default=0.5)
    p.add_argument("--deadline", type=float, default=120.0)
    return p.parse_args(argv)


class Stats:
    def __init__(self) -> None:
        self.active = 0
        self.receiving = 0  # got the response head, not finished
        self.done = 0
        self.errors = 0
        self.reasons: collections.Counter[str] = collections.Counter()


async def one(args: argparse.Namespace, i: int, stats: Stats, deadline: float) -> None:
    loop = asyncio.get_running_loop()
    rate = args.rate_min + (args.rate_max - args.rate_min) * i / max(args.count, 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
    sock.setblocking(False)
    in_head = True
    stats.active += 1
    try:
        await asyncio.wait_for(
            loop.sock_connect(sock, ("127.0.0.1", args.port)),
            max(0.1, deadline - time.monotonic()),
        )
        request = (
            f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        ).encode()
        await loop.sock_sendall(sock, request)
        head = b""
        body = hashlib.sha256()
        got = 0
        start = time.monotonic()
        allowed = 0.0
        buf = bytearray(256 * 1024)
        view = memoryview(buf)
        while True:
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError("deadline")
            allowed = rate * (now - start) + 16384
            budget = int(allowed) - got - len(head)
            if budget <= 0:
                await asyncio.sleep(args.tick)
                continue
            n = await asyncio.wait_for(
                loop.sock_recv_into(sock, view[: min(budget, len(buf))]),
                max(0.1, deadline - now),
            )
            if n == 0:
                break
            if in_head:
                head += bytes(view[:n])
                if b"\r\n\r\n" in head:
                    in_head = False
                    stats.receiving += 1
                    head, _, rest = head.partition(b"\r\n\r\n")
                    body.update(rest)
                    got += len(rest)
                continue
            body.update(view[:n])
            got += n
            if got >= args.size:
                break
            if n < budget:
                await asyncio.sleep(args.tick)
        status = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b"?"
        if status != b"200":
            raise ValueError(f"status {status.decode(errors='replace')}")
        if got != args.size:
            raise ValueError(f"short body ({got} of {args.size})")
        if body.hexdigest() != args.sha256:
            raise ValueError("body differs")
        stats.done += 1
    except Exception as exc:
        stats.errors += 1
        stats.reasons[f"{type(exc).__name__}: {exc}"[:60]] += 1
    finally:
        stats.active -= 1
        if not in_head:
            stats.receiving -= 1
        sock.close()


async def run(args: argparse.Namespace) -> Stats:
    stats = Stats()
    t0 = time.monotonic()
    deadline = t0 + args.deadline

    async def reporter() -> None:
        while True:
            line = {
                "t": round(time.monotonic() - t0, 2),
                "active": stats.active,
                "receiving": stats.receiving,
                "done": stats.done,
                "errors": stats.errors,
            }
            print(json.dumps(line), flush=True)
            await asyncio.sleep(args.report)

    report = asyncio.create_task(reporter())
    tasks = []
    for i in range(args.count):
        tasks.append(asyncio.create_task(one(args, i, stats, deadline)))
        # Spread the connects over the ramp.
        target = t0 + args.ramp * (i + 1) / args.count
        pause = target - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
    await asyncio.gather(*tasks)
    report.cancel()
    return stats


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    stats = asyncio.run(run(args))
    final = {
        "final": True,
        "served": stats.done,
        "errors": stats.errors,
        "reasons": dict(stats.reasons.most_common(5)),
    }
    print(json.dumps(final), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
