"""``X-Reproxy-Url``: fetch the first target that answers, else 502/504.

The middleware hands over the app's held-back headers; the responder splits
and checks the URL list, opens the first good target and starts the
response with the target's status and the client's headers (SPEC §4.2-4.5).
Every target request carries ``X-Reproxy-Depth: 1``, and a request that
arrived with it is answered 502 instead of being reproxied (SPEC §4.10), so a
URL naming this server cannot loop::

    responder = UrlResponder(Fetcher(), max_urls=16, cache=None, log=logger)
    return responder.respond(environ, settings, app_headers, start_response)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol

from ..config.settings import Settings
from ..exceptions import BusyError, UpstreamError, redact_query
from ..fetch.fetcher import Fetcher
from ..fetch.metrics import NO_METRICS, Metrics, is_allowlist_refusal, target_host
from ..fetch.targets import check_url, split_urls
from ..logs import request_id
from .headers import (
    DEPTH_ENVIRON_KEY,
    DEPTH_HEADER,
    Headers,
    client_headers,
    expected_size,
    forwarded_headers,
    header_values,
    status_line,
)
from .pace import client_pace
from .transfer import ReproxyRecord, Transfer, fields

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


class CacheEntryLike(Protocol):
    def app_headers(self) -> Headers: ...


class ResponseCache(Protocol):
    """The ``X-Reproxy-Cache-For`` seam (:class:`.cache.ReproxyCache`)."""

    def lookup(
        self, environ: MutableMapping[str, Any], settings: Settings
    ) -> CacheEntryLike | None: ...

    def remember(
        self,
        environ: Mapping[str, Any],
        settings: Settings,
        app_headers: Iterable[tuple[str, str]],
        urls: Iterable[str] | None = None,
    ) -> object: ...


class UrlResponder:
    """Answers ``X-Reproxy-Url`` responses.

    :param fetcher: opens the targets.
    :param max_urls: URLs tried per response at most.
    :param cache: where a served URL list is remembered, or ``None``.
    :param log: where reproxy and failure lines go.
    :param metrics: told about every reproxy (:mod:`wsgi_reproxy.fetch.metrics`).
    """

    def __init__(
        self,
        fetcher: Fetcher,
        *,
        max_urls: int,
        cache: ResponseCache | None,
        log: logging.Logger,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.fetcher = fetcher
        self.max_urls = max_urls
        self.cache = cache
        self.logger = log
        self.metrics = metrics

    def respond(
        self,
        environ: WSGIEnvironment,
        settings: Settings,
        app_headers: Headers,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        """Reproxy the URLs of *app_headers*; 502/504 when none serves."""
        if DEPTH_ENVIRON_KEY in environ:
            # SPEC §4.10: a target request (perhaps our own): reproxying it
            # again could loop forever (h2o answers 502 and stops, too).
            detail = f"the request carries {DEPTH_HEADER} (a reproxy sent it)"
            return self._bad_gateway(
                environ, settings, [], 0, time.monotonic(), start_response, detail
            )
        show = settings.log_query
        urls = split_urls(header_values(app_headers, "X-Reproxy-Url"), self.max_urls)
        errors: list[UpstreamError] = []
        if urls.dropped:
            self.logger.warning(
                "X-Reproxy-Url: %d URLs past max_urls=%d ignored",
                urls.dropped,
                self.max_urls,
            )
        valid = []
        for url in urls:
            reason = check_url(url, settings)
            if reason is None:
                valid.append(url)
            else:
                shown = url if show else redact_query(url)
                self.logger.warning("reproxy URL %r skipped: %s", shown, reason)
                errors.append(UpstreamError(url, reason))
                if is_allowlist_refusal(reason):
                    self.metrics.allowlist_refused(target_host(url))

        expected = expected_size(app_headers)
        if isinstance(expected, str):
            # The app asked for a size check that cannot be made: fail closed,
            # as perlbal did (its numeric compare of "12kb" never matched).
            errors += [UpstreamError(url, expected) for url in valid]
            valid, expected = [], None
        head = environ.get("REQUEST_METHOD") == "HEAD"
        # SPEC §4.6: ReproxyHeadMethod GET for URLs signed for GET (S3).
        method = settings.head_method if head else "GET"
        started = time.monotonic()
        headers = forwarded_headers(environ, settings.forward_headers)
        headers[DEPTH_HEADER] = "1"  # SPEC §4.10: marks the request as ours
        upstream, failures = self.fetcher.open_first(
            valid, method, headers, settings, expected_size=expected
        )
        errors += failures
        if upstream is None:
            return self._bad_gateway(
                environ, settings, errors, len(failures), started, start_response
            )
        if self.cache is not None:
            self.cache.remember(environ, settings, app_headers, valid)

        head_as_get = head and method == "GET"
        record = ReproxyRecord(
            path=environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
            url=upstream.url,
            status=upstream.status,
            tries=len(failures) + 1,
            started=started,
            ttfb=time.monotonic() - started,
            request_id=request_id(environ),
            show_query=show,
            unread=" (GET for HEAD, not read)" if head_as_get else " (incomplete)",
        )
        if upstream.body.unread:  # a small body is whole: nothing to pace
            upstream.body.pace = client_pace(environ)
        transfer = Transfer(upstream.body, record, self.logger, self.metrics)
        try:
            start_response(
                status_line(upstream.status, upstream.reason),
                client_headers(upstream, app_headers, settings),
            )
        except BaseException:
            upstream.body.close()
            raise
        self.metrics.transfer_started()
        if head_as_get:
            # The client asked for no body: close the GET unread, which drops
            # its connection rather than draining the whole object.
            transfer.close()
            return []
        return transfer

    def _bad_gateway(
        self,
        environ: WSGIEnvironment,
        settings: Settings,
        errors: list[UpstreamError],
        tries: int,
        started: float,
        start_response: StartResponse,
        detail: str = "no target URL",
    ) -> Iterable[bytes]:
        # SPEC §4.4: 504 only when the last try timed out; 503 when it found
        # the pool's per-host bound reached (the node is busy, not broken);
        # §4.11: 404 when every target answered 404 (missing everywhere).
        last = errors[-1] if errors else None
        if errors and all(error.status == 404 for error in errors):
            status = "404 Not Found"
        elif isinstance(last, BusyError):
            status = "503 Service Unavailable"
        elif last is not None and last.timeout:
            status = "504 Gateway Timeout"
        else:
            status = "502 Bad Gateway"
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        duration = time.monotonic() - started
        self.metrics.reproxy_finished("failed", int(status[:3]), 0, None, duration)
        self.logger.warning(
            "reproxy of %s failed (%s): %s",
            path, status[:3],
            "; ".join(e.describe(show_query=settings.log_query) for e in errors)
            or detail,
            extra=fields(
                url=errors[-1].url if errors else None, status=int(status[:3]),
                sent=0, ttfb=None, duration=duration, tries=tries,
                outcome="failed", request_id=request_id(environ),
                show_query=settings.log_query,
            ),
        )  # fmt: skip
        # The internal URLs stay in the log; the client learns nothing of them.
        body = f"{status}\n\nThe requested file could not be fetched.\n".encode()
        start_response(
            status,
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
                *([("Retry-After", "1")] if isinstance(last, BusyError) else []),
            ],
        )
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]
