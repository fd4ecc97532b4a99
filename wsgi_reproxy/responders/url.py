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
from ..fetch.metrics import NO_METRICS, Metrics, is_allowlist_refusal, target_host
from ..fetch.redactquery import redact_query
from ..fetch.targets import check_url, split_urls
from ..logs import request_id
from .headers import (
    Headers,
    client_headers,
    expected_size,
    forwarded_headers,
    header_values,
    status_line,
)
from .transfer import ReproxyRecord, Transfer, fields

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
                self.logger.warning(
                    "reproxy URL %r skipped: %s", redact_query(url), reason
                )
                errors.append(UpstreamError(url, reason))
                if is_allowlist_refusal(reason):
                    self.metrics.allowlist_refused(target_host(url))

        expected = expected_size(app_headers)
        if isinstance(expected, str):
            # The app asked for a size check that cannot be made: fail closed,
            # as perlbal did (its numeric compare of "12kb" never matched).
            errors += [UpstreamError(url, expected) for url in valid]
            valid, expected = [], None
        method = "HEAD" if environ.get("REQUEST_METHOD") == "HEAD" else "GET"
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
            return self._bad_gateway(
                environ, errors, len(failures), started, start_response
            )
        if self.cache is not None:
            self.cache.remember(environ, settings, app_headers, valid)

        record = ReproxyRecord(
            path=environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
            url=upstream.url,
            status=upstream.status,
            tries=len(failures) + 1,
            started=started,
            ttfb=time.monotonic() - started,
            request_id=request_id(environ),
        )
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
        return transfer

    def _bad_gateway(
        self,
        environ: WSGIEnvironment,
        errors: list[UpstreamError],
        tries: int,
        started: float,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        # SPEC §4.4: 504 only when the last try timed out.
        timeout = bool(errors) and errors[-1].timeout
        status = "504 Gateway Timeout" if timeout else "502 Bad Gateway"
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        duration = time.monotonic() - started
        self.metrics.reproxy_finished("failed", int(status[:3]), 0, None, duration)
        self.logger.warning(
            "reproxy of %s failed (%s): %s",
            path, status[:3],
            "; ".join(f"{redact_query(e.url)}: {e.reason}" for e in errors)
            or "no target URL",
            extra=fields(
                url=errors[-1].url if errors else None, status=int(status[:3]),
                sent=0, ttfb=None, duration=duration, tries=tries,
                outcome="failed", request_id=request_id(environ),
            ),
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
