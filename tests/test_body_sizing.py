"""Each body read sized to the client (issue 12): small while it drains
slowly, growing to ``chunk_size`` only while it keeps up."""

from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import TargetServer

from wsgi_reproxy import Settings
from wsgi_reproxy.fetch import body as _body
from wsgi_reproxy.fetch.body import KEEPS_UP_SECONDS, MIN_CHUNK_SIZE, UpstreamBody
from wsgi_reproxy.fetch.fetcher import Fetcher

SETTINGS = Settings(allow_reproxy=True, connect_timeout=1, read_timeout=0.3)


@pytest.mark.parametrize(
    ("chunk", "expected"),
    [
        pytest.param(1024, [1024] * 1024, id="below-the-minimum-stays-fixed"),
        pytest.param(
            64 * 1024, [16384, 32768] + [65536] * 15 + [16384], id="grows-to-the-cap"
        ),
        pytest.param(
            1 << 20,
            [16384 << i for i in range(6)] + [16384],
            id="doubles-from-16k-while-taken-at-once",
        ),
    ],
)
def test_reads_double_up_to_chunk_size_while_the_client_keeps_up(
    chunk: int,
    expected: list[int],
    target: TargetServer,
    pool: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A generous budget: a loaded machine pausing this loop must not count
    # as a slow client.
    monkeypatch.setattr(_body, "KEEPS_UP_SECONDS", 10.0)
    upstream = Fetcher(pool, chunk_size=chunk).open(
        target.url("/files/1m.bin"), "GET", {}, SETTINGS
    )
    try:
        sizes = [len(piece) for piece in upstream.body]
    finally:
        upstream.body.close()
    assert sizes == expected
    assert upstream.body.complete


def test_reads_stay_at_the_minimum_while_the_client_drains_slowly(
    target: TargetServer, pool: Any
) -> None:
    # 16 KiB taken in 50 ms is 330 kB/s, under the 800 kB/s that would grow
    # the next read past the minimum (16 KiB per KEEPS_UP_SECONDS).
    upstream = Fetcher(pool).open(target.url("/files/1m.bin"), "GET", {}, SETTINGS)
    sizes = []
    try:
        for piece in upstream.body:
            sizes.append(len(piece))
            if len(sizes) == 5:
                break
            time.sleep(0.05)
    finally:
        upstream.body.close()
    assert sizes == [MIN_CHUNK_SIZE] * 5


class _NoResponse:
    """Stands in for the urllib3 response where no read happens."""


@pytest.mark.parametrize(
    ("last", "seconds", "expected"),
    [
        pytest.param(1 << 20, 10.0, MIN_CHUNK_SIZE, id="a-stall-drops-to-the-minimum"),
        pytest.param(1 << 20, 0.001, 1 << 20, id="fast-stays-at-the-cap"),
        pytest.param(16384, 0.0, 32768, id="an-instant-send-doubles"),
        pytest.param(16384, 0.0001, 32768, id="growth-is-at-most-double"),
        pytest.param(1 << 20, 0.1, 209715, id="10-mb-s-gets-its-20-ms-share"),
        pytest.param(65536, 0.02, 65536, id="exactly-the-budget-holds"),
    ],
)
def test_next_read_is_what_the_client_took_in_the_budget(
    last: int, seconds: float, expected: int
) -> None:
    assert KEEPS_UP_SECONDS == 0.02
    body = UpstreamBody(_NoResponse(), "http://x/", chunk_size=1 << 20)  # type: ignore[arg-type]
    body.read_size = body._last_len = last
    assert body._next_read_size(seconds) == expected
