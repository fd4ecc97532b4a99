"""The WSGI middleware: capability header, interception, header rules.

Wrap any WSGI application; when it answers with ``X-Reproxy-Url`` the
middleware discards the app's body and streams the first target that
answers (SPEC §4)::

    from wsgi_reproxy import ReproxyMiddleware

    application = ReproxyMiddleware(application, "/etc/app/reproxy.conf")
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Protocol

import urllib3

from .config.headernames import is_reproxy_header
from .config.settings import Settings
from .fetch.fetcher import DEFAULT_CHUNK_SIZE, Fetcher
from .fetch.metrics import NO_METRICS, Metrics
from .logs import set_request_errors
from .resolve.resolver import Config, load_config
from .responders import apps
from .responders.cache import ReproxyCache
from .responders.dispatch import TRIGGER_KEY, TRIGGER_NAMES, TriggerDispatch
from .responders.file import reproxy_file
from .responders.headers import Headers
from .responders.url import ResponseCache, UrlResponder

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger(__name__)

#: environ key holding the request's resolved :class:`Settings`
#: (:func:`wsgi_reproxy.can_reproxy` reads it).
SETTINGS_KEY = apps.SETTINGS_KEY


class SettingsSource(Protocol):
    """What the middleware needs from a config: :class:`wsgi_reproxy.Config`."""

    def resolve(self, environ: WSGIEnvironment) -> Settings: ...


#: The ``X-Reproxy-File`` seam: ``(environ, settings, path, app_headers,
#: start_response)`` -> the response.
FileResponder = Callable[
    ["WSGIEnvironment", Settings, str, Headers, "StartResponse"], "Iterable[bytes]"
]


def _close(iterable: Iterable[bytes]) -> None:
    close = getattr(iterable, "close", None)
    if close is not None:
        close()


class _Exchange:
    """One request's side of the app's ``start_response`` calls.

    A response without a trigger header goes to the server at once (minus
    ``X-Reproxy-*``); one with a trigger is held back and its ``write()``
    output discarded, so not one byte of the app's body gets through, even
    when the settings let nothing act on it (SPEC §4.12: a 502, never the
    app's empty body as if it were the file).
    """

    def __init__(self, start_response: StartResponse) -> None:
        self._start_response = start_response
        self.called = False
        self.reproxy = False
        self.status = ""
        self.headers: Headers = []

    def start_response(
        self, status: str, headers: Headers, exc_info: OptExcInfo | None = None
    ) -> Callable[[bytes], object]:
        try:
            if self.called and exc_info is None:
                raise RuntimeError("start_response called twice without exc_info")
            passed_on = self.called and not self.reproxy
            self.called = True
            headers = list(headers)
            # An error response after the server already has our headers is
            # the server's to handle (PEP 3333 exc_info rules), never a reproxy.
            if not passed_on and any(
                name.lower() in TRIGGER_NAMES for name, _ in headers
            ):
                self.reproxy, self.status, self.headers = True, status, headers
                return _discard
            self.reproxy = False
            kept = [(n, v) for n, v in headers if not is_reproxy_header(n)]
            return self._start_response(status, kept, exc_info)
        finally:
            exc_info = None  # PEP 3333: avoid a traceback reference cycle


def _discard(data: bytes) -> None:
    """``write()`` for a response being reproxied: the app's bytes go nowhere."""


class _Resumed:
    """The app's iterable after items were pulled to see a late start_response."""

    def __init__(
        self, pulled: list[bytes], rest: Iterator[bytes], app_iter: Iterable[bytes]
    ) -> None:
        self._pulled = pulled
        self._rest = rest
        self._app_iter = app_iter
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self._pulled
        self._pulled = []
        yield from self._rest

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _close(self._app_iter)


class ReproxyMiddleware:
    """Serve ``X-Reproxy-Url`` responses of *app* from the target URLs.

    :param app: the WSGI application to wrap.
    :param config: a :class:`wsgi_reproxy.Config` (anything with
        ``resolve(environ) -> Settings``) or the path of a config file.
    :param pool: a :class:`urllib3.PoolManager` for the targets.
    :param chunk_size: bytes per body read.
    :param max_urls: URLs tried per response at most.
    :param cache: an ``X-Reproxy-Cache-For`` store (``ReproxyCache``).
    :param file_responder: serves ``X-Reproxy-File``.
    :param logger: where reproxy lines go.
    :param document_root: the directory ``<Directory>`` sections see URL
        paths under, overriding ``DocumentRoot``.
    :param metrics: told about every reproxy, try, cache lookup and transfer
        (a :class:`wsgi_reproxy.fetch.metrics.Metrics`, e.g.
        :class:`wsgi_reproxy.prometheus.PrometheusMetrics`).
    """

    def __init__(
        self,
        app: WSGIApplication,
        config: SettingsSource | str | os.PathLike[str],
        *,
        # None: one lazily created PoolManager per process, bounded, rebuilt
        # after fork (SPEC §5); pass your own to tune sizes or TLS.
        pool: urllib3.PoolManager | None = None,
        # 1 MiB: the best throughput through gunicorn in benchmarks/stream.py
        # (see _fetch.DEFAULT_CHUNK_SIZE); one such buffer per response.
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        # 16: a bounded fan-out per response (issue 4); perlbal had no limit.
        max_urls: int = 16,
        # True: a bounded ReproxyCache per middleware, used only when the app
        # opts in with X-Reproxy-Cache-For (perlbal); False: never cache.
        cache: ResponseCache | bool = True,
        # None: serve_file below ReproxyFileRoot (wsgi_reproxy.responders.file).
        file_responder: FileResponder | None = None,
        # None: the "wsgi_reproxy.middleware" logger.
        logger: logging.Logger | None = None,
        # None: DocumentRoot from the config. A path here replaces it; as in
        # httpd, SCRIPT_FILENAME (mod_wsgi) and the Alias family still map
        # first (SPEC §3).
        document_root: str | os.PathLike[str] | None = None,
        # None: events are dropped (an empty method call each).
        metrics: Metrics | None = None,
    ) -> None:
        if isinstance(config, (str, os.PathLike)):
            config = load_config(config)
        if document_root is not None:
            if not isinstance(config, Config):
                raise TypeError("document_root needs a wsgi_reproxy.Config")
            config = config.with_document_root(document_root)
        self.app = app
        self.config: SettingsSource = config
        self.logger = logger if logger is not None else logging.getLogger(__name__)
        self.metrics: Metrics = NO_METRICS if metrics is None else metrics
        self.fetcher = Fetcher(pool, chunk_size=chunk_size, log=self.logger)
        self.fetcher.metrics = self.metrics
        self.max_urls = max_urls
        if cache is True:
            cache = ReproxyCache()
        if isinstance(cache, ReproxyCache) and cache.metrics is NO_METRICS:
            cache.metrics = self.metrics  # a caller's cache built without one
        self.cache: ResponseCache | None = None if cache is False else cache
        self.file_responder = file_responder or self.serve_file
        self.urls = UrlResponder(
            self.fetcher,
            max_urls=max_urls,
            cache=self.cache,
            log=self.logger,
            metrics=self.metrics,
        )
        self.triggers = TriggerDispatch(
            urls=self.urls, files=self.file_responder, log=self.logger
        )

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        # Where WARNINGs go while the app has not configured logging (SPEC §5).
        set_request_errors(environ.get("wsgi.errors"))
        settings = self.config.resolve(environ)
        environ[SETTINGS_KEY] = settings
        if not settings.allow_reproxy:
            environ.pop("HTTP_X_PROXY_CAPABILITIES", None)
        else:
            # perlbal's token; replaces anything the client sent (SPEC §4.1).
            environ["HTTP_X_PROXY_CAPABILITIES"] = "reproxy-file"
            entry = self.cache.lookup(environ, settings) if self.cache else None
            if entry is not None:
                return self.respond(
                    environ, settings, entry.app_headers(), start_response
                )

        exchange = _Exchange(start_response)
        # The request as it reached us: an inner layer may rewrite the method
        # or the path (PEP 3333 allows it), but what the target is asked and
        # what the log names is what the client sent.
        request = dict(environ)
        app_iter = self.app(environ, exchange.start_response)
        pulled: list[bytes] | None = None
        rest: Iterator[bytes] | None = None
        if not exchange.called:
            # A generator app calls start_response on its first next(): pull
            # items until it has (werkzeug's run_wsgi_app does the same).
            pulled, rest = [], iter(app_iter)
            try:
                while not exchange.called:
                    pulled.append(next(rest))
            except StopIteration:
                _close(app_iter)
                raise RuntimeError(
                    "the application never called start_response"
                ) from None
            except BaseException:
                _close(app_iter)
                raise
        if not exchange.reproxy:
            if rest is None or pulled is None:
                return app_iter  # untouched: keeps wsgi.file_wrapper's sendfile
            return _Resumed(pulled, rest, app_iter)
        # SPEC §4.2: closed, never read; pulled items are dropped unseen.
        _close(app_iter)
        return self.respond(request, settings, exchange.headers, start_response)

    def respond(
        self,
        environ: WSGIEnvironment,
        settings: Settings,
        app_headers: Headers,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        """Answer a request whose app response asked for a reproxy.

        The seam for perlbal's extensions: a cache hit calls this with the
        remembered headers instead of the app's; files (``X-Reproxy-File``,
        ``X-Sendfile``, an ``X-Accel-Redirect`` to a directory) go to the
        ``file_responder`` (SPEC §4.12, :mod:`.responders.dispatch`).
        """
        return self.triggers.respond(environ, settings, app_headers, start_response)

    def serve_file(
        self,
        environ: WSGIEnvironment,
        settings: Settings,
        path: str,
        app_headers: Headers,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        """Serve ``X-Reproxy-File`` (SPEC §4.9); a refusal answers 404."""
        response, refused = reproxy_file(environ, path, settings, app_headers)
        if refused is not None:
            trigger = environ.get(TRIGGER_KEY, "X-Reproxy-File")
            self.logger.warning("%s %r refused: %s", trigger, path, refused)
        try:
            start_response(response.status, response.headers)
        except BaseException:
            _close(response.body)
            raise
        return response.body
