"""``X-Reproxy-Url``: fetch the first target that answers, else 502/504.

The middleware hands over the app's held-back headers; the responder splits
and checks the URL list, opens the first good target and starts the
response with the target's status and the client's headers (SPEC §4.2-4.5)::

    responder = UrlResponder(Fetcher(), max_urls=16, cache=None, log=logger)
    return responder.respond(environ, settings, app_headers, start_response)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ..config.settings import Settings
from ..exceptions import UpstreamError
from ..fetch.fetcher import Fetcher
from ..fetch.targets import check_url, split_urls
from .headers import (
    Headers,
    client_headers,
    expected_size,
    forwarded_headers,
    header_values,
    status_line,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


class CacheEntryLike(Protocol):
    def app_headers(self) -> Headers: ...


class ResponseCache(Protocol):
    """The ``X-Reproxy-Cache-For`` seam (:class:`.cache.ReproxyCache`)."""

    def lookup(
        self, environ: Mapping[str, Any], settings: Settings
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
    """

    def __init__(
        self,
        fetcher: Fetcher,
        *,
        max_urls: int,
        cache: ResponseCache | None,
        log: logging.Logger,
    ) -> None:
        self.fetcher = fetcher
        self.max_urls = max_urls
        self.cache = cache
        self.logger = log

    def respond(
        self,
        environ: WSGIEnvironment,
        settings: Settings,
        app_headers: Headers,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        """Reproxy the URLs of *app_headers*; 502/504 when none serves."""
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
                self.logger.warning("reproxy URL %r skipped: %s", url, reason)
                errors.append(UpstreamError(url, reason))

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
        upstream, failures = self.fetcher.open_first(
            valid,
            method,
            forwarded_headers(environ, settings.forward_headers),
            settings,
            expected_size=expected,
        )
        errors += failures
        if upstream is None:
            return self._bad_gateway(environ, errors, start_response)
        if self.cache is not None:
            self.cache.remember(environ, settings, app_headers, valid)

        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")

        def log_transfer(sent: int, complete: bool) -> None:
            self.logger.info(
                "reproxied %s from %s: %d, %d bytes in %.3fs%s",
                path, upstream.url, upstream.status, sent,
                time.monotonic() - started, "" if complete else unread,
            )  # fmt: skip

        head_as_get = head and method == "GET"
        unread = " (GET for HEAD, not read)" if head_as_get else " (incomplete)"

        upstream.body.on_close = log_transfer
        try:
            start_response(
                status_line(upstream.status, upstream.reason),
                client_headers(upstream, app_headers, settings),
            )
        except BaseException:
            upstream.body.close()
            raise
        if head_as_get:
            # The client asked for no body: close the GET unread, which drops
            # its connection rather than draining the whole object.
            upstream.body.close()
            return []
        return upstream.body

    def _bad_gateway(
        self,
        environ: WSGIEnvironment,
        errors: list[UpstreamError],
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        # SPEC §4.4: 504 only when the last try timed out; §4.11: 404 when
        # every target answered 404 (the object is missing everywhere).
        timeout = bool(errors) and errors[-1].timeout
        status = "504 Gateway Timeout" if timeout else "502 Bad Gateway"
        if errors and all(error.status == 404 for error in errors):
            status = "404 Not Found"
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        self.logger.warning(
            "reproxy of %s failed (%s): %s",
            path, status[:3], "; ".join(map(str, errors)) or "no target URL",
        )  # fmt: skip
        # The internal URLs stay in the log; the client learns nothing of them.
        body = f"{status}\n\nThe requested file could not be fetched.\n".encode()
        start_response(
            status,
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
            ],
        )
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]
