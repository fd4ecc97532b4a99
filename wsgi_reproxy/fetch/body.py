"""One target response: its record and its streaming body.

:class:`UpstreamBody` is the WSGI response iterable for a urllib3 response
opened with ``preload_content=False``: it reads at most ``chunk_size`` bytes
at a time, sized to how fast the client takes them, and never buffers the
body; :func:`discard` gives back a response that will not be used::

    body = UpstreamBody(response, url)
    try:
        for chunk in body:
            ...
    finally:
        body.close()        # idempotent; ends in release_conn()
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from urllib3.exceptions import HTTPError

from ..exceptions import TruncatedBodyError
from .boundary import upstream_errors
from .wire import FramingError

# Broken-off bodies are logged under the fetcher's name, where they always were.
logger = logging.getLogger("wsgi_reproxy.fetch.fetcher")

#: Default bytes per body read: 1 MiB.  Measured with ``benchmarks/stream.py``
#: (one gunicorn sync worker, nginx target on loopback, 2 shared cores):
#: 64 KiB reached 0.32x the direct download, 256 KiB 0.46x, 1 MiB 0.60x,
#: 2 MiB no better.  Reading costs little at any size from 256 KiB on (about
#: 0.16 s of CPU per GiB); the WSGI server's per-chunk write is what larger
#: chunks save.  The price is one transient 1 MiB ``bytes`` per response.
DEFAULT_CHUNK_SIZE = 1024 * 1024

#: The smallest read, and the first: what a slow client costs.  While the
#: server sends a chunk, that chunk is held in memory (the WSGI server's
#: ``sendall`` keeps it until the kernel took the last byte), so a client
#: draining 100 kB/s would pin a whole 1 MiB read for ten seconds.  16 KiB
#: keeps a slow download's memory near nginx's (its default proxy buffers
#: are 4-8 KiB pages) at six reads a second for a 100 kB/s client.
MIN_CHUNK_SIZE = 16 * 1024

#: Bytes sent at the minimum size before any read grows.  A new
#: connection's socket buffers take the first sends at once whatever the
#: client's speed (loopback grows a send buffer to 4 MiB, a WAN link to its
#: bandwidth-delay product), which would look like a fast client; by the
#: time this much went out a slow client's buffers are full and its sends
#: show its rate.  For a fast stream it is 16 reads, nothing next to 100 MiB.
GROW_AFTER = 256 * 1024

#: How "keeps up" is measured: the time from yielding a chunk to being
#: asked for the next one is the time the WSGI server took to hand it to
#: the kernel, so ``bytes / that time`` is the rate the client drains at
#: (once its socket buffers are full).  The rate used is the slower of the
#: last chunk's and the whole transfer's (bytes sent / time since the first
#: chunk), and the next read is what that rate sends in this budget,
#: between :data:`MIN_CHUNK_SIZE` and ``chunk_size``, at most double the
#: last: 1 MiB reads need a client taking about 50 MB/s, a 1 MB/s client
#: gets 20 KiB, anything under 800 kB/s the minimum.  A client that slows
#: down is seen at its next chunk and drops to the minimum at once.
KEEPS_UP_SECONDS = 0.02

#: Bytes read from a failed response before its connection is given back;
#: a longer error body is cheaper to drop with the connection (SPEC §4.3).
_DRAIN_LIMIT = 64 * 1024


class Readable(Protocol):
    """What the body reads: :class:`~.exchange.Response` (or urllib3's)."""

    @property
    def length_remaining(self) -> int | None: ...

    def read(self, amt: int | None = None, decode_content: bool = False) -> bytes: ...

    def read1(self, amt: int) -> bytes: ...

    def close(self) -> None: ...

    def release_conn(self) -> None: ...


@dataclass(slots=True)
class Upstream:
    """The target response chosen for a request.

    :param url: the URL that answered (after redirects).
    :param status: the target's status code.
    :param reason: the target's reason phrase.
    :param headers: the target's headers, repeated ones as separate pairs.
    :param body: the streaming body; the caller must close it.
    """

    url: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: UpstreamBody


class UpstreamBody:
    """A WSGI response iterable streaming a urllib3 response.

    Reads without content decoding, :data:`MIN_CHUNK_SIZE` bytes at a
    time for the first :data:`GROW_AFTER` bytes, then as much as the client
    takes in :data:`KEEPS_UP_SECONDS`, doubling at most per read, never more
    than ``chunk_size``.  When the target breaks off, or sends fewer bytes
    than its ``Content-Length``, iteration raises :class:`TruncatedBodyError`
    after handing over what arrived.

    :meth:`close` may be called any number of times.  A body read to its end
    gives its connection back for keep-alive (``release_conn``); otherwise the
    connection is closed first, because draining an unread multi-gigabyte
    body would cost as much as sending it (``drain_conn`` is wrong here).

    :param on_close: called once from :meth:`close` with the bytes delivered
        and whether the body was complete, e.g. to log the transfer.
    """

    def __init__(
        self,
        response: Readable,
        url: str,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        on_close: Callable[[int, bool], None] | None = None,
        log: logging.Logger = logger,
        first: bytes = b"",
    ) -> None:
        self._response = response
        # Read before the response started, to know the target really sends
        # a body (SPEC §4.10); handed out first.
        self._first = first
        self._log = log
        self.url = url
        self.chunk_size = chunk_size
        #: the size of the next read (see :meth:`_next_read_size`)
        self.read_size = min(chunk_size, MIN_CHUNK_SIZE)
        self._yielded_at = 0.0  # monotonic time the last chunk was returned
        self._first_yield = 0.0  # ... and the first one
        self._last_len = 0
        self.bytes_sent = 0
        self.complete = False
        self._closed = False
        self.on_close = on_close
        #: called with the size of the next read, returns the size to read
        #: now, waiting while the client has no room (see
        #: :mod:`wsgi_reproxy.responders.pace`); ``None`` reads ``read_size``
        self.pace: Callable[[int], int] | None = None

    def __iter__(self) -> UpstreamBody:
        return self

    @property
    def unread(self) -> bool:
        """Whether bytes remain to be read from the target (a small body
        is already whole in the first read)."""
        return not self.complete and self._response.length_remaining != 0

    def __next__(self) -> bytes:
        if self.complete or self._closed:
            raise StopIteration
        if self._last_len:
            self.read_size = self._next_read_size(time.monotonic() - self._yielded_at)
        if self._first:
            data, self._first = self._first, b""
        else:
            # The client's wait, outside the target's error boundary: its
            # TimeoutError is the client's, not a broken-off target.
            size = self.read_size if self.pace is None else self.pace(self.read_size)
            try:
                with upstream_errors(self.url, error=TruncatedBodyError):
                    if self.pace is None:
                        data = self._response.read(size, decode_content=False)
                    else:
                        # What arrived, up to what the client takes now: a
                        # read waiting for a lagging node to fill its buffer
                        # would hold that buffer (issue 12).
                        data = self._response.read1(size)
            except TruncatedBodyError as exc:
                self._log.warning(
                    "reproxy body broke off after %d bytes: %s", self.bytes_sent, exc
                )
                # Drop the connection now: a server that stops iterating on
                # the error may never call close() (the GC would, late).
                self.close()
                raise
            if not data:
                self.complete = True
                raise StopIteration
        self.bytes_sent += len(data)
        self._last_len = len(data)
        self._yielded_at = time.monotonic()
        if not self._first_yield:
            self._first_yield = self._yielded_at
        return data

    def _next_read_size(self, send_seconds: float) -> int:
        """The next read's size, given how long the last chunk took to send.

        :param send_seconds: time between returning the last chunk and
            being asked for the next: the WSGI server writing it out.
        """
        floor = min(self.chunk_size, MIN_CHUNK_SIZE)
        if self.bytes_sent < GROW_AFTER:
            return floor
        ceiling = min(self.chunk_size, 2 * self.read_size)
        # The slower of the last send and the whole transfer so far: a
        # client that reads in gulps (an app waking twice a second) drains
        # its buffers at once and makes single sends look instant.
        elapsed = self._yielded_at - self._first_yield
        rates = [self.bytes_sent / elapsed if elapsed > 0 else math.inf]
        rates.append(self._last_len / send_seconds if send_seconds > 0 else math.inf)
        rate = min(rates)
        if rate == math.inf:
            return ceiling
        return max(floor, min(ceiling, int(rate * KEEPS_UP_SECONDS)))

    def close(self) -> None:
        """Give the connection back (or drop it) and report; idempotent."""
        if self._closed:
            return
        self._closed = True
        response = self._response
        # Every byte of a Content-Length body arrived even if nobody asked
        # for the empty read that ends the iteration.
        self.complete = self.complete or response.length_remaining == 0
        try:
            if not self.complete:
                # Unread bytes are still on the socket: the connection can't
                # be reused, so close it; release_conn() then frees the slot.
                response.close()
        finally:
            response.release_conn()
            if self.on_close is not None:
                self.on_close(self.bytes_sent, self.complete)


def discard(response: Readable) -> None:
    """Give back the connection of a response we will not use.

    A short body (a redirect or error page) is read so the connection can be
    kept alive; anything longer is dropped with its connection.
    """
    try:
        length = response.length_remaining
        if length is not None and length <= _DRAIN_LIMIT:
            response.read(decode_content=False)
        else:
            response.close()
    except (HTTPError, OSError, FramingError):
        response.close()
    finally:
        response.release_conn()
