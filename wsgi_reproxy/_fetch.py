"""Fetching reproxy targets: the pool, failover over a URL list, the body.

Data flows in one direction: the middleware hands over a URL list and the
resolved :class:`~wsgi_reproxy.Settings`; this module opens the first URL
that answers acceptably and returns an :class:`Upstream` whose ``body``
streams the target's bytes without buffering them::

    fetcher = Fetcher()
    upstream, errors = fetcher.open_first(urls, "GET", {}, settings)
    if upstream is not None:
        for chunk in upstream.body:
            ...
        upstream.body.close()

Every urllib3 exception is translated into :class:`UpstreamError` in one
place, :func:`upstream_errors` (httpx's ``map_httpcore_exceptions``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urljoin

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    EmptyPoolError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from werkzeug.http import parse_content_range_header

from ._settings import Settings
from ._targets import check_url
from .exceptions import TruncatedBodyError, UpstreamError

logger = logging.getLogger(__name__)

#: Default bytes per body read: 1 MiB.  Measured with ``benchmarks/stream.py``
#: (one gunicorn sync worker, nginx target on loopback, 2 shared cores):
#: 64 KiB reached 0.32x the direct download, 256 KiB 0.46x, 1 MiB 0.60x,
#: 2 MiB no better.  Reading costs little at any size from 256 KiB on (about
#: 0.16 s of CPU per GiB); the WSGI server's per-chunk write is what larger
#: chunks save.  The price is one transient 1 MiB ``bytes`` per response.
DEFAULT_CHUNK_SIZE = 1024 * 1024

#: Distinct target hosts kept in the process-wide pool (urllib3's LRU of
#: per-host pools); storage clusters rarely have more nodes than this.
DEFAULT_NUM_POOLS = 32

#: Idle keep-alive connections kept per target host.  A gthread worker with
#: more threads still works: ``block=False`` opens extra connections and
#: discards them after use instead of making a request wait.
DEFAULT_MAXSIZE = 16

#: Statuses that are answers although not 2xx: perlbal passed 304 and 416
#: through to the client (SPEC §4.3).
ANSWER_STATUSES = frozenset({304, 416})

#: Statuses whose ``Location`` is followed, up to ``ReproxyMaxRedirects``.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

#: Bytes read from a failed response before its connection is given back;
#: a longer error body is cheaper to drop with the connection (SPEC §4.3).
_DRAIN_LIMIT = 64 * 1024


# -- the process-wide pool ---------------------------------------------------

_pool_lock = threading.Lock()
_pool: urllib3.PoolManager | None = None
_pool_pid: int | None = None


def default_pool() -> urllib3.PoolManager:
    """Return the process-wide :class:`urllib3.PoolManager`, creating it lazily.

    A new pool is created when the process id changed since the last call:
    gunicorn's ``--preload`` forks workers from a master that may already
    hold one, and a socket shared between processes is unusable (SPEC §5).
    """
    global _pool, _pool_pid
    pid = os.getpid()
    pool = _pool
    if pool is not None and _pool_pid == pid:
        return pool
    with _pool_lock:
        if _pool is None or _pool_pid != pid:
            # The parent's pool is not closed here: closing only drops this
            # process's copies of the descriptors, which the GC does anyway.
            _pool = urllib3.PoolManager(
                num_pools=DEFAULT_NUM_POOLS, maxsize=DEFAULT_MAXSIZE, block=False
            )
            _pool_pid = pid
        return _pool


def _reset_lock_after_fork() -> None:
    # A thread of the parent may have held the lock at fork time; the child
    # has no such thread, so it needs a fresh lock (the pid check does the rest).
    global _pool_lock
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_after_fork)


# -- the exception boundary --------------------------------------------------


@contextlib.contextmanager
def upstream_errors(
    url: str, *, error: type[UpstreamError] = UpstreamError
) -> Iterator[None]:
    """Translate urllib3 and socket exceptions into *error* for *url*.

    The one place where urllib3's exception hierarchy meets ours; the
    original exception stays available as ``__cause__``.
    """
    try:
        yield
    except MaxRetryError as exc:  # only with a caller's pool that retries
        reason = exc.reason if exc.reason is not None else exc
        raise _translate(url, reason, error) from exc
    except (HTTPError, OSError) as exc:
        raise _translate(url, exc, error) from exc


def _translate(
    url: str, exc: BaseException, error: type[UpstreamError]
) -> UpstreamError:
    if isinstance(exc, ReadTimeoutError):
        return error(url, "read timeout", timeout=True)
    if isinstance(exc, EmptyPoolError):
        return error(url, "no free connection in the pool", timeout=True)
    if isinstance(exc, NewConnectionError):
        cause = exc.__cause__ or exc.__context__
        text = cause.strerror if isinstance(cause, OSError) and cause.strerror else exc
        return error(url, f"cannot connect: {text}")
    if isinstance(exc, ConnectTimeoutError):
        # Checked after NewConnectionError, which urllib3 2 derives from it:
        # a refused connection is not a timeout (and must not answer 504).
        return error(url, "connect timeout", timeout=True)
    if isinstance(exc, ProtocolError):
        return error(url, f"connection broken: {exc.args[0] if exc.args else exc}")
    if isinstance(exc, TimeoutError):
        return error(url, "timeout", timeout=True)
    return error(url, f"{type(exc).__name__}: {exc}")


# -- one response -------------------------------------------------------------


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

    Reads ``chunk_size`` bytes at a time without content decoding.  When the
    target breaks off, or sends fewer bytes than its ``Content-Length``
    (urllib3 enforces it), iteration raises :class:`TruncatedBodyError`.

    :meth:`close` may be called any number of times.  A body read to its end
    gives its connection back for keep-alive (``release_conn``); otherwise the
    connection is closed first, because draining an unread multi-gigabyte
    body would cost as much as sending it (``drain_conn`` is wrong here).

    :param on_close: called once from :meth:`close` with the bytes delivered
        and whether the body was complete, e.g. to log the transfer.
    """

    def __init__(
        self,
        response: urllib3.BaseHTTPResponse,
        url: str,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        on_close: Callable[[int, bool], None] | None = None,
        log: logging.Logger = logger,
    ) -> None:
        self._response = response
        self._log = log
        self.url = url
        self.chunk_size = chunk_size
        self.bytes_sent = 0
        self.complete = False
        self._closed = False
        self.on_close = on_close

    def __iter__(self) -> UpstreamBody:
        return self

    def __next__(self) -> bytes:
        if self.complete or self._closed:
            raise StopIteration
        try:
            with upstream_errors(self.url, error=TruncatedBodyError):
                data = self._response.read(self.chunk_size, decode_content=False)
        except TruncatedBodyError as exc:
            self._log.warning(
                "reproxy body broke off after %d bytes: %s", self.bytes_sent, exc
            )
            raise
        if not data:
            self.complete = True
            raise StopIteration
        self.bytes_sent += len(data)
        return data

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


