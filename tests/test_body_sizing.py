"""Each body read sized to the client (issue 12): small while it drains
slowly, growing to ``chunk_size`` only while it keeps up."""

from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import TargetServer

from wsgi_reproxy import Settings
from wsgi_reproxy.fetch import body as _body
from wsgi_reproxy.fetch.body import (
    GROW_AFTER,
    KEEPS_UP_SECONDS,
    MIN_CHUNK_SIZE,
    UpstreamBody,
)
from wsgi_reproxy.fetch.fetcher import Fetcher

SETTINGS = Settings(allow_reproxy=True, connect_timeout=1, read_timeout=0.3)


_WARM = [MIN_CHUNK_SIZE] * 16  # GROW_AFTER (256 KiB) at the minimum first


@pytest.mark.parametrize(
    ("chunk", "expected"),
    [
        pytest.param(1024, [1024] * 1024, id="below-the-minimum-stays-fixed"),
        pytest.param(
            64 * 1024,
            [*_WARM, 32768] + [65536] * 11 + [32768],
            id="grows-to-the-cap",
        ),
        pytest.param(
            1 << 20,
            [*_WARM, 32768, 65536, 131072, 262144, 294912],
            id="doubles-from-16k-after-256k-while-taken-at-once",
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
    ("last", "seconds", "so_far", "expected"),
    [
        pytest.param(1 << 20, 10.0, 0.1, MIN_CHUNK_SIZE, id="a-stall-drops-to-min"),
        pytest.param(1 << 20, 0.001, 0.01, 1 << 20, id="fast-stays-at-the-cap"),
        pytest.param(16384, 0.0, 0.0, 32768, id="an-instant-send-doubles"),
        pytest.param(16384, 0.0001, 0.0, 32768, id="growth-is-at-most-double"),
        pytest.param(1 << 20, 0.1, 0.1, 209715, id="10-mb-s-gets-its-20-ms-share"),
        pytest.param(65536, 0.02, 0.0, 65536, id="exactly-the-budget-holds"),
        # An instant send after 4 MiB in 40 s (a 100 kB/s client reading in
        # gulps): the whole transfer's rate decides.
        pytest.param(65536, 0.0, 40.0, MIN_CHUNK_SIZE, id="gulps-stay-small"),
    ],
)
def test_next_read_is_what_the_client_took_in_the_budget(
    last: int, seconds: float, so_far: float, expected: int
) -> None:
    assert KEEPS_UP_SECONDS == 0.02
    body = UpstreamBody(_NoResponse(), "http://x/", chunk_size=1 << 20)  # type: ignore[arg-type]
    body.read_size = body._last_len = last
    body.bytes_sent = 4 << 20
    body._first_yield, body._yielded_at = 100.0, 100.0 + so_far
    assert body._next_read_size(seconds) == expected


def test_reads_stay_at_the_minimum_for_the_first_256k(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = UpstreamBody(_NoResponse(), "http://x/", chunk_size=1 << 20)  # type: ignore[arg-type]
    body.read_size = body._last_len = MIN_CHUNK_SIZE
    body.bytes_sent = GROW_AFTER - 1
    assert body._next_read_size(0.0) == MIN_CHUNK_SIZE
    body.bytes_sent = GROW_AFTER
    assert body._next_read_size(0.0) == 2 * MIN_CHUNK_SIZE
