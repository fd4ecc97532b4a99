"""Fetching reproxy targets: redirects and failover over a URL list.

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

The process-wide pool lives in :mod:`~wsgi_reproxy.fetch.pool`, that exception
boundary in :mod:`~wsgi_reproxy.fetch.boundary`, the streaming body in
:mod:`~wsgi_reproxy.fetch.body`; their names are re-exported here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from urllib.parse import urljoin

import urllib3
from werkzeug.http import parse_content_range_header

from ..config.settings import Settings
from ..exceptions import TruncatedBodyError, UpstreamError
from .body import DEFAULT_CHUNK_SIZE, MIN_CHUNK_SIZE, Upstream, UpstreamBody, discard
from .boundary import upstream_errors
from .exchange import Response, Timeouts, send
from .head import Head
from .metrics import NO_METRICS, Metrics, is_allowlist_refusal, target_host
from .pool import DEFAULT_MAXSIZE, DEFAULT_NUM_POOLS, default_pool
from .targets import check_url

__all__ = [
    "ANSWER_STATUSES",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAXSIZE",
    "DEFAULT_NUM_POOLS",
    "REDIRECT_STATUSES",
    "Fetcher",
    "TruncatedBodyError",
    "Upstream",
    "UpstreamBody",
    "UpstreamError",
    "default_pool",
    "discard",
    "expected_size_error",
    "upstream_errors",
]

logger = logging.getLogger(__name__)

#: Statuses that are answers although not 2xx: perlbal passed 304 and 416
#: through to the client (SPEC §4.3).
ANSWER_STATUSES = frozenset({304, 416})

#: A body of at most this many bytes is read whole before the response
#: starts, so its connection returns to the pool at once (issue 16).
SMALL_BODY = 64 * 1024

#: Statuses whose ``Location`` is followed, up to ``ReproxyMaxRedirects``.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


def expected_size_error(status: int, headers: Head, expected: int) -> str | None:
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

    #: Told about every try (:mod:`~wsgi_reproxy.fetch.metrics`); the
    #: middleware sets its own.
    metrics: Metrics = NO_METRICS

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
        deadline: float | None = None,
    ) -> Upstream:
        """Request *url*, following redirects up to ``settings.max_redirects``.

        :raise UpstreamError: when this URL cannot serve the request; its
            ``url`` is always *url*, even when a redirect hop failed.
        """
        try:
            return self._open(url, method, headers, settings, expected_size, deadline)
        except UpstreamError as exc:
            if exc.url == url:
                raise
            raise type(exc)(
                url,
                f"{exc.reason} (at {exc.url})",
                timeout=exc.timeout,
                status=exc.status,
            ) from exc

    def _open(
        self,
        url: str,
        method: str,
        headers: Mapping[str, str],
        settings: Settings,
        expected_size: int | None,
        deadline: float | None = None,
    ) -> Upstream:
        pool = self.pool
        connect = settings.connect_timeout
        if deadline is not None:
            connect = max(0.001, min(connect, deadline - time.monotonic()))
        timeouts = Timeouts(connect, settings.read_timeout, deadline)
        redirects = 0
        while True:
            with upstream_errors(url):
                response = send(pool, url, method, headers, timeouts)
            status = response.status
            location = response.head.get("Location")
            if status in REDIRECT_STATUSES and location is not None:
                location = urljoin(url, location)
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
                raise UpstreamError(url, f"status {status}", status=status)
            if expected_size is not None:
                problem = expected_size_error(status, response.head, expected_size)
                if problem is not None:
                    discard(response)
                    raise UpstreamError(url, problem)
            upstream = Upstream(
                url=url,
                status=status,
                reason=response.reason,
                headers=response.headers,
                body=self._body(response, url),
            )
            response.forget_head()
            return upstream

    def _body(self, response: Response, url: str) -> UpstreamBody:
        """The streaming body, its first read already in (SPEC §4.10).

        A target that sends its head and then closes, or stalls, before that
        first read is complete is a failed try: the client has seen nothing
        yet.  A body that fits :data:`SMALL_BODY` is read whole and the
        connection given back before the client gets a byte (issue 16).
        """
        length = response.length_remaining
        with upstream_errors(url):
            try:
                # A small body whole (its slot is freed before the client
                # reads); else a first read as small as the body's own first
                # reads (issue 12).
                want = min(self.chunk_size, MIN_CHUNK_SIZE)
                if length is not None and length <= SMALL_BODY:
                    want = length
                first = response.read(want)
                if len(first) < want and response.length_remaining != 0:
                    response.read(want)  # raises: the target broke off
            except BaseException:
                response.close()
                response.release_conn()
                raise
        if response.length_remaining == 0:
            response.release_conn()  # all in hand: free the slot before the client
        return UpstreamBody(
            response, url, chunk_size=self.chunk_size, log=self.log, first=first
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
        total = settings.total_timeout
        deadline = None if total is None else time.monotonic() + total
        for url in urls:
            started = time.monotonic()
            if deadline is not None and started >= deadline:
                # ReproxyTimeout TOTAL: the URLs not tried are failures too.
                errors.append(
                    UpstreamError(
                        url, f"not tried: {total}s for all tries spent", timeout=True
                    )
                )
                continue
            try:
                upstream = self.open(
                    url,
                    method,
                    headers,
                    settings,
                    expected_size=expected_size,
                    deadline=deadline,
                )
            except UpstreamError as exc:
                self.log.warning(
                    "reproxy target failed after %.3fs: %s",
                    time.monotonic() - started,
                    exc.describe(show_query=settings.log_query),
                )
                errors.append(exc)
                self.metrics.try_failed(target_host(url), exc.reason)
                if is_allowlist_refusal(exc.reason):  # a redirect hop's
                    self.metrics.allowlist_refused(target_host(url))
                continue
            self.metrics.try_succeeded(target_host(url))
            return upstream, errors
        return None, errors