def discard(response: urllib3.BaseHTTPResponse) -> None:
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
    except (HTTPError, OSError):
        response.close()
    finally:
        response.release_conn()


def expected_size_error(
    status: int, headers: urllib3.HTTPHeaderDict, expected: int
) -> str | None:
    """Check a response against the app's ``X-Reproxy-Expected-Size``.

    The size is the ``Content-Length`` of a full response, the complete
    length in ``Content-Range`` of a 206 (and of a 416, when it gives one).
    perlbal compared a 206's own length and so failed every ranged request
    (SPEC §4.3).  A 304 carries no representation, so there is nothing to
    compare.

    :return: ``None`` when the size matches, else the reason for failing.
    """
    if status == 304:
        return None
    if status in (206, 416):
        content_range = parse_content_range_header(headers.get("Content-Range"))
        if content_range is None or content_range.length is None:
            if status == 416:
                return None
            return f"expected size {expected} but no total in Content-Range"
        actual = content_range.length
    else:
        text = headers.get("Content-Length")
        text = None if text is None else text.strip()
        if not text or not (text.isascii() and text.isdigit()):  # not "²"
            return f"expected size {expected} but no Content-Length"
        actual = int(text)
    if actual != expected:
        return f"size {actual} differs from expected size {expected}"
    return None


