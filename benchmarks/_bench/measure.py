"""The measurements: one download, one wrk run, RSS sampled meanwhile.

- :func:`download` fetches a URL with a Python client that writes nowhere:
  a raw socket, ``recv_into`` a reused 1 MiB buffer, so the client is never
  the bottleneck (curl's 16 KiB writes to ``/dev/null`` cost more CPU on
  loopback; see ``benchmarks/README.rst``). It checks status and byte count:
  a short or failed body is an error, never a fast number.
- :class:`RssSampler` sums ``VmRSS`` over a server's whole process tree every
  20 ms; growth is the peak minus the value just before the download.
- :func:`wrk` runs ``wrk --latency`` and parses requests/s and p50/p99; any
  non-2xx answer or socket error makes the run an error.
"""

from __future__ import annotations

import hashlib
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from .procs import rss_kib

MIB = 1024**2


class MeasureError(RuntimeError):
    """A measurement produced a wrong answer (status, size, errors)."""


@dataclass
class Download:
    status: int
    size: int
    seconds: float
    sha256: str = ""

    @property
    def mib_s(self) -> float:
        return self.size / MIB / self.seconds


def download(
    url: str, *, expect_size: int, timeout: float = 300.0, digest: bool = False
) -> Download:
    """GET *url* over a fresh connection and discard the body.

    Timing starts before ``connect`` and ends with the last byte, like
    curl's ``time_total``.

    :param digest: also hash the body (``Download.sha256``); for checks only,
        the hashing would dominate a timed download.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path or "/"
    buf = bytearray(MIB)
    view = memoryview(buf)
    start = time.perf_counter()
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Connection: close\r\n\r\n".encode("ascii")
        )
        head = b""
        while b"\r\n\r\n" not in head:
            n = sock.recv_into(view)
            if not n:
                raise MeasureError(f"{url}: connection closed in the headers")
            head += bytes(view[:n])
        head, _, rest = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in lines[1:])
        }
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise MeasureError(f"{url}: chunked body, expected Content-Length")
        length = int(headers.get("content-length", "-1"))
        got = len(rest)
        sha = hashlib.sha256(rest) if digest else None
        while got < length or length < 0:
            n = sock.recv_into(view)
            if not n:
                break
            got += n
            if sha is not None:
                sha.update(view[:n])
    seconds = time.perf_counter() - start
    if status != 200 or got != expect_size or length not in (-1, expect_size):
        raise MeasureError(
            f"{url}: status {status}, {got} bytes of {length}, "
            f"expected 200 and {expect_size}"
        )
    return Download(status, got, seconds, sha.hexdigest() if sha else "")


class RssSampler:
    """Sample the summed ``VmRSS`` (KiB) of ``pids()`` in a thread.

    :param pids: called each sample, so workers that a master re-forks are
        still seen.
    """

    def __init__(self, pids: Callable[[], list[int]], interval: float = 0.02):
        self._pids = pids
        self._interval = interval
        self._stop = threading.Event()
        self.baseline = self._sum()
        self.peak = self.baseline
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sum(self) -> int:
        return sum(rss_kib(pid) for pid in self._pids())

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, self._sum())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sum())

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.baseline) / 1024


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise MeasureError(f"cannot read wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(url: str, *, connections: int, threads: int, seconds: float) -> WrkResult:
    """Run wrk with keep-alive (its default) and ``--latency``."""
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",  # wrk takes whole seconds only
        "--timeout",
        "10s",
        "--latency",
        url,
    ]
    out = subprocess.run(
        argv, capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise MeasureError(f"{url}: wrk saw errors:\n{out}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    total = re.search(r"(\d+) requests in", out)
    if not (rps and p50 and p99 and total):
        raise MeasureError(f"{url}: cannot parse wrk output:\n{out}")
    return WrkResult(
        float(rps.group(1)), _ms(p50.group(1)), _ms(p99.group(1)), int(total.group(1))
    )
