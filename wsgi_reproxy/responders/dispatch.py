"""Which trigger header answers a response, in which dialect (SPEC §4.12).

The middleware holds back every response carrying a trigger and hands its
headers here.  perlbal's ``X-Reproxy-File`` and ``X-Reproxy-Url`` (switched
on by ``AllowReproxy``), mod_xsendfile's ``X-Sendfile`` (``ReproxySendfile``
or ``XSendFile``) and nginx's ``X-Accel-Redirect`` (a matching
``ReproxyAccelRedirect`` prefix) are each served by the URL or the file
responder; a trigger nothing may act on gets a 502 (a 404 for a refused
file) and a rate-limited WARNING naming the missing directive::

    dispatch = TriggerDispatch(urls=url_responder, files=serve_file, log=logger)
    return dispatch.respond(environ, settings, app_headers, start_response)

When a response carries several triggers, the first one in
:data:`TRIGGERS` that the settings switch on wins (perlbal looked at
``X-Reproxy-File`` before ``X-Reproxy-Url``).  No trigger header and no
``X-Accel-*`` companion reaches the client.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ..config.headernames import HEADER_NAME, is_preservable
from ..config.settings import Settings
from .accel import file_for, find_redirect, unsafe, url_for, with_charset
from .apps import PRESERVE_HEADER
from .confine import Refusal
from .file import not_found
from .headers import Headers, header_values
from .refusal import RateLimitedWarnings, bad_gateway
from .url import UrlResponder

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

#: Every response header that asks for an offload, in order of precedence.
TRIGGERS = ("x-reproxy-file", "x-reproxy-url", "x-sendfile", "x-accel-redirect")

#: The same, as a set for the middleware's header check.
TRIGGER_NAMES = frozenset(TRIGGERS)

#: environ key naming the trigger being served (``"X-Sendfile"``), so the
#: file responder's log line says which header asked for the file.
TRIGGER_KEY = "wsgi_reproxy.trigger"

#: The directive that switches each trigger on, for the warning.
_SWITCH = {
    "x-reproxy-file": "AllowReproxy On",
    "x-reproxy-url": "AllowReproxy On",
    "x-sendfile": "ReproxySendfile On (or XSendFile On)",
    "x-accel-redirect": "ReproxyAccelRedirect PREFIX TARGET",
}

#: The app headers nginx carries over an X-Accel-Redirect (its upstream
#: module's "redirect" headers; mod_xsendfile keeps them too): kept for the
#: two dialects on top of PreserveHeaders, so Flask's ``send_file(...,
#: as_attachment=True)`` keeps its Content-Disposition.
DIALECT_KEPT = (
    "Content-Type",
    "Content-Disposition",
    "Set-Cookie",
    "Cache-Control",
    "Expires",
)

#: ``(environ, settings, path, app_headers, start_response)`` -> the response:
#: the middleware's ``file_responder``.
FileResponder = Callable[
    ["WSGIEnvironment", Settings, str, Headers, "StartResponse"], "Iterable[bytes]"
]


def is_dialect_header(name: str) -> bool:
    """``X-Sendfile``, ``X-Accel-Redirect`` and nginx's ``X-Accel-*``
    companions (``Buffering``, ``Charset``, ``Limit-Rate``, ``Expires``):
    read here, never sent to the client of a response they triggered."""
    lower = name.lower()
    return lower == "x-sendfile" or lower.startswith("x-accel-")


def _switched_on(trigger: str, settings: Settings) -> bool:
    if trigger == "x-sendfile":
        return settings.sendfile
    if trigger == "x-accel-redirect":
        return bool(settings.accel_redirects)
    return settings.allow_reproxy


def _with_app_preserved(settings: Settings, app_headers: Headers) -> Settings:
    """*settings* whose ``PreserveHeaders`` also name what the app's
    ``X-Reproxy-Preserve-Headers`` lists (the framework helpers set it for
    the Content-Type and Content-Disposition they were given)."""
    names = tuple(
        name
        for value in header_values(app_headers, PRESERVE_HEADER)
        for name in value.split()
        if HEADER_NAME.fullmatch(name) and is_preservable(name)
    )
    if not names:
        return settings
    return dataclasses.replace(
        settings, preserve_headers=settings.preserve_headers + names
    )


def _path(environ: WSGIEnvironment) -> str:
    return str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))


class TriggerDispatch:
    """Answers a held-back response by its trigger header.

    :param urls: serves URL lists (``X-Reproxy-Url``, URL targets).
    :param files: serves a file below ``settings.file_roots``.
    :param log: where refusals go; misconfigurations at most once a minute
        per cause (:class:`.refusal.RateLimitedWarnings`).
    """

    def __init__(
        self, *, urls: UrlResponder, files: FileResponder, log: logging.Logger
    ) -> None:
        self.urls = urls
        self.files = files
        self.logger = log
        self.warnings = RateLimitedWarnings(log)

    def respond(
        self,
        environ: WSGIEnvironment,
        settings: Settings,
        app_headers: Headers,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        """Serve the first trigger of *app_headers* the settings switch on."""
        names = {name.lower() for name, _ in app_headers}  # one pass, not four
        present = [t for t in TRIGGERS if t in names]
        if not present:
            present = ["x-reproxy-url"]  # a cache entry: its URL list, or 502
        trigger = next((t for t in present if _switched_on(t, settings)), None)
        if trigger is None:
            first = present[0]
            self.warnings.warn(
                f"off:{first}",
                "%s ignored for %s: %s is not set for this URL; answered 502",
                first.title(), _path(environ), _SWITCH[first],
            )  # fmt: skip
            return self._bad_gateway(environ, start_response)
        kept = [(n, v) for n, v in app_headers if not is_dialect_header(n)]
        settings = _with_app_preserved(settings, app_headers)
        environ[TRIGGER_KEY] = trigger.title()
        if trigger == "x-reproxy-file":
            value = header_values(app_headers, "X-Reproxy-File")[0]
            return self.files(environ, settings, value, kept, start_response)
        if trigger == "x-reproxy-url":
            return self.urls.respond(environ, settings, kept, start_response)
        dialect = dataclasses.replace(
            settings, preserve_headers=settings.preserve_headers + DIALECT_KEPT
        )
        if trigger == "x-sendfile":
            return self._sendfile(environ, dialect, app_headers, kept, start_response)
        return self._accel(environ, dialect, app_headers, kept, start_response)

    def _sendfile(
        self,
        environ: WSGIEnvironment,
        settings: Settings,
        app_headers: Headers,
        kept: Headers,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        # mod_xsendfile: the file is served with the app's headers, below
        # an XSendFilePath (here also ReproxyFileRoot).
        value = header_values(app_headers, "X-Sendfile")[0]
        if not settings.file_roots:
            self.warnings.warn(
                "noroot:x-sendfile",
                "X-Sendfile ignored for %s: no ReproxyFileRoot or XSendFilePath"
                " for this URL; answered 404",
                _path(environ),
            )
            return self._not_found(start_response)
        return self.files(environ, settings, value, kept, start_response)

    def _accel(
        self,
        environ: WSGIEnvironment,
        settings: Settings,
        app_headers: Headers,
        kept: Headers,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        value = header_values(app_headers, "X-Accel-Redirect")[0].strip()
        path, _, query = value.partition("?")
        found = find_redirect(path, settings.accel_redirects)
        if found is None:
            self.warnings.warn(
                f"noprefix:{path.split('/')[1] if '/' in path else path}",
                "X-Accel-Redirect %r for %s matches no ReproxyAccelRedirect"
                " prefix; answered 502",
                value, _path(environ),
            )  # fmt: skip
            return self._bad_gateway(environ, start_response)
        redirect, rest = found
        refused = unsafe(path)
        if refused is None and any(c.isspace() for c in value):
            refused = "blank in path"  # a URL list would split there
        if refused is not None:
            self.logger.warning("X-Accel-Redirect %r refused: %s", value, refused)
            return self._not_found(start_response)
        # X-Accel-Buffering (we never buffer), X-Accel-Limit-Rate (the front
        # server's job) and X-Accel-Expires (nginx's own cache) are dropped;
        # X-Accel-Charset labels the Content-Type as nginx does.
        charsets = header_values(app_headers, "X-Accel-Charset")
        if charsets:
            start_response = _charset_start(start_response, charsets[0])
        if not redirect.is_url:
            file = file_for(redirect, rest)
            if isinstance(file, Refusal):
                self.logger.warning("X-Accel-Redirect %r refused: %s", value, file)
                return self._not_found(start_response)
            # Confined below this redirect's directory, not ReproxyFileRoot:
            # nginx's alias is the root of its location.
            below = dataclasses.replace(settings, file_roots=(redirect.target,))
            return self.files(environ, below, file, kept, start_response)
        url = url_for(redirect, path, rest, query)
        kept = [
            (n, v)
            for n, v in kept
            if n.lower() not in ("x-reproxy-url", "x-reproxy-file")
        ]
        kept.append(("X-Reproxy-Url", url))
        return self.urls.respond(environ, settings, kept, start_response)

    def _bad_gateway(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        status, headers, body = bad_gateway(environ)
        start_response(status, headers)
        return body

    def _not_found(self, start_response: StartResponse) -> Iterable[bytes]:
        response = not_found()
        start_response(response.status, response.headers)
        return response.body


def _charset_start(start_response: StartResponse, charset: str) -> StartResponse:
    def start(
        status: str, headers: Headers, exc_info: OptExcInfo | None = None, /
    ) -> Callable[[bytes], object]:
        if status[:3] in ("200", "206"):
            headers = [
                (n, with_charset(v, charset) if n.lower() == "content-type" else v)
                for n, v in headers
            ]
        return start_response(status, headers, exc_info)

    return start