class Fetcher:
    """Opens reproxy targets over a (shared or caller-supplied) pool.

    :param pool: a :class:`urllib3.PoolManager` to use; ``None`` uses the
        lazily created process-wide one (:func:`default_pool`).
    :param chunk_size: bytes per body read (see :data:`DEFAULT_CHUNK_SIZE`).
    :param log: where failed tries are logged (WARNING).
    """

    def __init__(
        self,
        pool: urllib3.PoolManager | None = None,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        log: logging.Logger = logger,
    ) -> None:
        self._pool = pool
        self.chunk_size = chunk_size
        self.log = log

    @property
    def pool(self) -> urllib3.PoolManager:
        return self._pool if self._pool is not None else default_pool()

    def open(
        self,
        url: str,
        method: str,
        headers: Mapping[str, str],
        settings: Settings,
        *,
        expected_size: int | None = None,
    ) -> Upstream:
        """Request *url*, following redirects up to ``settings.max_redirects``.

        :raise UpstreamError: when this URL cannot serve the request; its
            ``url`` is always *url*, even when a redirect hop failed.
        """
        try:
            return self._open(url, method, headers, settings, expected_size)
        except UpstreamError as exc:
            if exc.url == url:
                raise
            raise type(exc)(
                url, f"{exc.reason} (at {exc.url})", timeout=exc.timeout
            ) from exc

    def _open(
        self,
        url: str,
        method: str,
        headers: Mapping[str, str],
        settings: Settings,
        expected_size: int | None,
    ) -> Upstream:
        pool = self.pool
        timeout = urllib3.Timeout(
            connect=settings.connect_timeout, read=settings.read_timeout
        )
        redirects = 0
        while True:
            with upstream_errors(url):
                response = pool.urlopen(
                    method,
                    url,
                    headers=dict(headers),
                    preload_content=False,
                    decode_content=False,
                    redirect=False,
                    retries=False,
                    timeout=timeout,
                    # Waiting for a free slot of a blocking pool counts as
                    # connecting; without a bound it could wait forever.
                    pool_timeout=settings.connect_timeout,
                )
            status = response.status
            if status in REDIRECT_STATUSES and "Location" in response.headers:
                location = urljoin(url, response.headers["Location"])
                discard(response)
                if redirects >= settings.max_redirects:
                    raise UpstreamError(
                        url,
                        f"status {status} redirect to {location} not followed"
                        f" (ReproxyMaxRedirects {settings.max_redirects})",
                    )
                refused = check_url(location, settings)
                if refused is not None:
                    raise UpstreamError(
                        url, f"redirect to {location!r} refused: {refused}"
                    )
                redirects += 1
                url = location
                continue
            if not (200 <= status < 300 or status in ANSWER_STATUSES):
                discard(response)
                raise UpstreamError(url, f"status {status}")
            if expected_size is not None:
                problem = expected_size_error(status, response.headers, expected_size)
                if problem is not None:
                    discard(response)
                    raise UpstreamError(url, problem)
            return Upstream(
                url=url,
                status=status,
                reason=response.reason or "",
                headers=list(response.headers.items()),
                body=UpstreamBody(
                    response, url, chunk_size=self.chunk_size, log=self.log
                ),
            )

    def open_first(
        self,
        urls: Sequence[str],
        method: str,
        headers: Mapping[str, str],
        settings: Settings,
        *,
        expected_size: int | None = None,
    ) -> tuple[Upstream | None, list[UpstreamError]]:
        """Try *urls* in order; return the first good response and the failures.

        Each failure is logged at WARNING as it happens.  The result's first
        item is ``None`` when every URL failed.
        """
        errors: list[UpstreamError] = []
        for url in urls:
            started = time.monotonic()
            try:
                upstream = self.open(
                    url, method, headers, settings, expected_size=expected_size
                )
            except UpstreamError as exc:
                self.log.warning(
                    "reproxy target failed after %.3fs: %s",
                    time.monotonic() - started,
                    exc,
                )
                errors.append(exc)
                continue
            return upstream, errors
        return None, errors
